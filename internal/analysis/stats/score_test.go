package stats

import (
	"errors"
	"testing"
)

// m builds a metric result for scoring tests.
func m(name string, class Classification, groups ...string) MetricResult {
	return MetricResult{Name: name, Classification: class, Groups: groups}
}

func critical(r MetricResult) MetricResult { r.Critical = true; return r }
func muted(r MetricResult) MetricResult    { r.Muted = true; return r }

func TestScore(t *testing.T) {
	cases := []struct {
		name    string
		results []MetricResult
		weights map[string]float64
		th      Thresholds
		score   float64
		verdict Verdict
		forced  bool // whether an override set the score to 0
	}{
		{"all pass", []MetricResult{m("a", MetricPass, "g"), m("b", MetricPass, "g")}, nil, Thresholds{}, 100, VerdictPass, false},
		// Group g1 50, g2 100, equal implicit weights.
		{"equal weights", []MetricResult{m("a", MetricPass, "g1"), m("b", MetricHigh, "g1"), m("c", MetricPass, "g2")}, nil, Thresholds{}, 75, VerdictPass, false},
		{"explicit weights", []MetricResult{m("a", MetricPass, "g1"), m("b", MetricHigh, "g1"), m("c", MetricPass, "g2")}, map[string]float64{"g1": 70, "g2": 30}, Thresholds{}, 65, VerdictMarginal, false},
		// g1 weighs 60; g2 and g3 share the remaining 40: 0*0.6 + 100*0.2 + 100*0.2.
		{"implicit share", []MetricResult{m("a", MetricLow, "g1"), m("b", MetricPass, "g2"), m("c", MetricPass, "g3")}, map[string]float64{"g1": 60}, Thresholds{}, 40, VerdictFail, false},
		// A weight for a group with no metrics still uses up its share.
		{"weight of absent group", []MetricResult{m("a", MetricPass, "g1")}, map[string]float64{"gone": 50}, Thresholds{}, 50, VerdictMarginal, false},
		{"rounded to two decimals", []MetricResult{m("a", MetricPass, "g"), m("b", MetricHigh, "g"), m("c", MetricLow, "g")}, nil, Thresholds{}, 33.33, VerdictFail, false},
		// A metric counts in every group it names: g1 0, g2 50.
		{"several groups", []MetricResult{m("a", MetricHigh, "g1", "g2"), m("b", MetricPass, "g2")}, nil, Thresholds{}, 25, VerdictFail, false},
		// Error and Nodata leave the denominator; a group left with
		// nothing counted scores 100.
		{"error not counted", []MetricResult{m("a", MetricPass, "g1"), m("b", MetricError, "g1"), m("c", MetricError, "g2")}, nil, Thresholds{}, 100, VerdictPass, false},
		{"nodata not counted", []MetricResult{m("a", MetricPass, "g"), m("b", MetricHigh, "g"), m("c", MetricPass, "g"), m("d", MetricNoData, "g")}, nil, Thresholds{}, 66.67, VerdictMarginal, false},
		{"nodata-fail counted", []MetricResult{m("a", MetricPass, "g"), m("b", MetricNoDataFail, "g")}, nil, Thresholds{}, 50, VerdictMarginal, false},
		{"ungrouped metrics", []MetricResult{m("a", MetricPass), m("b", MetricHigh)}, nil, Thresholds{}, 50, VerdictMarginal, false},
		// Overrides.
		{"critical failure", []MetricResult{critical(m("a", MetricHigh, "g")), m("b", MetricPass, "g"), m("c", MetricPass, "h")}, nil, Thresholds{}, 0, VerdictFail, true},
		{"critical nodata", []MetricResult{critical(m("a", MetricNoData, "g")), m("b", MetricPass, "g"), m("c", MetricPass, "g")}, nil, Thresholds{}, 0, VerdictFail, true},
		{"half nodata", []MetricResult{m("a", MetricNoData, "g"), m("b", MetricPass, "g")}, nil, Thresholds{}, 0, VerdictFail, true},
		{"under half nodata", []MetricResult{m("a", MetricNoData, "g"), m("b", MetricPass, "g"), m("c", MetricPass, "g")}, nil, Thresholds{}, 100, VerdictPass, false},
		// Muted metrics count for nothing, critical or not.
		{"muted", []MetricResult{muted(critical(m("a", MetricHigh, "g"))), muted(m("b", MetricNoData, "g")), m("c", MetricPass, "g")}, nil, Thresholds{}, 100, VerdictPass, false},
		{"custom thresholds", []MetricResult{m("a", MetricPass, "g"), m("b", MetricHigh, "g")}, nil, Thresholds{Pass: 90, Marginal: 40}, 50, VerdictMarginal, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			card, err := Score(c.results, ScoreConfig{GroupWeights: c.weights, Thresholds: c.th})
			if err != nil {
				t.Fatal(err)
			}
			if card.Score != c.score || card.Verdict != c.verdict || (card.Reason != "") != c.forced {
				t.Fatalf("got %v %s (reason %q), want %v %s forced=%v; groups %+v",
					card.Score, card.Verdict, card.Reason, c.score, c.verdict, c.forced, card.Groups)
			}
		})
	}
}

// A score forced to 0 for want of data says so, so that pipit can wait for
// data instead of failing the canary.
func TestScoreWithoutDataSaysSo(t *testing.T) {
	for _, c := range []struct {
		name    string
		results []MetricResult
		noData  bool
	}{
		{"critical nodata", []MetricResult{critical(m("a", MetricNoData, "g")), m("b", MetricPass, "g"), m("c", MetricPass, "g")}, true},
		{"half nodata", []MetricResult{m("a", MetricNoData, "g"), m("b", MetricPass, "g")}, true},
		{"critical failure", []MetricResult{critical(m("a", MetricHigh, "g")), m("b", MetricNoData, "g")}, false},
		{"critical error", []MetricResult{critical(m("a", MetricError, "g")), m("b", MetricPass, "g")}, false},
	} {
		card, err := Score(c.results, ScoreConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if card.NoData != c.noData || card.Score != 0 {
			t.Errorf("%s: score %v, NoData %v (%s), want 0 and NoData %v", c.name, card.Score, card.NoData, card.Reason, c.noData)
		}
	}
}

func TestScoreGroups(t *testing.T) {
	card, err := Score([]MetricResult{m("a", MetricPass, "b"), m("b", MetricHigh, "a"), m("c", MetricError, "c")},
		ScoreConfig{GroupWeights: map[string]float64{"a": 50}})
	if err != nil {
		t.Fatal(err)
	}
	want := []GroupScore{{"a", 0, 50, 1}, {"b", 100, 25, 1}, {"c", 100, 25, 0}}
	if len(card.Groups) != len(want) {
		t.Fatalf("groups %+v, want %+v", card.Groups, want)
	}
	for i := range want {
		if card.Groups[i] != want[i] {
			t.Fatalf("groups %+v, want %+v", card.Groups, want)
		}
	}
}

func TestScoreRefuses(t *testing.T) {
	pass := []MetricResult{m("a", MetricPass, "g")}
	cases := []struct {
		name    string
		results []MetricResult
		cfg     ScoreConfig
	}{
		{"weights over 100", pass, ScoreConfig{GroupWeights: map[string]float64{"g": 80, "h": 30}}},
		{"negative weight", pass, ScoreConfig{GroupWeights: map[string]float64{"g": -1}}},
		{"marginal above pass", pass, ScoreConfig{Thresholds: Thresholds{Pass: 50, Marginal: 60}}},
		{"pass above 100", pass, ScoreConfig{Thresholds: Thresholds{Pass: 101, Marginal: 50}}},
	}
	for _, c := range cases {
		if _, err := Score(c.results, c.cfg); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
	if _, err := Score([]MetricResult{muted(m("a", MetricPass))}, ScoreConfig{}); !errors.Is(err, ErrNoMetrics) {
		t.Errorf("only muted metrics: error %v, want ErrNoMetrics", err)
	}
}

func TestThresholdsClassify(t *testing.T) {
	th := DefaultThresholds()
	for score, want := range map[float64]Verdict{100: VerdictPass, 75: VerdictPass, 74.99: VerdictMarginal, 50: VerdictMarginal, 49.99: VerdictFail, 0: VerdictFail} {
		if got := th.Classify(score); got != want {
			t.Errorf("Classify(%v) = %s, want %s", score, got, want)
		}
	}
}
