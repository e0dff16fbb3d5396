package controlapi

import (
	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/spec"
)

// NewView renders a rollout's plan and status for people, the same way in
// every runtime; the runtime adds what it alone knows (Listen, Live).
func NewView(name string, plan spec.Plan, st v1alpha1.RolloutStatus) RolloutView {
	v := RolloutView{
		Name: name, Decision: plan.Decision,
		AnalysisInterval: Duration(plan.Analysis.Interval), Status: st,
		ExpectedRequestsPerSecond: plan.Analysis.ExpectedRequestsPerSecond,
	}
	for _, pm := range plan.Analysis.Metrics {
		v.Metrics = append(v.Metrics, pm.MetricSpec)
		if u := spec.MetricUnit(pm.MetricSpec); u != "" {
			if v.Units == nil {
				v.Units = map[string]string{}
			}
			v.Units[pm.Name] = u
		}
	}
	if ex := plan.Experiment; ex != nil && ex.PromoteIf == v1alpha1.PromoteIfNotWorse {
		margin := ex.Margin
		v.ExperimentMargin = &margin
	}
	for _, s := range plan.Steps {
		v.Steps = append(v.Steps, s.Describe())
	}
	return v
}
