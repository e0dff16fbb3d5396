package engine

import (
	"strings"
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
		// Going past a pause or an approval goes to the next step, which
		// is never past the plan's end.
		if kind != v1alpha1.GateStage && res.Status.CurrentStep > int32(len(plan.Steps)) {
			t.Errorf("%s gate approved: step index %d past the %d steps", kind, res.Status.CurrentStep, len(plan.Steps))
		}
	}
	res := Step(plan, gated(v1alpha1.GateApproval), Input{Now: now, Observed: observed})
	if res.Status.Phase != v1alpha1.PhaseAwaitingDecision || !res.Status.Gate.Expired {
		t.Errorf("expired approval of a step gone: %s, gate %+v; want still awaiting a person, the gate marked expired", res.Status.Phase, res.Status.Gate)
	}
}

// TestPromoteAfterTheLastStep: with every step done and the promotion
// waiting for a passing check, promote has no step to skip and says so,
// pointing at promote --full; the index never goes past the plan, so no
// one reads "step 8/6".
func TestPromoteAfterTheLastStep(t *testing.T) {
	plan := seedPlan(v1alpha1.DecisionAutomatic, 1)
	st := statusIn(v1alpha1.PhaseProgressing)
	n := int32(len(plan.Steps))
	st.CurrentStep, st.CanaryWeight = n, v1alpha1.PercentOf(50)
	st.Message = "all steps done; waiting for a passing check at 50% before promotion"
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	in := Input{Now: now, Observed: rollout.Observed{CanaryHealth: rollout.HealthUp, Weight: v1alpha1.PercentOf(50)}}
	for range 2 {
		in.Commands = []rollout.Command{{Kind: rollout.CommandPromote, Actor: "ann"}}
		res := Step(plan, st, in)
		err := res.Consumed[0]
		if err == nil || !strings.Contains(err.Error(), "all 6 steps are done") || !strings.Contains(err.Error(), "promote --full") {
			t.Fatalf("promote after the last step: %v; want a refusal naming promote --full", err)
		}
		if res.Status.StepLabel != "6/6 done" {
			t.Fatalf("step label %q after the last step, want 6/6 done", res.Status.StepLabel)
		}
		if res.Status.CurrentStep != n || res.Status.Phase != v1alpha1.PhaseProgressing {
			t.Fatalf("refused promote moved the rollout: step index %d, %s", res.Status.CurrentStep, res.Status.Phase)
		}
		st = res.Status
	}
	in.Commands = []rollout.Command{{Kind: rollout.CommandPromoteFull, Actor: "ann"}}
	if res := Step(plan, st, in); res.Consumed[0] != nil || res.Status.CurrentStep != n {
		t.Fatalf("promote --full after the last step: %v, step index %d", res.Consumed[0], res.Status.CurrentStep)
	}
}

// TestStepLabelCountsFromOne: the status' stepLabel, which kubectl get
// shows, counts steps from 1 where currentStep counts from 0.
func TestStepLabelCountsFromOne(t *testing.T) {
	plan := seedPlan(v1alpha1.DecisionAutomatic, 1)
	for _, tc := range []struct {
		phase v1alpha1.Phase
		index int32
		want  string
	}{
		{v1alpha1.PhaseIdle, 0, ""},
		{v1alpha1.PhaseProgressing, 0, "1/6"},
		{v1alpha1.PhasePaused, 2, "3/6"},
		{v1alpha1.PhaseRolledBack, 5, "6/6"},
		{v1alpha1.PhasePromoting, 6, "6/6 done"},
		{v1alpha1.PhaseProgressing, 9, "6/6 done"}, // a plan a reload shortened
	} {
		st := statusIn(tc.phase)
		st.CurrentStep = tc.index
		if got := newMachine(plan, st, Input{}).stepOfSteps(); got != tc.want {
			t.Errorf("%s at index %d: %q, want %q", tc.phase, tc.index, got, tc.want)
		}
	}
}
