package stats

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Verdict is the classification of a canary's overall score.
type Verdict string

// The verdicts Thresholds.Classify returns.
const (
	VerdictPass     Verdict = "Pass"
	VerdictMarginal Verdict = "Marginal"
	VerdictFail     Verdict = "Fail"
)

// Thresholds turn a score into a verdict. The zero value means
// DefaultThresholds.
type Thresholds struct {
	Pass     float64 // scores at or above pass
	Marginal float64 // scores at or above marginal but below Pass
}

// DefaultThresholds are Spinnaker's defaults: pass 75, marginal 50.
func DefaultThresholds() Thresholds { return Thresholds{Pass: 75, Marginal: 50} }

// Classify returns Pass for score >= t.Pass, Marginal for score >= t.Marginal
// and Fail below that.
func (t Thresholds) Classify(score float64) Verdict {
	switch {
	case score >= t.Pass:
		return VerdictPass
	case score >= t.Marginal:
		return VerdictMarginal
	}
	return VerdictFail
}

// DefaultGroup is the group of a metric that names none.
const DefaultGroup = "default"

// ScoreConfig configures Score.
type ScoreConfig struct {
	// GroupWeights gives groups explicit weights out of 100. Groups without
	// one share what is left equally.
	GroupWeights map[string]float64
	// Thresholds classify the score; the zero value means the defaults.
	Thresholds Thresholds
}

// GroupScore is the score of one group of metrics.
type GroupScore struct {
	Name   string  // the group's name
	Score  float64 // 0..100
	Weight float64 // out of 100
	// Counted is the number of metrics in the score's denominator.
	Counted int
}

// Scorecard is the overall result of a canary analysis.
type Scorecard struct {
	Score   float64 // 0..100, rounded to two decimals
	Verdict Verdict // the score classified by the thresholds
	// Reason explains a score forced to 0; empty otherwise.
	Reason string
	// NoData is set when the score was forced to 0 because half the
	// metrics or more, or a critical one, had no data: too little to
	// judge, rather than a canary found worse.
	NoData bool
	Groups []GroupScore // the group scores behind Score, sorted by name
}

// ErrNoMetrics reports a Score call without any metric that is not muted.
var ErrNoMetrics = errors.New("no metrics to score")

// Score combines metric results into a weighted score and its verdict, as
// Kayenta's weighted-sum scorer does (analysis.md section 1.5).
func Score(results []MetricResult, cfg ScoreConfig) (Scorecard, error) {
	th := cfg.Thresholds
	if th == (Thresholds{}) {
		th = DefaultThresholds()
	}
	if !(0 <= th.Marginal && th.Marginal <= th.Pass && th.Pass <= 100) {
		return Scorecard{}, fmt.Errorf("thresholds need 0 <= marginal (%v) <= pass (%v) <= 100", th.Marginal, th.Pass)
	}
	// Muted metrics are reported but never scored.
	scored := slices.DeleteFunc(slices.Clone(results), func(r MetricResult) bool { return r.Muted })
	if len(scored) == 0 {
		return Scorecard{}, ErrNoMetrics
	}
	groups, err := scoreGroups(scored, cfg.GroupWeights)
	if err != nil {
		return Scorecard{}, err
	}
	total := 0.0
	for _, g := range groups {
		total += g.Score * g.Weight / 100
	}
	card := Scorecard{Score: math.Round(total*100) / 100, Groups: groups}

	// Overrides. A critical metric that did not pass fails the canary
	// outright, and so does missing data on half the metrics or more:
	// Nodata is left out of group denominators, so without this rule a
	// broken query would raise the score.
	noData := 0
	for _, r := range scored {
		if r.Critical && r.Classification != MetricPass {
			card.Score, card.Reason = 0, fmt.Sprintf("critical metric %q is %s", r.Name, r.Classification)
			// A critical metric must have data to pass; without it there
			// is too little to judge, not a canary found worse.
			card.NoData = r.Classification == MetricNoData
			break
		}
		if r.Classification == MetricNoData {
			noData++
		}
	}
	if card.Reason == "" && 2*noData >= len(scored) {
		card.Score, card.Reason, card.NoData = 0, fmt.Sprintf("%d of %d metrics have no data", noData, len(scored)), true
	}
	card.Verdict = th.Classify(card.Score)
	return card, nil
}

// scoreGroups scores each group as the share of its counted metrics that
// passed. A metric counts in every group it lists. High, Low and
// NodataFailMetric count against it; Nodata and Error are left out, and a
// group with nothing counted scores 100.
func scoreGroups(results []MetricResult, weights map[string]float64) ([]GroupScore, error) {
	type tally struct{ pass, counted int }
	tallies := map[string]*tally{}
	for _, r := range results {
		names := r.Groups
		if len(names) == 0 {
			names = []string{DefaultGroup}
		}
		for _, name := range names {
			t := tallies[name]
			if t == nil {
				t = &tally{}
				tallies[name] = t
			}
			switch r.Classification {
			case MetricPass:
				t.pass++
				t.counted++
			case MetricHigh, MetricLow, MetricNoDataFail:
				t.counted++
			}
		}
	}
	// Explicit weights are used as given; the groups without one share
	// what the explicit weights leave of 100.
	explicit := 0.0
	for name, w := range weights {
		if !(w >= 0) || math.IsInf(w, 0) {
			return nil, fmt.Errorf("group %q has weight %v; weights must be non-negative", name, w)
		}
		explicit += w
	}
	if explicit > 100 {
		return nil, fmt.Errorf("group weights add up to %v, more than 100", explicit)
	}
	implicit := 0
	for name := range tallies {
		if _, ok := weights[name]; !ok {
			implicit++
		}
	}
	share := 0.0
	if implicit > 0 {
		share = (100 - explicit) / float64(implicit)
	}

	out := make([]GroupScore, 0, len(tallies))
	for name, t := range tallies {
		g := GroupScore{Name: name, Score: 100, Weight: share, Counted: t.counted}
		if w, ok := weights[name]; ok {
			g.Weight = w
		}
		if t.counted > 0 {
			g.Score = 100 * float64(t.pass) / float64(t.counted)
		}
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b GroupScore) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
