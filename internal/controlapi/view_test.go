package controlapi

import (
	"testing"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/spec"
)

// The view carries an experiment's margin, which the dashboard shows
// beside the rule, under notWorse only: better has none to show.
func TestNewViewExperimentMargin(t *testing.T) {
	notWorse := spec.Plan{Experiment: &spec.ExperimentPlan{PromoteIf: v1alpha1.PromoteIfNotWorse, Margin: 1.5}}
	if m := NewView("shop", notWorse, v1alpha1.RolloutStatus{}).ExperimentMargin; m == nil || *m != 1.5 {
		t.Errorf("notWorse with margin 1.5: view's margin %v", m)
	}
	better := spec.Plan{Experiment: &spec.ExperimentPlan{PromoteIf: v1alpha1.PromoteIfBetter, Margin: 1.5}}
	if m := NewView("shop", better, v1alpha1.RolloutStatus{}).ExperimentMargin; m != nil {
		t.Errorf("better: view's margin %v, want none", *m)
	}
	if m := NewView("web", spec.Plan{}, v1alpha1.RolloutStatus{}).ExperimentMargin; m != nil {
		t.Errorf("no experiment: view's margin %v, want none", *m)
	}
}
