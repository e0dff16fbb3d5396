package engine

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/spec"
)

// TestPlanShortenedUnderAGate is a plan a reload shortened below the step
// a gate was opened at: approving the gate goes on to promotion, and an
// approval's timeout no longer applies, instead of reading a step that is
// gone.
func TestPlanShortenedUnderAGate(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	plan := spec.Plan{Steps: []spec.PlanStep{{Kind: spec.StepSetWeight, Weight: v1alpha1.PercentOf(20)}},
		Decision: v1alpha1.DecisionAutomatic, ProgressDeadline: time.Minute, Analysis: spec.AnalysisPlan{Interval: time.Second}}
	gated := func(kind v1alpha1.GateKind) v1alpha1.RolloutStatus {
		st := statusIn(v1alpha1.PhaseAwaitingDecision)
		st.CurrentStep, st.CanaryWeight = 3, v1alpha1.PercentOf(20)
		st.Gate = &v1alpha1.Gate{Kind: kind, Expires: &metav1.MicroTime{Time: now.Add(-time.Second)}}
		return st
	}
	observed := rollout.Observed{CanaryHealth: rollout.HealthUp, Weight: v1alpha1.PercentOf(20)}
	for _, kind := range []v1alpha1.GateKind{v1alpha1.GateStage, v1alpha1.GateApproval, v1alpha1.GatePause} {
		res := Step(plan, gated(kind), Input{Now: now, Observed: observed,
			Commands: []rollout.Command{{Kind: rollout.CommandApprove, Actor: "test"}}})
		if err := res.Consumed[0]; err != nil {
			t.Fatalf("%s gate: approve refused: %v", kind, err)
		}
		if res.Status.Phase != v1alpha1.PhasePromoting && res.Status.Phase != v1alpha1.PhaseSucceeded {
			t.Errorf("%s gate approved past the plan's end: %s (%s), want a promotion", kind, res.Status.Phase, res.Status.Message)
		}
	}
	res := Step(plan, gated(v1alpha1.GateApproval), Input{Now: now, Observed: observed})
	if res.Status.Phase != v1alpha1.PhaseAwaitingDecision || !res.Status.Gate.Expired {
		t.Errorf("expired approval of a step gone: %s, gate %+v; want still awaiting a person, the gate marked expired", res.Status.Phase, res.Status.Gate)
	}
}
