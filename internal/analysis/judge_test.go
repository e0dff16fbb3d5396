package analysis

import (
	"errors"
	"testing"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

func f(v float64) *float64 { return &v }

func TestJudge(t *testing.T) {
	minMax := &v1alpha1.ThresholdRange{Min: f(1), Max: f(5)}
	cases := []struct {
		name string
		tr   *v1alpha1.ThresholdRange
		meas Measurement
		want v1alpha1.Verdict
		msg  string
	}{
		{"inside", minMax, Measurement{Canary: f(3)}, v1alpha1.VerdictSuccessful, "m 3 within [1, 5]"},
		{"on the min edge", minMax, Measurement{Canary: f(1)}, v1alpha1.VerdictSuccessful, "m 1 within [1, 5]"},
		{"below min", minMax, Measurement{Canary: f(0.5)}, v1alpha1.VerdictFailed, "m 0.5 < min 1"},
		{"above max", minMax, Measurement{Canary: f(7.25)}, v1alpha1.VerdictFailed, "m 7.25 > max 5"},
		{"open range", nil, Measurement{Canary: f(1e9)}, v1alpha1.VerdictSuccessful, "m 1e+09 within (no bounds)"},
		{"no data is not zero", minMax, Measurement{}, v1alpha1.VerdictNoData, "m: no data for the canary in this window"},
		{"error wins over values", minMax, Measurement{Canary: f(3), Err: errors.New("timeout")}, v1alpha1.VerdictError, "m: timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := Judge(v1alpha1.MetricSpec{Name: "m", ThresholdRange: tc.tr}, tc.meas)
			if r.Verdict != tc.want || r.Message != tc.msg {
				t.Errorf("got %s %q, want %s %q", r.Verdict, r.Message, tc.want, tc.msg)
			}
		})
	}
}

func TestCheckCombinesVerdicts(t *testing.T) {
	metrics := []v1alpha1.MetricSpec{
		{Name: "a", ThresholdRange: &v1alpha1.ThresholdRange{Max: f(1)}},
		{Name: "b", ThresholdRange: &v1alpha1.ThresholdRange{Min: f(99)}},
	}
	cases := []struct {
		name string
		meas []Measurement
		want Outcome
	}{
		{"all pass", []Measurement{{Metric: "a", Canary: f(0)}, {Metric: "b", Canary: f(100)}}, Passed},
		{"one fails", []Measurement{{Metric: "a", Canary: f(2)}, {Metric: "b", Canary: f(100)}}, Failed},
		{"fail beats no data", []Measurement{{Metric: "a"}, {Metric: "b", Canary: f(1)}}, Failed},
		{"missing measurement is no data", []Measurement{{Metric: "a", Canary: f(0)}}, Inconclusive},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			results, got := Check(metrics, tc.meas)
			if got != tc.want || len(results) != 2 {
				t.Errorf("outcome %s with %d results, want %s", got, len(results), tc.want)
			}
		})
	}
	if _, out := Check(nil, nil); out != Passed {
		t.Errorf("a check without metrics should pass, got %s", out)
	}
	results, _ := Check(metrics, []Measurement{{Metric: "a", Canary: f(0)}, {Metric: "b", Canary: f(50)}})
	if r, ok := FirstFailure(results); !ok || r.Name != "b" {
		t.Errorf("first failure %+v %v", r, ok)
	}
}
