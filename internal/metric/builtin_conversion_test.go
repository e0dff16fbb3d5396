package metric

import (
	"testing"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/spec"
	"github.com/pipit-dev/pipit/internal/traffic"
)

// visitSource is a StatsSource of visits alone.
type visitSource struct{ v *traffic.Visits }

func (s visitSource) Stats() traffic.Stats {
	var st traffic.Stats
	st.AddVisits(s.v)
	return st
}

// TestConversionRateCountsSinceTheCanaryStarted: the rate counts every
// user since the canary was deployed, not since the last check (a user
// converts some time after their first visit), with the users behind it
// for the proportion test, per goal.
func TestConversionRateCountsSinceTheCanaryStarted(t *testing.T) {
	v := traffic.NewVisits([]string{"buy", "signup"}, 0, 1)
	b := NewBuiltin(visitSource{v}, nil)
	for u := range uint64(10) {
		v.Observe(u, u < 4, 0) // users 0-3 on the canary, 4-9 on stable
	}
	metrics := []spec.PlanMetric{
		{MetricSpec: v1alpha1.MetricSpec{Name: ConversionRate, Compare: &v1alpha1.CompareSpec{}}},
		{MetricSpec: v1alpha1.MetricSpec{Name: ConversionRate + ":signup"}},
		{MetricSpec: v1alpha1.MetricSpec{Name: ConversionRate + ":nothing"}},
	}
	b.Measure(metrics) // a first check: the visits happened before it
	v.Observe(0, true, 0b01)
	v.Observe(1, true, 0b11)
	v.Observe(5, false, 0b10)
	got := b.Measure(metrics)
	if c := got[0]; c.Canary == nil || *c.Canary != 50 || c.Stable == nil || *c.Stable != 0 {
		t.Errorf("conversion-rate: canary %v, stable %v; want 50 and 0", ptrValue(c.Canary), ptrValue(c.Stable))
	}
	if u := got[0].CanaryUsers; u == nil || *u != (rollout.Conversions{Converted: 2, Visitors: 4}) {
		t.Errorf("canary users %+v, want 2 of 4", u)
	}
	if c := got[1]; *c.Canary != 25 || *c.Stable != 100.0/6 {
		t.Errorf("conversion-rate:signup: canary %v, stable %v; want 25 and 16.67", *c.Canary, *c.Stable)
	}
	if c := got[2]; c.Canary != nil || c.CanaryUsers != nil {
		t.Errorf("a goal that does not exist is measured: %v", ptrValue(c.Canary))
	}
}

func ptrValue(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}
