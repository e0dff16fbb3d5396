package analysis

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/analysis/stats"
	"github.com/pipit-dev/pipit/internal/rollout"
)

func f(v float64) *float64 { return &v }

func TestEvaluate(t *testing.T) {
	minMax := &v1alpha1.ThresholdRange{Min: f(1), Max: f(5)}
	cases := []struct {
		name string
		m    v1alpha1.MetricSpec
		meas rollout.Measurement
		want v1alpha1.Verdict
		msg  string
	}{
		{"inside", v1alpha1.MetricSpec{ThresholdRange: minMax}, rollout.Measurement{Canary: f(3)}, v1alpha1.VerdictSuccessful, "m 3 within [1, 5]"},
		{"on the min edge", v1alpha1.MetricSpec{ThresholdRange: minMax}, rollout.Measurement{Canary: f(1)}, v1alpha1.VerdictSuccessful, "m 1 within [1, 5]"},
		{"below min", v1alpha1.MetricSpec{ThresholdRange: minMax}, rollout.Measurement{Canary: f(0.5)}, v1alpha1.VerdictFailed, "m 0.5 < min 1"},
		{"above max", v1alpha1.MetricSpec{ThresholdRange: minMax}, rollout.Measurement{Canary: f(7.25)}, v1alpha1.VerdictFailed, "m 7.25 > max 5"},
		{"open range", v1alpha1.MetricSpec{}, rollout.Measurement{Canary: f(1e9)}, v1alpha1.VerdictSuccessful, "m 1e+09 within (no bounds)"},
		{"no data is not zero", v1alpha1.MetricSpec{ThresholdRange: minMax}, rollout.Measurement{}, v1alpha1.VerdictNoData, "m: no data for the canary in this window"},
		{"error wins over values", v1alpha1.MetricSpec{ThresholdRange: minMax}, rollout.Measurement{Canary: f(3), Err: errors.New("timeout")}, v1alpha1.VerdictError, "m: timeout"},
		{"failure condition holds", v1alpha1.MetricSpec{FailureCondition: "result > 0.05"}, rollout.Measurement{Canary: f(0.07)},
			v1alpha1.VerdictFailed, `m 0.07: failureCondition "result > 0.05" holds`},
		{"failure condition does not hold", v1alpha1.MetricSpec{FailureCondition: "result > 0.05"}, rollout.Measurement{Canary: f(0.01)},
			v1alpha1.VerdictSuccessful, `m 0.01: failureCondition "result > 0.05" does not hold`},
		{"canary against stable passes", v1alpha1.MetricSpec{SuccessCondition: "canary <= stable * 1.1"}, rollout.Measurement{Canary: f(105), Stable: f(100)},
			v1alpha1.VerdictSuccessful, `m 105 (stable 100): successCondition "canary <= stable * 1.1" holds`},
		{"canary against stable fails", v1alpha1.MetricSpec{SuccessCondition: "canary <= stable * 1.1"}, rollout.Measurement{Canary: f(120), Stable: f(100)},
			v1alpha1.VerdictFailed, `m 120 (stable 100): successCondition "canary <= stable * 1.1" does not hold`},
		{"neither condition holds", v1alpha1.MetricSpec{SuccessCondition: "result < 1", FailureCondition: "result > 2"}, rollout.Measurement{Canary: f(1.5)},
			v1alpha1.VerdictInconclusive, "m 1.5: neither condition holds"},
		{"stable without data", v1alpha1.MetricSpec{SuccessCondition: "canary <= stable"}, rollout.Measurement{Canary: f(1)},
			v1alpha1.VerdictError, "m: successCondition: the stable version has no data to compare with"},
		{"threshold checked before conditions", v1alpha1.MetricSpec{ThresholdRange: minMax, SuccessCondition: "true"}, rollout.Measurement{Canary: f(9)},
			v1alpha1.VerdictFailed, "m 9 > max 5"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.m.Name = "m"
			r := Evaluate(tc.m, tc.meas, 0.98)
			if r.Verdict != tc.want || r.Message != tc.msg {
				t.Errorf("got %s %q, want %s %q", r.Verdict, r.Message, tc.want, tc.msg)
			}
		})
	}
}

// unitCases are messages people read, each value with its metric's unit.
var unitCases = []struct {
	m    v1alpha1.MetricSpec
	meas rollout.Measurement
	msg  string
}{
	{v1alpha1.MetricSpec{Name: "latency-p99", ThresholdRange: &v1alpha1.ThresholdRange{Max: f(250)}},
		rollout.Measurement{Canary: f(7.49)}, "latency-p99 7.49ms within max 250ms"},
	{v1alpha1.MetricSpec{Name: "request-success-rate", ThresholdRange: &v1alpha1.ThresholdRange{Min: f(99)}},
		rollout.Measurement{Canary: f(91.5)}, "request-success-rate 91.5% < min 99%"},
	{v1alpha1.MetricSpec{Name: "request-count", ThresholdRange: &v1alpha1.ThresholdRange{Min: f(50), Max: f(1e6)}},
		rollout.Measurement{Canary: f(120)}, "request-count 120 requests within [50 requests, 1000000 requests]"},
	{v1alpha1.MetricSpec{Name: "checkout", Provider: &v1alpha1.MetricProvider{}, Unit: "req/s", SuccessCondition: "canary >= stable"},
		rollout.Measurement{Canary: f(3.2), Stable: f(3)}, `checkout 3.2 req/s (stable 3 req/s): successCondition "canary >= stable" holds`},
	{v1alpha1.MetricSpec{Name: "latency-p99", Provider: &v1alpha1.MetricProvider{}, ThresholdRange: &v1alpha1.ThresholdRange{Max: f(0.5)}},
		rollout.Measurement{Canary: f(0.75)}, "latency-p99 0.75 > max 0.5"}, // a query's value: pipit cannot know its unit
}

func TestEvaluateShowsUnits(t *testing.T) {
	for _, tc := range unitCases {
		if r := Evaluate(tc.m, tc.meas, 0.98); r.Message != tc.msg {
			t.Errorf("%s: %q, want %q", tc.m.Name, r.Message, tc.msg)
		}
	}
	lat := v1alpha1.MetricSpec{Name: "latency-p50", Compare: &v1alpha1.CompareSpec{}}
	r, _ := Compare(lat, rollout.Measurement{CanarySamples: series(150, 60, 1), StableSamples: series(100, 60, 1)}, 0.98)
	if !strings.Contains(r.Message, "(mean 154.5ms vs 104.5ms, 60 vs 60 samples)") {
		t.Errorf("compared latency: %q, want the means in ms", r.Message)
	}
}

func series(base float64, n int, step float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = base + float64(i%10)*step
	}
	return out
}

func TestCompareAndScore(t *testing.T) {
	lat := v1alpha1.MetricSpec{Name: "latency", Compare: &v1alpha1.CompareSpec{Direction: "increase"}}
	same, c1 := Compare(lat, rollout.Measurement{CanarySamples: series(100, 60, 1), StableSamples: series(100, 60, 1)}, 0.98)
	if same.Verdict != v1alpha1.VerdictSuccessful || c1.Classification != stats.MetricPass {
		t.Errorf("same distributions: %s %s", same.Verdict, same.Message)
	}
	slower, c2 := Compare(lat, rollout.Measurement{CanarySamples: series(150, 60, 1), StableSamples: series(100, 60, 1)}, 0.98)
	if slower.Verdict != v1alpha1.VerdictFailed || c2.Classification != stats.MetricHigh {
		t.Errorf("50%% slower canary: %s %s", slower.Verdict, slower.Message)
	}
	faster, _ := Compare(lat, rollout.Measurement{CanarySamples: series(50, 60, 1), StableSamples: series(100, 60, 1)}, 0.98)
	if faster.Verdict != v1alpha1.VerdictSuccessful {
		t.Errorf("a faster canary is not bad for direction increase: %s", faster.Message)
	}
	either := v1alpha1.MetricSpec{Name: "latency", Compare: &v1alpha1.CompareSpec{}}
	if r, _ := Compare(either, rollout.Measurement{CanarySamples: series(50, 60, 1), StableSamples: series(100, 60, 1)}, 0.98); r.Verdict != v1alpha1.VerdictFailed {
		t.Errorf("with no direction (either), a big drop fails: %s %s", r.Verdict, r.Message)
	}
	if none, _ := Compare(lat, rollout.Measurement{StableSamples: series(100, 60, 1)}, 0.98); none.Verdict != v1alpha1.VerdictNoData {
		t.Errorf("no canary samples: %s", none.Verdict)
	}
	if s := Score([]stats.MetricResult{c1}, 75, 50, nil); s.Verdict != v1alpha1.VerdictSuccessful || *s.Canary != 100 {
		t.Errorf("score of one passing metric: %s %v", s.Verdict, s.Message)
	}
	if s := Score([]stats.MetricResult{c1, c2}, 75, 50, nil); s.Verdict != v1alpha1.VerdictInconclusive || *s.Canary != 50 ||
		!strings.HasSuffix(s.Message, "; against the canary: latency High") {
		t.Errorf("score of one pass, one high, naming the high one: %s %s", s.Verdict, s.Message)
	}
	// Too little traffic to compare is no data, left to the score's
	// noData policy, not a failure of the canary.
	_, empty := Compare(lat, rollout.Measurement{StableSamples: series(100, 60, 1)}, 0.98)
	if s := Score([]stats.MetricResult{c1, empty}, 75, 50, nil); s.Verdict != v1alpha1.VerdictNoData {
		t.Errorf("score with half the metrics without data: %s %s", s.Verdict, s.Message)
	}
	c2.Critical = true
	if s := Score([]stats.MetricResult{c1, c2}, 75, 50, nil); s.Verdict != v1alpha1.VerdictFailed {
		t.Errorf("a failed critical metric must fail the score: %s %s", s.Verdict, s.Message)
	}
}

func TestRateMonitorAlarmsOnAWorseCanaryOnly(t *testing.T) {
	healthy := NewRateMonitor(0.01)
	bad := NewRateMonitor(0.01)
	var alarm *rollout.Alarm
	var cn, ce, sn, se uint64
	// 25 canary and 475 stable requests a second; stable fails 1%, the bad
	// canary 6%: deterministic counts, rounded down.
	for sec := 1; sec <= 60 && alarm == nil; sec++ {
		cn, sn = uint64(25*sec), uint64(475*sec)
		ce, se = uint64(25*sec)/100, uint64(475*sec)/100
		if a, err := healthy.Observe("v2", cn, ce, sn, se); err != nil || a != nil {
			t.Fatalf("healthy canary at %ds: alarm %v err %v", sec, a, err)
		}
		var err error
		if alarm, err = bad.Observe("v2", cn, uint64(25*sec)*6/100, sn, se); err != nil {
			t.Fatal(err)
		}
		if alarm != nil && sec > 30 {
			t.Errorf("a 6%% vs 1%% error rate took %ds to detect", sec)
		}
	}
	if alarm == nil || alarm.Metric != ErrorRateAlarm || !strings.Contains(alarm.Reason, "is higher than stable's") {
		t.Fatalf("alarm %+v", alarm)
	}
	if again, _ := bad.Observe("v2", cn+25, ce+25, sn+475, se); again != nil {
		t.Errorf("the same canary alarmed twice")
	}
	if fresh, _ := bad.Observe("v3", cn+25, ce, sn+475, se); fresh != nil {
		t.Errorf("a new canary version inherited the old one's evidence")
	}
}

func TestSpentConfidenceAddsUpToTheConfidence(t *testing.T) {
	if c := SpentConfidence(0.98, 1); math.Abs(c-0.99) > 1e-12 {
		t.Errorf("first check at %v, want 0.99", c)
	}
	spent := 0.0
	for check := 1; check <= 1000; check++ {
		c := SpentConfidence(0.98, check)
		if check > 1 && c <= SpentConfidence(0.98, check-1) {
			t.Fatalf("check %d at %v, no stricter than the one before", check, c)
		}
		spent += 1 - c
	}
	// The shares of 1000 checks add up to 1 − 1/1001 of the error.
	if want := 0.02 * 1000 / 1001; math.Abs(spent-want) > 1e-12 {
		t.Errorf("1000 checks spent %v of the error, want %v", spent, want)
	}
}

// compareDirections: a compared metric without a direction takes the one
// of its meaning when pipit measures it, and either otherwise.
var compareDirections = []struct {
	metric           v1alpha1.MetricSpec
	canary, stable   float64
	wantFailed       bool
	whatTheCaseShows string
}{
	{v1alpha1.MetricSpec{Name: "latency-p99", Compare: &v1alpha1.CompareSpec{}}, 50, 100, false, "a faster canary is not rolled back"},
	{v1alpha1.MetricSpec{Name: "latency-p99", Compare: &v1alpha1.CompareSpec{}}, 150, 100, true, "a slower one is"},
	{v1alpha1.MetricSpec{Name: "request-success-rate", Compare: &v1alpha1.CompareSpec{}}, 150, 100, false, "more success is fine"},
	{v1alpha1.MetricSpec{Name: "request-success-rate", Compare: &v1alpha1.CompareSpec{}}, 50, 100, true, "less is not"},
	{v1alpha1.MetricSpec{Name: "error-rate", Compare: &v1alpha1.CompareSpec{}}, 50, 100, false, "fewer errors are fine"},
	{v1alpha1.MetricSpec{Name: "latency-p99", Compare: &v1alpha1.CompareSpec{Direction: "either"}}, 50, 100, true, "a written direction wins"},
	{v1alpha1.MetricSpec{Name: "latency-p99", Provider: &v1alpha1.MetricProvider{}, Compare: &v1alpha1.CompareSpec{}}, 50, 100, true,
		"a query of the user's keeps either"},
}

func TestCompareDirectionFollowsTheMetricsMeaning(t *testing.T) {
	for _, tc := range compareDirections {
		r, _ := Compare(tc.metric, rollout.Measurement{CanarySamples: series(tc.canary, 60, 1), StableSamples: series(tc.stable, 60, 1)}, 0.98)
		if failed := r.Verdict == v1alpha1.VerdictFailed; failed != tc.wantFailed {
			t.Errorf("%s: %s (%s)", tc.whatTheCaseShows, r.Verdict, r.Message)
		}
	}
}
