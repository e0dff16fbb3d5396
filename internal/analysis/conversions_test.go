package analysis

import (
	"strings"
	"testing"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/analysis/stats"
	"github.com/pipit-dev/pipit/internal/rollout"
)

// users is a measurement of a conversion metric: the canary's and the
// stable's converted users out of their visitors.
func users(cx, cn, sx, sn uint64) rollout.Measurement {
	return rollout.Measurement{Metric: "conversion-rate",
		CanaryUsers: &rollout.Conversions{Converted: cx, Visitors: cn},
		StableUsers: &rollout.Conversions{Converted: sx, Visitors: sn}}
}

// conversionCases are judged by the proportion test, with the bad
// direction of conversions (decrease) unless written.
var conversionCases = []struct {
	name      string
	direction string
	meas      rollout.Measurement
	want      stats.Classification
}{
	{"clearly worse", "", users(80, 1000, 150, 1000), stats.MetricLow},
	{"clearly better is fine", "", users(150, 1000, 80, 1000), stats.MetricPass},
	{"clearly better fails either", "either", users(150, 1000, 80, 1000), stats.MetricHigh},
	{"the same", "", users(100, 1000, 102, 1000), stats.MetricPass},
	{"too few users", "", users(1, 10, 2, 10), stats.MetricNoData},
	{"no visitors yet", "", rollout.Measurement{Metric: "conversion-rate"}, stats.MetricNoData},
}

func TestCompareConversionsByProportions(t *testing.T) {
	for _, tt := range conversionCases {
		t.Run(tt.name, func(t *testing.T) {
			m := v1alpha1.MetricSpec{Name: "conversion-rate", Compare: &v1alpha1.CompareSpec{Direction: tt.direction}}
			r, c := Compare(m, tt.meas, 0.95)
			if c.Classification != tt.want {
				t.Fatalf("classified %s, want %s: %s", c.Classification, tt.want, r.Message)
			}
			if tt.want == stats.MetricLow && (r.Verdict != v1alpha1.VerdictFailed || !strings.Contains(r.Message, "8% vs 15% of 1000 vs 1000 users")) {
				t.Errorf("verdict %s, message %q", r.Verdict, r.Message)
			}
		})
	}
	// An allowed change of 50% lets a canary that converts 47% less pass.
	allowed := 0.5
	m := v1alpha1.MetricSpec{Name: "conversion-rate", Compare: &v1alpha1.CompareSpec{AllowedChange: &allowed}}
	if _, c := Compare(m, users(80, 1000, 150, 1000), 0.95); c.Classification != stats.MetricPass {
		t.Errorf("within the allowed change: %s (%s)", c.Classification, c.Reason)
	}
}
