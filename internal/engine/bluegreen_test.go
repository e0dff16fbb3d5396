package engine

import (
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/spec"
)

// blueGreenPlan resolves a blue-green rollout checked every minute on the
// success rate, three passing checks of the preview before the switch.
func blueGreenPlan(t *testing.T, decision v1alpha1.DecisionMode, autoPromotionAfter time.Duration) spec.Plan {
	t.Helper()
	min99, three := 99.0, int32(3)
	bg := &v1alpha1.BlueGreenStrategy{PreviewListen: "127.0.0.1:8081", Checks: &three}
	if autoPromotionAfter > 0 {
		bg.AutoPromotionAfter = &metav1.Duration{Duration: autoPromotionAfter}
	}
	r := &v1alpha1.Rollout{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.KindRollout},
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: v1alpha1.RolloutSpec{
			Decision: decision,
			Service:  &v1alpha1.ServiceSpec{Listen: "127.0.0.1:8080", Stable: v1alpha1.Upstream{URL: "http://127.0.0.1:9001"}},
			Strategy: v1alpha1.Strategy{BlueGreen: bg},
			Analysis: &v1alpha1.AnalysisSpec{
				Interval: &metav1.Duration{Duration: time.Minute},
				Metrics:  []v1alpha1.MetricSpec{{Name: "request-success-rate", ThresholdRange: &v1alpha1.ThresholdRange{Min: &min99}}},
			},
		},
	}
	if errs := spec.Validate(r); len(errs) > 0 {
		t.Fatalf("Validate: %v", errs)
	}
	plan, err := spec.Resolve(&r.Spec)
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

// A healthy blue-green rollout previews the new version with no traffic,
// checks it, then switches all traffic in one weight change: the only
// weights ever set are 0 and 100.
func TestBlueGreenSwitchesAllTrafficAtOnceAfterItsChecks(t *testing.T) {
	s := newSim(t, blueGreenPlan(t, v1alpha1.DecisionAutomatic, 0))
	var weights []v1alpha1.Percent
	decide := s.decide
	s.decide = func(p spec.Plan, st v1alpha1.RolloutStatus, in Input) Result {
		r := decide(p, st, in)
		for _, a := range r.Actions {
			if a.Kind == rollout.ActionSetWeight && (len(weights) == 0 || weights[len(weights)-1] != a.Weight) {
				weights = append(weights, a.Weight)
			}
		}
		return r
	}
	s.deploy("v2")
	s.advance(30 * time.Second)
	if !s.st.Previewing || s.weight != 0 || !checking(s.st) {
		t.Fatalf("previewing %v at %s, checking %v: want the preview open with no traffic and checked", s.st.Previewing, s.weight, checking(s.st))
	}
	took := s.runUntil(v1alpha1.PhaseSucceeded, time.Hour)
	if took < 3*time.Minute-30*time.Second || took > 3*time.Minute {
		t.Errorf("switched %s after the preview opened, want after its third check (3m)\n%s", took+30*time.Second, s.history())
	}
	if !slices.Equal(weights, []v1alpha1.Percent{0, v1alpha1.FullWeight, 0}) {
		t.Errorf("weights set %v, want 0, then 100 at the switch, then 0 for the promoted stable", weights)
	}
	if s.stable != "v2" || s.st.Previous == nil || s.st.Previous.Version != "v1" || s.st.Previewing {
		t.Errorf("stable %s, previous %+v, previewing %v: want v2 with v1 kept for undo", s.stable, s.st.Previous, s.st.Previewing)
	}
	for _, want := range []string{"New version v2 is open on its preview", "Switched all traffic from v1 to v2 at once"} {
		if !strings.Contains(s.history(), want) {
			t.Errorf("history lacks %q:\n%s", want, s.history())
		}
	}
}

// A failing check of the preview rolls back before any user saw the new
// version; so does the preview going down.
func TestBlueGreenPreviewFailureRollsBackWithoutTraffic(t *testing.T) {
	s := newSim(t, blueGreenPlan(t, v1alpha1.DecisionAutomatic, 0))
	s.measure = func(*sim) []rollout.Measurement { return successRate(80) }
	s.deploy("v2")
	s.runUntil(v1alpha1.PhaseRolledBack, 5*time.Minute)
	if slices.ContainsFunc(s.sawWeights(), func(w v1alpha1.Percent) bool { return w > 0 }) || s.stable != "v1" || s.st.Previewing {
		t.Errorf("weights %v, stable %s, previewing %v: want no traffic ever on v2", s.sawWeights(), s.stable, s.st.Previewing)
	}

	s = newSim(t, blueGreenPlan(t, v1alpha1.DecisionAutomatic, 0))
	s.deploy("v2")
	s.advance(90 * time.Second)
	s.health, s.reason = rollout.HealthDown, "exit status 1"
	s.step()
	if s.st.Phase != v1alpha1.PhaseRolledBack || !strings.Contains(s.st.Rollback.Reason, "canary v2 is down") {
		t.Fatalf("phase %s, rollback %+v: a preview that goes down is an anomaly", s.st.Phase, s.st.Rollback)
	}
}

// In manual mode the preview waits for a person after its checks, and
// autoPromotionAfter bounds the wait; without it the wait has no end.
func TestBlueGreenManualWaitsThenPromotesOnItsOwn(t *testing.T) {
	s := newSim(t, blueGreenPlan(t, v1alpha1.DecisionManual, 10*time.Minute))
	s.deploy("v2")
	s.runUntil(v1alpha1.PhaseAwaitingDecision, 5*time.Minute)
	if g := s.st.Gate; g.Kind != v1alpha1.GatePromotion || g.Expires == nil || !strings.Contains(g.Reason, "promoted on its own in 10m0s") {
		t.Fatalf("gate %+v, want the promotion gate expiring in 10m", g)
	}
	waited := s.runUntil(v1alpha1.PhaseSucceeded, time.Hour)
	if waited < 10*time.Minute-time.Second || waited > 10*time.Minute+time.Second || s.stable != "v2" {
		t.Errorf("promoted %s after the gate opened (stable %s), want 10m", waited, s.stable)
	}
	if !strings.Contains(s.history(), "within 10m0s (autoPromotionAfter)") {
		t.Errorf("history does not say why it promoted:\n%s", s.history())
	}

	s = newSim(t, blueGreenPlan(t, v1alpha1.DecisionManual, 0))
	s.deploy("v2")
	s.runUntil(v1alpha1.PhaseAwaitingDecision, 5*time.Minute)
	s.advance(2 * time.Hour)
	if s.st.Phase != v1alpha1.PhaseAwaitingDecision || s.weight != 0 {
		t.Fatalf("phase %s at %s: without autoPromotionAfter the preview waits for a person", s.st.Phase, s.weight)
	}
	s.step(rollout.Command{Kind: rollout.CommandPromote, Actor: "bob"})
	if s.st.Phase != v1alpha1.PhaseSucceeded || s.stable != "v2" {
		t.Fatalf("phase %s stable %s after promote", s.st.Phase, s.stable)
	}
}

// In automatic mode autoPromotionAfter keeps the checked preview that long
// before the switch, still checked: a failure meanwhile rolls back.
func TestBlueGreenAutomaticKeepsThePreviewForAutoPromotionAfter(t *testing.T) {
	s := newSim(t, blueGreenPlan(t, v1alpha1.DecisionAutomatic, 20*time.Minute))
	s.deploy("v2")
	took := s.runUntil(v1alpha1.PhaseSucceeded, 2*time.Hour)
	if took < 23*time.Minute-time.Second || took > 23*time.Minute+time.Second {
		t.Errorf("switched after %s, want 3m of checks then 20m", took)
	}

	s = newSim(t, blueGreenPlan(t, v1alpha1.DecisionAutomatic, 20*time.Minute))
	s.deploy("v2")
	s.advance(10 * time.Minute)
	s.measure = func(*sim) []rollout.Measurement { return successRate(80) }
	s.runUntil(v1alpha1.PhaseRolledBack, 2*time.Minute)
	if s.stable != "v1" {
		t.Errorf("stable %s after a failure in the wait", s.stable)
	}
}

// An operator cannot give a blue-green rollout a share of the traffic; an
// undo after the switch goes straight back to the old version.
func TestBlueGreenRefusesAWeightAndUndoesAtOnce(t *testing.T) {
	s := newSim(t, blueGreenPlan(t, v1alpha1.DecisionAutomatic, 0))
	s.deploy("v2")
	s.advance(90 * time.Second)
	s.step(rollout.Command{Kind: rollout.CommandSetWeight, Weight: pct(30), Actor: "bob"})
	if s.weight != 0 || len(s.refused) != 1 || !strings.Contains(s.refused[0].Error(), "switches all traffic at once") {
		t.Fatalf("weight %s, refused %v", s.weight, s.refused)
	}
	if err := Allowed(s.st, rollout.Command{Kind: rollout.CommandSetWeight, Weight: pct(30)}); err == nil {
		t.Error("Allowed accepts a weight for a previewed blue-green rollout")
	}
	s.runUntil(v1alpha1.PhaseSucceeded, time.Hour)
	s.advance(time.Minute)
	s.step(rollout.Command{Kind: rollout.CommandUndo, Actor: "carol"})
	if s.st.Phase != v1alpha1.PhaseRolledBack || s.stable != "v1" || s.weight != 0 {
		t.Fatalf("after undo: phase %s, stable %s, weight %s", s.st.Phase, s.stable, s.weight)
	}
}

// The watch after promotion guards a blue-green switch as it guards a
// canary's: the old version's baseline is recorded before the switch, and
// a new version that turns bad with all the traffic is switched back.
func TestBlueGreenSwitchIsWatchedAndUndone(t *testing.T) {
	plan := watchPlan(10*time.Minute, 15*time.Minute)
	// The plan spec.Resolve makes of blueGreen: {checks: 3}.
	plan.Steps, plan.BlueGreen = []spec.PlanStep{{Kind: spec.StepAnalysis, Checks: 3}}, true
	s := promoted(t, plan, afterPromotion(90, 100))
	if s.sawWeights()[0] != v1alpha1.FullWeight {
		t.Fatalf("weights %v: a blue-green rollout goes from none of the traffic to all of it", s.sawWeights())
	}
	s.runUntil(v1alpha1.PhaseRolledBack, 5*time.Minute)
	if s.stable != "v1" || s.st.Watch == nil || s.st.Watch.Outcome != v1alpha1.WatchFailed {
		t.Fatalf("stable %s, watch %+v: want v2 undone by the watch\n%s", s.stable, s.st.Watch, s.history())
	}
}
