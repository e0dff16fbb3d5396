package spec

import (
	"testing"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// withGoals is a valid rollout that counts conversions: a user key, two
// goals and both conversion metrics.
func withGoals() *v1alpha1.Rollout {
	r := validRollout()
	r.Spec.Service.Traffic = &v1alpha1.TrafficSpec{UserKey: []v1alpha1.UserKeySource{{Header: "X-User-ID"}}}
	r.Spec.Analysis.Goals = []v1alpha1.Goal{
		{Name: "checkout", Method: &v1alpha1.StringMatch{Exact: "POST"}, Path: &v1alpha1.StringMatch{Exact: "/checkout"}},
		{Name: "signup", Headers: map[string]v1alpha1.StringMatch{"X-Signup": {}}},
	}
	r.Spec.Analysis.Metrics = append(r.Spec.Analysis.Metrics,
		v1alpha1.MetricSpec{Name: "conversion-rate", ThresholdRange: &v1alpha1.ThresholdRange{Min: ptr(2.0)}},
		v1alpha1.MetricSpec{Name: "conversion-rate:signup", Compare: &v1alpha1.CompareSpec{}})
	return r
}

// goalRefusals break withGoals one way each.
var goalRefusals = []refusal{
	{"goal without name", func(r *v1alpha1.Rollout) {
		r.Spec.Analysis.Goals[1].Name = ""
		r.Spec.Analysis.Metrics = r.Spec.Analysis.Metrics[:2]
	},
		"spec.analysis.goals[1].name", "is required"},
	{"goal named twice", func(r *v1alpha1.Rollout) {
		r.Spec.Analysis.Goals[1].Name = "checkout"
		r.Spec.Analysis.Metrics = r.Spec.Analysis.Metrics[:2]
	},
		"spec.analysis.goals[1].name", `goal "checkout" is already listed as goals[0]`},
	{"goal name with a colon", func(r *v1alpha1.Rollout) { r.Spec.Analysis.Goals[0].Name = "a:b" },
		"spec.analysis.goals[0].name", "may not hold a space or a colon"},
	{"goal without condition", func(r *v1alpha1.Rollout) { r.Spec.Analysis.Goals[1].Headers = nil },
		"spec.analysis.goals[1]", "reaches every request"},
	{"goal with a bad path", func(r *v1alpha1.Rollout) { r.Spec.Analysis.Goals[0].Path = &v1alpha1.StringMatch{Exact: "checkout"} },
		"spec.analysis.goals[0].path", "paths start with /"},
	{"goal with a lower-case method", func(r *v1alpha1.Rollout) { r.Spec.Analysis.Goals[0].Method = &v1alpha1.StringMatch{Exact: "post"} },
		"spec.analysis.goals[0].method", "methods are upper case"},
	{"goals without a user key", func(r *v1alpha1.Rollout) { r.Spec.Service.Traffic = nil },
		"spec.analysis.goals", "need a user key to tell users apart: set spec.service.traffic.userKey"},
	{"conversion metric of no goal", func(r *v1alpha1.Rollout) { r.Spec.Analysis.Metrics[2].Name = "conversion-rate:signin" },
		"spec.analysis.metrics[2].name", "names no goal of spec.analysis.goals: the goals are checkout, signup"},
	{"conversion metric without goals", func(r *v1alpha1.Rollout) {
		r.Spec.Analysis.Goals = nil
		r.Spec.Analysis.Metrics = r.Spec.Analysis.Metrics[:2]
	},
		"spec.analysis.metrics[1].name", "conversion-rate counts the users who reach a goal: list the goals in spec.analysis.goals"},
	{"conversion rate above 100", func(r *v1alpha1.Rollout) { r.Spec.Analysis.Metrics[1].ThresholdRange.Min = ptr(120.0) },
		"spec.analysis.metrics[1].thresholdRange.min", "120"},
}

func TestValidateGoals(t *testing.T) {
	if errs := Validate(withGoals()); len(errs) > 0 {
		t.Fatalf("a valid rollout with goals is refused:\n%v", errs)
	}
	checkRefusals(t, withGoals, goalRefusals)
}

// TestConversionDirection: a lower conversion rate is the bad change,
// for every goal.
func TestConversionDirection(t *testing.T) {
	for _, name := range []string{"conversion-rate", "conversion-rate:signup"} {
		m := v1alpha1.MetricSpec{Name: name, Compare: &v1alpha1.CompareSpec{}}
		if got := CompareDirection(m); got != DirectionDecrease {
			t.Errorf("CompareDirection(%s) = %s, want decrease", name, got)
		}
	}
	if _, ok := ConversionGoal("conversion-rate:"); ok {
		t.Error("conversion-rate: with no goal name is taken for a conversion metric")
	}
}
