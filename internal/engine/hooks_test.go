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

func withHooks(p spec.Plan, types ...v1alpha1.HookType) spec.Plan {
	p.Hooks = map[v1alpha1.HookType][]v1alpha1.WebhookSpec{}
	for _, t := range types {
		p.Hooks[t] = []v1alpha1.WebhookSpec{{Name: string(t), Type: t}}
	}
	return p
}

func count(ts []v1alpha1.HookType, t v1alpha1.HookType) int {
	n := 0
	for _, x := range ts {
		if x == t {
			n++
		}
	}
	return n
}

func TestConfirmRolloutWaitsWithoutTraffic(t *testing.T) {
	s := newSim(t, withHooks(seedPlan(v1alpha1.DecisionAutomatic, 1), v1alpha1.HookConfirmRollout))
	open := false
	s.hooks = func(v1alpha1.HookType) (bool, string) {
		if open {
			return true, "change window open"
		}
		return false, "change freeze"
	}
	s.deploy("v2")
	s.advance(10 * time.Minute)
	if s.weight != 0 || s.st.Phase != v1alpha1.PhaseProgressing || !strings.Contains(s.st.Message, "change freeze") {
		t.Fatalf("during the freeze: weight %s phase %s (%s)", s.weight, s.st.Phase, s.st.Message)
	}
	// Polled once per analysis interval (1m), not at every tick.
	if n := count(s.hookRuns, v1alpha1.HookConfirmRollout); n < 9 || n > 12 {
		t.Errorf("confirm-rollout ran %d times in 10 minutes, want about once a minute", n)
	}
	open = true
	s.runUntil(v1alpha1.PhaseSucceeded, 2*time.Hour)
	if !strings.Contains(s.history(), "confirm-rollout hooks said yes: change window open") {
		t.Errorf("history:\n%s", s.history())
	}
}

func TestPreRolloutFailurePastTheLimitRollsBack(t *testing.T) {
	s := newSim(t, withHooks(seedPlan(v1alpha1.DecisionAutomatic, 1), v1alpha1.HookPreRollout))
	s.hooks = func(v1alpha1.HookType) (bool, string) { return false, "smoke test: 503 on /checkout" }
	s.deploy("v2")
	s.runUntil(v1alpha1.PhaseRolledBack, 10*time.Minute)
	if len(s.sawWeights()) != 0 || !strings.Contains(s.st.Rollback.Reason, "pre-rollout hooks failed: smoke test") {
		t.Errorf("weights %v, rollback %+v", s.sawWeights(), s.st.Rollback)
	}
	if n := count(s.hookRuns, v1alpha1.HookPreRollout); n != 2 {
		t.Errorf("pre-rollout ran %d times, want 2 (failureLimit 1)", n)
	}
}

func TestConfirmTrafficIncreaseGatesEachIncrease(t *testing.T) {
	s := newSim(t, withHooks(seedPlan(v1alpha1.DecisionAutomatic, 1), v1alpha1.HookConfirmTrafficIncrease))
	allow := map[v1alpha1.Percent]bool{}
	s.hooks = func(v1alpha1.HookType) (bool, string) {
		if s.weight == v1alpha1.PercentOf(5) && !allow[s.weight] {
			return false, "waiting for on-call"
		}
		return true, "ok"
	}
	s.deploy("v2")
	s.advance(30 * time.Minute)
	if s.weight != v1alpha1.PercentOf(5) {
		t.Fatalf("weight %s while the hook says no, want 5%%", s.weight)
	}
	allow[s.weight] = true
	s.runUntil(v1alpha1.PhaseSucceeded, 2*time.Hour)
	// Asked before 5%, 25% and 50%: once each when it says yes at once.
	if n := count(s.hookRuns, v1alpha1.HookConfirmTrafficIncrease); n < 3 {
		t.Errorf("confirm-traffic-increase ran %d times", n)
	}
}

// In manual mode a person's go at a stage gate is asked once: the raise
// then waits for the confirm-traffic-increase hooks, and happens when they
// say yes, with no second promote.
func TestManualRaiseWaitsForTheHooksAfterThePersonSaidGo(t *testing.T) {
	s := newSim(t, withHooks(seedPlan(v1alpha1.DecisionManual, 1), v1alpha1.HookConfirmTrafficIncrease))
	var allow bool
	s.hooks = func(v1alpha1.HookType) (bool, string) {
		if s.weight == v1alpha1.PercentOf(5) && !allow {
			return false, "waiting for on-call"
		}
		return true, "ok"
	}
	s.deploy("v2")
	s.runUntil(v1alpha1.PhaseAwaitingDecision, 15*time.Minute)
	s.step(rollout.Command{Kind: rollout.CommandPromote, Actor: "bob"})
	s.advance(10 * time.Minute)
	if s.weight != v1alpha1.PercentOf(5) || s.st.Phase != v1alpha1.PhaseProgressing || s.st.HookWait == nil {
		t.Fatalf("weight %s phase %s hook wait %+v: want the raise held by the hooks, not by a second gate",
			s.weight, s.st.Phase, s.st.HookWait)
	}
	allow = true
	s.advance(2 * time.Minute)
	if s.weight != v1alpha1.PercentOf(25) {
		t.Fatalf("weight %s after the hooks said yes, want 25%% without another promote\n%s", s.weight, s.history())
	}
}

func TestConfirmPromotionGatesPromotion(t *testing.T) {
	s := newSim(t, withHooks(seedPlan(v1alpha1.DecisionAutomatic, 1), v1alpha1.HookConfirmPromotion))
	ready := false
	s.hooks = func(v1alpha1.HookType) (bool, string) { return ready, "release manager" }
	s.deploy("v2")
	s.advance(2 * time.Hour)
	if s.st.Phase != v1alpha1.PhaseProgressing || s.weight != v1alpha1.PercentOf(50) {
		t.Fatalf("phase %s weight %s, want to hold at 50%%", s.st.Phase, s.weight)
	}
	ready = true
	s.runUntil(v1alpha1.PhaseSucceeded, 5*time.Minute)
}

func approvalPlan(onTimeout v1alpha1.ApprovalTimeoutPolicy) spec.Plan {
	p := seedPlan(v1alpha1.DecisionAutomatic, 1)
	approval := spec.PlanStep{Kind: spec.StepApproval, Duration: time.Hour, OnTimeout: onTimeout, Message: "QA sign-off"}
	p.Steps = append(p.Steps[:2:2], append([]spec.PlanStep{approval}, p.Steps[2:]...)...)
	return p
}

func TestApprovalStep(t *testing.T) {
	s := newSim(t, approvalPlan(v1alpha1.ApprovalRollback))
	s.deploy("v2")
	s.runUntil(v1alpha1.PhaseAwaitingDecision, 15*time.Minute)
	if s.st.Gate.Kind != v1alpha1.GateApproval || s.st.Gate.Reason != "QA sign-off" || s.st.Gate.Expires == nil {
		t.Fatalf("gate %+v", s.st.Gate)
	}
	s.step(rollout.Command{Kind: rollout.CommandApprove, Actor: "qa-lead", Reason: "tested on staging"})
	if s.st.Phase != v1alpha1.PhaseProgressing || s.weight != v1alpha1.PercentOf(25) {
		t.Fatalf("after approve: %s at %s", s.st.Phase, s.weight)
	}
	if !strings.Contains(s.history(), "Approval decision approved by qa-lead: tested on staging") {
		t.Errorf("who approved and why is not in the history:\n%s", s.history())
	}
	if err := Allowed(s.st, rollout.Command{Kind: rollout.CommandApprove}); err == nil {
		t.Errorf("approve allowed with nothing awaited")
	}
}

func TestRejectRollsBack(t *testing.T) {
	s := newSim(t, approvalPlan(v1alpha1.ApprovalRollback))
	s.deploy("v2")
	s.runUntil(v1alpha1.PhaseAwaitingDecision, 15*time.Minute)
	s.step(rollout.Command{Kind: rollout.CommandReject, Actor: "qa-lead", Reason: "checkout button misaligned"})
	if s.st.Phase != v1alpha1.PhaseAborted || s.weight != 0 || !strings.Contains(s.st.Rollback.Reason, "rejected by qa-lead: checkout button misaligned") {
		t.Fatalf("after reject: %s at %s: %+v", s.st.Phase, s.weight, s.st.Rollback)
	}
}

func TestApprovalTimeoutPolicies(t *testing.T) {
	s := newSim(t, approvalPlan(v1alpha1.ApprovalRollback))
	s.deploy("v2")
	s.runUntil(v1alpha1.PhaseAwaitingDecision, 15*time.Minute)
	took := s.runUntil(v1alpha1.PhaseRolledBack, 2*time.Hour)
	if took < 59*time.Minute || !strings.Contains(s.st.Rollback.Reason, "no approval within 1h0m0s") {
		t.Errorf("after %s: %+v", took, s.st.Rollback)
	}

	w := newSim(t, approvalPlan(v1alpha1.ApprovalWait))
	w.deploy("v2")
	w.runUntil(v1alpha1.PhaseAwaitingDecision, 15*time.Minute)
	w.advance(3 * time.Hour)
	if w.st.Phase != v1alpha1.PhaseAwaitingDecision || !w.st.Gate.Expired || !strings.Contains(w.history(), "No approval within 1h0m0s; still waiting") {
		t.Fatalf("wait policy: %s %+v", w.st.Phase, w.st.Gate)
	}
	w.step(rollout.Command{Kind: rollout.CommandApprove})
	w.runUntil(v1alpha1.PhaseSucceeded, 2*time.Hour)
}

func TestUndoInsideTheWindowAndContractAfterIt(t *testing.T) {
	p := withHooks(seedPlan(v1alpha1.DecisionAutomatic, 1), v1alpha1.HookContract)
	p.UndoWindow = 30 * time.Minute
	s := newSim(t, p)
	s.deploy("v2")
	s.runUntil(v1alpha1.PhaseSucceeded, 2*time.Hour)
	s.advance(10 * time.Minute)
	if count(s.hookRuns, v1alpha1.HookContract) != 0 {
		t.Fatalf("contract hooks ran inside the undo window")
	}
	s.step(rollout.Command{Kind: rollout.CommandUndo, Actor: "sre", Reason: "checkout latency"})
	if s.st.Phase != v1alpha1.PhaseRolledBack || s.stable != "v1" || s.st.Stable.Version != "v1" || s.weight != 0 {
		t.Fatalf("after undo: %s stable %s (status %s) weight %s", s.st.Phase, s.stable, s.st.Stable.Version, s.weight)
	}
	// Undo is one switch, not a replay of the steps.
	if n := len(s.sawWeights()); n != 4 {
		t.Errorf("undo went through steps again: weights %v", s.sawWeights())
	}
	s.advance(2 * time.Hour)
	if count(s.hookRuns, v1alpha1.HookContract) != 0 {
		t.Errorf("contract hooks ran after an undo")
	}
	// The undone version can be rolled out again.
	s.step(rollout.Command{Kind: rollout.CommandRetry})
	s.runUntil(v1alpha1.PhaseSucceeded, 2*time.Hour)

	s.advance(31 * time.Minute)
	if n := count(s.hookRuns, v1alpha1.HookContract); n != 1 {
		t.Errorf("contract hooks ran %d times after the window closed, want 1", n)
	}
	if err := Allowed(s.st, rollout.Command{Kind: rollout.CommandUndo}); err == nil || !strings.Contains(err.Error(), "undo window") {
		t.Errorf("undo after the window: %v", err)
	}
}

func TestUndoOffWithAZeroWindow(t *testing.T) {
	p := seedPlan(v1alpha1.DecisionAutomatic, 1)
	p.UndoWindow = 0
	s := newSim(t, p)
	s.deploy("v2")
	s.runUntil(v1alpha1.PhaseSucceeded, 2*time.Hour)
	if err := Allowed(s.st, rollout.Command{Kind: rollout.CommandUndo}); err == nil {
		t.Errorf("undo allowed with undoWindow 0")
	}
}

func TestResolveAddsRolloutHooksAsMetrics(t *testing.T) {
	fl := int32(2)
	p, err := spec.Resolve(&v1alpha1.RolloutSpec{
		Strategy: v1alpha1.Strategy{Steps: []v1alpha1.Step{{SetWeight: pct(5)}}},
		Analysis: &v1alpha1.AnalysisSpec{FailureLimit: &fl, Interval: &metav1.Duration{Duration: time.Minute}},
		Webhooks: []v1alpha1.WebhookSpec{{Name: "load", Type: v1alpha1.HookRollout, URL: "http://127.0.0.1:1/"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Analysis.Metrics) != 1 || p.Analysis.Metrics[0].Name != "webhook/load" || p.Analysis.Metrics[0].FailureLimit != 2 || p.Analysis.Metrics[0].Hook == nil {
		t.Errorf("metrics %+v", p.Analysis.Metrics)
	}
}
