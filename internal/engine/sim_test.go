package engine

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/spec"
)

// sim plays the runtime around the engine on a simulated clock: it carries
// out actions at once, settles through the transient phases with Settle as
// the runner does, and measures through a function the test provides.
//
// It does not drive the real runtime.Runner with fakes of its ports: the
// runner's hooks run webhooks on goroutines and hand their answers to the
// tick the scheduler picks, while these tests walk hours of rollout second
// by second and count hook runs exactly; and the engine's own tests would
// then depend on the runtime. The loop both share (how many decisions in a
// row, through which phases, commands in the first only) is Settle; what
// happens between two decisions (carry the actions out, observe again) is
// the runtime's, played here by the sim.
type sim struct {
	t       testing.TB
	plan    spec.Plan
	st      v1alpha1.RolloutStatus
	now     time.Time
	weight  v1alpha1.Percent
	stable  string
	canary  string
	health  rollout.Health
	failed  bool   // the target reports the canary failed for good
	reason  string // why it is down
	measure func(s *sim) []rollout.Measurement
	// hooks answers hook runs (nil: every hook says yes); the answer is
	// fed back at the next step, as a runtime would.
	hooks    func(t v1alpha1.HookType) (bool, string)
	answers  []HookResult
	hookRuns []v1alpha1.HookType
	// alarms are handed to the next step, as a runtime hands over what
	// its continuous tests found since the last one.
	alarms  []rollout.Alarm
	events  []v1alpha1.Event
	refused []error
	// decide is Step, or a test's checked version of it.
	decide func(spec.Plan, v1alpha1.RolloutStatus, Input) Result
}

var t0 = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

func newSim(t testing.TB, plan spec.Plan) *sim {
	s := &sim{t: t, plan: plan, now: t0, stable: "v1", health: rollout.HealthUp, measure: healthy, decide: Step}
	s.st = v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseIdle, Stable: &v1alpha1.VersionRef{Version: "v1"}}
	return s
}

// step settles the rollout as the runner's tick does: one decision with
// the commands, then more while the phase is transient.
func (s *sim) step(cmds ...rollout.Command) {
	s.t.Helper()
	settled, _ := Settle(func() (v1alpha1.Phase, error) {
		s.decideOnce(cmds)
		cmds = nil
		return s.st.Phase, nil
	})
	if !settled {
		s.t.Fatalf("rollout did not settle: %s", s.st.Phase)
	}
}

// decideOnce runs one decision and carries out its actions at once.
func (s *sim) decideOnce(cmds []rollout.Command) {
	s.t.Helper()
	in := Input{Now: s.now, Commands: cmds, HookResults: s.answers, Alarms: s.alarms,
		Observed: rollout.Observed{CanaryVersion: s.canary, CanaryHealth: s.health, CanaryReason: s.reason, CanaryFailed: s.failed,
			StableVersion: s.stable, Weight: s.weight}}
	s.answers, s.alarms = nil, nil
	if CheckDue(s.st, s.now) {
		in.Measurements = s.measure(s)
	}
	r := s.decide(s.plan, s.st, in)
	for _, err := range r.Consumed {
		if err != nil {
			s.refused = append(s.refused, err)
		}
	}
	s.st = r.Status
	s.events = append(s.events, r.Events...)
	for _, a := range r.Actions {
		s.carryOut(a)
	}
}

// carryOut makes the simulated world do what an action asks, at once.
func (s *sim) carryOut(a rollout.Action) {
	switch a.Kind {
	case rollout.ActionSetWeight:
		s.weight = a.Weight
	case rollout.ActionPromote:
		s.stable = a.Version.Version
	case rollout.ActionDeployCanary:
		s.canary = a.Version.Version
	case rollout.ActionRunHooks:
		ok, msg := true, "yes"
		if s.hooks != nil {
			ok, msg = s.hooks(a.Hook)
		}
		s.hookRuns = append(s.hookRuns, a.Hook)
		s.answers = append(s.answers, HookResult{Run: a.Run, OK: ok, Message: msg})
	}
}

// advance moves the clock by d in ticks of one second, stepping each tick.
func (s *sim) advance(d time.Duration) {
	s.t.Helper()
	for end := s.now.Add(d); s.now.Before(end); {
		s.now = s.now.Add(time.Second)
		s.step()
	}
}

// runUntil advances until the phase is p or the limit passes.
func (s *sim) runUntil(p v1alpha1.Phase, limit time.Duration) time.Duration {
	s.t.Helper()
	start := s.now
	for end := s.now.Add(limit); s.st.Phase != p; {
		if !s.now.Before(end) {
			s.t.Fatalf("phase %s not reached within %s; phase %s, step %d, weight %s; events:\n%s",
				p, limit, s.st.Phase, s.st.CurrentStep, s.st.CanaryWeight, s.history())
		}
		s.now = s.now.Add(time.Second)
		s.step()
	}
	return s.now.Sub(start)
}

func (s *sim) deploy(version string) {
	s.step(rollout.Command{Kind: rollout.CommandDeploy, Canary: &v1alpha1.VersionRef{Version: version}, Actor: "alice"})
}

func (s *sim) history() string {
	var b strings.Builder
	for _, e := range s.events {
		b.WriteString(e.Time.UTC().Format("15:04:05") + " " + string(e.Phase) + " " + e.Weight.String() + " " + e.Message + "\n")
	}
	return b.String()
}

func (s *sim) sawWeights() []v1alpha1.Percent {
	var ws []v1alpha1.Percent
	for _, e := range s.events {
		if e.Reason == "WeightChanged" || e.Reason == "Promoting" {
			ws = append(ws, e.Weight)
		}
	}
	return ws
}

func val(v float64) *float64 { return &v }

func successRate(canary float64) []rollout.Measurement {
	return []rollout.Measurement{{Metric: "request-success-rate", Canary: val(canary), Stable: val(100)}}
}

func healthy(*sim) []rollout.Measurement { return successRate(99.9) }

// failingFrom fails the success rate once the weight reaches w.
func failingFrom(w v1alpha1.Percent) func(*sim) []rollout.Measurement {
	return func(s *sim) []rollout.Measurement {
		if s.weight >= w {
			return successRate(91.5)
		}
		return successRate(99.9)
	}
}

func pct(p float64) *v1alpha1.Percent { w := v1alpha1.PercentOf(p); return &w }

// seedPlan is the write-up's plan: 5% → 25% → 50% → 100%, ten minutes of
// soak per stage, a check every minute.
func seedPlan(decision v1alpha1.DecisionMode, failureLimit int32) spec.Plan {
	min99 := 99.0
	s := v1alpha1.RolloutSpec{
		Decision: decision,
		Strategy: v1alpha1.Strategy{Steps: []v1alpha1.Step{
			{SetWeight: pct(5)}, {Pause: &v1alpha1.PauseStep{Duration: &metav1.Duration{Duration: 10 * time.Minute}}},
			{SetWeight: pct(25)}, {Pause: &v1alpha1.PauseStep{Duration: &metav1.Duration{Duration: 10 * time.Minute}}},
			{SetWeight: pct(50)}, {Pause: &v1alpha1.PauseStep{Duration: &metav1.Duration{Duration: 10 * time.Minute}}},
		}},
		Analysis: &v1alpha1.AnalysisSpec{
			Interval:     &metav1.Duration{Duration: time.Minute},
			FailureLimit: &failureLimit,
			Metrics:      []v1alpha1.MetricSpec{{Name: "request-success-rate", ThresholdRange: &v1alpha1.ThresholdRange{Min: &min99}}},
		},
	}
	p, err := spec.Resolve(&s)
	if err != nil {
		panic(err)
	}
	return p
}

func TestRolloutScenarios(t *testing.T) {
	cases := []struct {
		name     string
		plan     spec.Plan
		measure  func(*sim) []rollout.Measurement
		phase    v1alpha1.Phase
		limit    time.Duration
		weights  []float64 // weights seen, in order
		stable   string
		inReason string // substring of the rollback reason
	}{
		{
			name: "healthy canary is promoted", plan: seedPlan(v1alpha1.DecisionAutomatic, 1), measure: healthy,
			phase: v1alpha1.PhaseSucceeded, limit: time.Hour, weights: []float64{5, 25, 50, 100}, stable: "v2",
		},
		{
			name: "unhealthy at the second stage is rolled back", plan: seedPlan(v1alpha1.DecisionAutomatic, 1),
			measure: failingFrom(v1alpha1.PercentOf(25)), phase: v1alpha1.PhaseRolledBack, limit: time.Hour,
			weights: []float64{5, 25}, stable: "v1", inReason: "request-success-rate 91.5% < min 99% (failed 2 times, failureLimit 1)",
		},
		{
			name: "unhealthy from the start with no tolerance", plan: seedPlan(v1alpha1.DecisionAutomatic, 0),
			measure: failingFrom(0), phase: v1alpha1.PhaseRolledBack, limit: 5 * time.Minute,
			weights: []float64{5}, stable: "v1", inReason: "(failed 1 times, failureLimit 0)",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, tc.plan)
			s.measure = tc.measure
			s.deploy("v2")
			took := s.runUntil(tc.phase, tc.limit)
			var got []float64
			for _, w := range s.sawWeights() {
				got = append(got, w.Float())
			}
			if !equalFloats(got, tc.weights) {
				t.Errorf("weights %v, want %v\n%s", got, tc.weights, s.history())
			}
			if s.stable != tc.stable || s.st.Stable.Version != tc.stable {
				t.Errorf("stable %s (status %s), want %s", s.stable, s.st.Stable.Version, tc.stable)
			}
			if s.weight != 0 || s.st.CanaryWeight != 0 {
				t.Errorf("weight after the rollout %s, want 0", s.weight)
			}
			if tc.inReason != "" {
				if s.st.Rollback == nil || !strings.Contains(s.st.Rollback.Reason, tc.inReason) {
					t.Errorf("rollback %+v, want reason containing %q", s.st.Rollback, tc.inReason)
				}
				if s.st.Rollback.Metric != "request-success-rate" {
					t.Errorf("rollback metric %q", s.st.Rollback.Metric)
				}
			}
			t.Logf("%s after %s", tc.phase, took)
		})
	}
}

func equalFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestHealthyRolloutTakesThePlannedTime(t *testing.T) {
	s := newSim(t, seedPlan(v1alpha1.DecisionAutomatic, 1))
	s.deploy("v2")
	took := s.runUntil(v1alpha1.PhaseSucceeded, 2*time.Hour)
	// Three stages of ten minutes each; the first decision after deploy
	// happens one tick later.
	if took < 30*time.Minute || took > 30*time.Minute+2*time.Second {
		t.Errorf("healthy rollout took %s, want 30m", took)
	}
	if s.st.Analysis.PassedChecks < 29 {
		t.Errorf("passed checks %d, want one a minute", s.st.Analysis.PassedChecks)
	}
}

func TestManualGateWaitsForPromote(t *testing.T) {
	s := newSim(t, seedPlan(v1alpha1.DecisionManual, 1))
	s.deploy("v2")
	s.runUntil(v1alpha1.PhaseAwaitingDecision, 15*time.Minute)
	if s.st.Gate.Kind != v1alpha1.GateStage || s.weight != v1alpha1.PercentOf(5) {
		t.Fatalf("gate %+v at %s, want a stage gate at 5%%", s.st.Gate, s.weight)
	}
	s.advance(3 * time.Hour)
	if s.st.Phase != v1alpha1.PhaseAwaitingDecision || s.weight != v1alpha1.PercentOf(5) {
		t.Fatalf("moved on without a person: %s at %s", s.st.Phase, s.weight)
	}
	for _, want := range []float64{25, 50} {
		s.step(rollout.Command{Kind: rollout.CommandPromote, Actor: "bob"})
		if s.weight != v1alpha1.PercentOf(want) {
			t.Fatalf("after promote weight %s, want %v%%", s.weight, want)
		}
		s.runUntil(v1alpha1.PhaseAwaitingDecision, 15*time.Minute)
	}
	if s.st.Gate.Kind != v1alpha1.GatePromotion {
		t.Fatalf("gate %+v, want the promotion gate", s.st.Gate)
	}
	s.step(rollout.Command{Kind: rollout.CommandPromote, Actor: "bob"})
	if s.st.Phase != v1alpha1.PhaseSucceeded || s.stable != "v2" {
		t.Fatalf("phase %s stable %s, want Succeeded with v2", s.st.Phase, s.stable)
	}
	if !strings.Contains(s.history(), "Promotion decision approved by bob") {
		t.Errorf("history does not say who approved:\n%s", s.history())
	}
}

func TestManualModeStillRollsBackOnFailure(t *testing.T) {
	s := newSim(t, seedPlan(v1alpha1.DecisionManual, 0))
	s.measure = failingFrom(0)
	s.deploy("v2")
	s.runUntil(v1alpha1.PhaseRolledBack, 5*time.Minute)
}

func TestHybridWaitsOnAnomaly(t *testing.T) {
	s := newSim(t, seedPlan(v1alpha1.DecisionHybrid, 0))
	s.measure = failingFrom(v1alpha1.PercentOf(25))
	s.deploy("v2")
	s.runUntil(v1alpha1.PhaseAwaitingDecision, time.Hour)
	if s.st.Gate.Kind != v1alpha1.GateAnomaly || s.weight != v1alpha1.PercentOf(25) {
		t.Fatalf("gate %+v at %s, want an anomaly gate at 25%%", s.st.Gate, s.weight)
	}
	// It keeps checking and keeps waiting: no rollback without a person.
	s.advance(30 * time.Minute)
	if s.st.Phase != v1alpha1.PhaseAwaitingDecision {
		t.Fatalf("phase %s, want AwaitingDecision", s.st.Phase)
	}
	// The person judges the anomaly harmless: the rollout goes on, and with
	// healthy metrics it is promoted.
	s.measure = healthy
	s.step(rollout.Command{Kind: rollout.CommandPromote, Actor: "carol", Reason: "known slow dependency"})
	s.runUntil(v1alpha1.PhaseSucceeded, time.Hour)
	if !strings.Contains(s.history(), "carol: known slow dependency") {
		t.Errorf("history lacks the approval reason:\n%s", s.history())
	}
}

func TestHybridAbortRollsBack(t *testing.T) {
	s := newSim(t, seedPlan(v1alpha1.DecisionHybrid, 0))
	s.measure = failingFrom(0)
	s.deploy("v2")
	s.runUntil(v1alpha1.PhaseAwaitingDecision, 5*time.Minute)
	s.step(rollout.Command{Kind: rollout.CommandAbort, Actor: "dave"})
	if s.st.Phase != v1alpha1.PhaseAborted || s.weight != 0 {
		t.Fatalf("phase %s weight %s, want Aborted at 0", s.st.Phase, s.weight)
	}
}

func TestAbortMidwayAndRetry(t *testing.T) {
	s := newSim(t, seedPlan(v1alpha1.DecisionAutomatic, 1))
	s.deploy("v2")
	s.advance(12 * time.Minute)
	if s.weight != v1alpha1.PercentOf(25) {
		t.Fatalf("weight %s at 12m, want 25%%", s.weight)
	}
	s.step(rollout.Command{Kind: rollout.CommandAbort, Actor: "erin", Reason: "bad release notes"})
	if s.st.Phase != v1alpha1.PhaseAborted || s.weight != 0 || s.stable != "v1" {
		t.Fatalf("after abort: %s weight %s stable %s", s.st.Phase, s.weight, s.stable)
	}
	if s.st.Rollback.Outcome != v1alpha1.PhaseAborted || !strings.Contains(s.st.Rollback.Reason, "erin: bad release notes") {
		t.Errorf("rollback %+v", s.st.Rollback)
	}
	s.advance(time.Hour)
	if s.st.Phase != v1alpha1.PhaseAborted {
		t.Fatalf("aborted rollout moved on by itself: %s", s.st.Phase)
	}
	s.step(rollout.Command{Kind: rollout.CommandRetry})
	if s.st.Phase != v1alpha1.PhaseProgressing || s.st.CurrentStep != 1 || s.weight != v1alpha1.PercentOf(5) {
		t.Fatalf("after retry: %s step %d weight %s, want Progressing at step 2 with 5%%", s.st.Phase, s.st.CurrentStep, s.weight)
	}
	s.runUntil(v1alpha1.PhaseSucceeded, time.Hour)
}

func TestPauseAndResumeKeepRemainingSoak(t *testing.T) {
	s := newSim(t, seedPlan(v1alpha1.DecisionAutomatic, 1))
	s.deploy("v2")
	s.advance(4 * time.Minute) // 4 minutes into the first 10-minute soak
	s.step(rollout.Command{Kind: rollout.CommandPause})
	checks := s.st.Analysis.PassedChecks
	s.advance(45 * time.Minute)
	if s.st.Phase != v1alpha1.PhasePaused || s.weight != v1alpha1.PercentOf(5) {
		t.Fatalf("paused rollout moved: %s at %s", s.st.Phase, s.weight)
	}
	if s.st.Analysis.PassedChecks != checks {
		t.Errorf("checks ran while paused: %d → %d", checks, s.st.Analysis.PassedChecks)
	}
	s.step(rollout.Command{Kind: rollout.CommandResume})
	s.advance(5*time.Minute + 58*time.Second)
	if s.weight != v1alpha1.PercentOf(5) {
		t.Fatalf("soak ended early after resume: weight %s", s.weight)
	}
	s.advance(3 * time.Second)
	if s.weight != v1alpha1.PercentOf(25) {
		t.Fatalf("soak did not end 6m after resume: weight %s\n%s", s.weight, s.history())
	}
}

func TestNewCanaryMidRolloutRestartsAnalysis(t *testing.T) {
	s := newSim(t, seedPlan(v1alpha1.DecisionAutomatic, 1))
	s.deploy("v2")
	s.advance(15 * time.Minute)
	s.deploy("v3")
	if s.st.Canary.Version != "v3" || s.st.Analysis.PassedChecks != 0 {
		t.Fatalf("canary %s checks %d after the new version", s.st.Canary.Version, s.st.Analysis.PassedChecks)
	}
	// The new canary gets no traffic until its own health is known…
	if s.st.CurrentStep != 0 || s.weight != 0 {
		t.Fatalf("step %d weight %s right after the new canary, want 0 until it is healthy", s.st.CurrentStep, s.weight)
	}
	// …then starts again from the first stage.
	s.advance(time.Second)
	if s.st.CurrentStep != 1 || s.weight != v1alpha1.PercentOf(5) {
		t.Fatalf("step %d weight %s, want the first stage again", s.st.CurrentStep, s.weight)
	}
	s.runUntil(v1alpha1.PhaseSucceeded, time.Hour)
	if s.stable != "v3" {
		t.Errorf("stable %s, want v3", s.stable)
	}
}

func TestCanaryDownIsAnAnomalyAtOnce(t *testing.T) {
	s := newSim(t, seedPlan(v1alpha1.DecisionAutomatic, 5))
	s.deploy("v2")
	s.advance(90 * time.Second)
	s.health = rollout.HealthDown
	s.step()
	if s.st.Phase != v1alpha1.PhaseRolledBack || s.weight != 0 {
		t.Fatalf("phase %s weight %s, want RolledBack at once", s.st.Phase, s.weight)
	}
	if !strings.Contains(s.st.Rollback.Reason, "canary v2 is down") {
		t.Errorf("reason %q", s.st.Rollback.Reason)
	}
}

func TestUnhealthyCanaryFailsAtTheDeadline(t *testing.T) {
	s := newSim(t, seedPlan(v1alpha1.DecisionAutomatic, 1))
	s.health = rollout.HealthDown
	s.deploy("v2")
	took := s.runUntil(v1alpha1.PhaseFailed, time.Hour)
	if took != spec.DefaultProgressDeadline {
		t.Errorf("failed after %s, want the deadline %s", took, spec.DefaultProgressDeadline)
	}
	if s.weight != 0 || len(s.sawWeights()) != 0 {
		t.Errorf("an unhealthy canary received traffic: %v", s.sawWeights())
	}
}

func TestFailedCanaryRolledBackBeforeTraffic(t *testing.T) {
	s := newSim(t, seedPlan(v1alpha1.DecisionAutomatic, 1))
	s.health = rollout.HealthUnknown
	s.deploy("v2")
	s.advance(5 * time.Second)
	s.health, s.failed, s.reason = rollout.HealthDown, true, "crash loop: exited 3 times in 1m: exit status 1"
	s.step()
	if s.st.Phase != v1alpha1.PhaseRolledBack || len(s.sawWeights()) != 0 {
		t.Fatalf("phase %s, weights %v: want RolledBack at once, without traffic", s.st.Phase, s.sawWeights())
	}
	if want := "canary v2 is down: crash loop"; !strings.Contains(s.st.Rollback.Reason, want) {
		t.Errorf("reason %q, want %q", s.st.Rollback.Reason, want)
	}
}

func TestCanaryBecomingHealthyLateStillProceeds(t *testing.T) {
	s := newSim(t, seedPlan(v1alpha1.DecisionAutomatic, 1))
	s.health = rollout.HealthUnknown
	s.deploy("v2")
	s.advance(2 * time.Minute)
	if s.weight != 0 {
		t.Fatalf("weight %s before the canary was healthy", s.weight)
	}
	s.health = rollout.HealthUp
	s.runUntil(v1alpha1.PhaseSucceeded, time.Hour)
}

func TestPromoteFullSkipsTheSteps(t *testing.T) {
	s := newSim(t, seedPlan(v1alpha1.DecisionAutomatic, 1))
	s.deploy("v2")
	s.advance(2 * time.Minute)
	s.step(rollout.Command{Kind: rollout.CommandPromoteFull, Actor: "bob"})
	if s.st.Phase != v1alpha1.PhaseSucceeded || s.stable != "v2" {
		t.Fatalf("phase %s stable %s", s.st.Phase, s.stable)
	}
	// The history reads in order: bob's decision, then what it caused.
	var last []string
	for _, e := range s.events[len(s.events)-3:] {
		last = append(last, e.Reason)
	}
	if want := []string{"PromotedFull", "Promoting", "Promoted"}; !slices.Equal(last, want) {
		t.Errorf("history ends with %v, want %v:\n%s", last, want, s.history())
	}
}

func TestPromoteSkipsOnePause(t *testing.T) {
	s := newSim(t, seedPlan(v1alpha1.DecisionAutomatic, 1))
	s.deploy("v2")
	s.advance(time.Minute)
	s.step(rollout.Command{Kind: rollout.CommandPromote})
	if s.weight != v1alpha1.PercentOf(25) {
		t.Fatalf("weight %s after promote, want 25%%", s.weight)
	}
}

func TestShorthandNeedsAPassedCheckPerWeight(t *testing.T) {
	st := v1alpha1.Strategy{Interval: &metav1.Duration{Duration: time.Minute}, StepWeight: pct(10), MaxWeight: pct(30)}
	min99 := 99.0
	p, err := spec.Resolve(&v1alpha1.RolloutSpec{Strategy: st, Analysis: &v1alpha1.AnalysisSpec{
		Metrics: []v1alpha1.MetricSpec{{Name: "request-success-rate", ThresholdRange: &v1alpha1.ThresholdRange{Min: &min99}}}}})
	if err != nil {
		t.Fatal(err)
	}
	s := newSim(t, p)
	// No data for the first five minutes: the rollout holds, it neither
	// advances nor rolls back.
	s.measure = func(s *sim) []rollout.Measurement {
		if s.now.Sub(t0) < 5*time.Minute {
			return []rollout.Measurement{{Metric: "request-success-rate"}}
		}
		return successRate(100)
	}
	s.deploy("v2")
	took := s.runUntil(v1alpha1.PhaseSucceeded, time.Hour)
	if got := s.sawWeights(); len(got) != 4 {
		t.Errorf("weights %v, want 10, 20, 30, 100", got)
	}
	if took < 7*time.Minute || took > 8*time.Minute {
		t.Errorf("took %s: want about 5 minutes of no data and then one check per weight", took)
	}
}

func TestIndefinitePauseWaitsForAPerson(t *testing.T) {
	p := seedPlan(v1alpha1.DecisionAutomatic, 1)
	p.Steps = append(p.Steps[:2:2], append([]spec.PlanStep{{Kind: spec.StepPause}}, p.Steps[2:]...)...)
	s := newSim(t, p)
	s.deploy("v2")
	s.advance(time.Hour)
	if s.st.Phase != v1alpha1.PhaseAwaitingDecision || s.st.Gate.Kind != v1alpha1.GatePause {
		t.Fatalf("phase %s gate %+v", s.st.Phase, s.st.Gate)
	}
	s.step(rollout.Command{Kind: rollout.CommandPromote})
	s.runUntil(v1alpha1.PhaseSucceeded, time.Hour)
}

func TestRefusedCommands(t *testing.T) {
	s := newSim(t, seedPlan(v1alpha1.DecisionAutomatic, 1))
	for _, c := range []rollout.Command{{Kind: rollout.CommandResume}, {Kind: rollout.CommandPromote}, {Kind: rollout.CommandAbort}, {Kind: rollout.CommandRetry}, {Kind: rollout.CommandDeploy}} {
		if err := Allowed(s.st, c); err == nil {
			t.Errorf("%s allowed on an idle rollout", c.Kind)
		}
	}
	s.deploy("v1")
	if len(s.refused) != 1 || !strings.Contains(s.refused[0].Error(), "already the stable version") {
		t.Errorf("refused %v", s.refused)
	}
	if s.st.Phase != v1alpha1.PhaseIdle {
		t.Errorf("refused command changed the phase to %s", s.st.Phase)
	}
}

// Deploying the stable version again while a canary is in flight takes
// the canary back at once, with no analysis, rather than roll the stable
// out against itself.
func TestDeployingTheStableTakesTheCanaryBack(t *testing.T) {
	s := newSim(t, seedPlan(v1alpha1.DecisionAutomatic, 1))
	s.deploy("v2")
	s.advance(30 * time.Second)
	if s.weight == 0 || s.st.Phase != v1alpha1.PhaseProgressing {
		t.Fatalf("phase %s at %s, want v2 under way with traffic", s.st.Phase, s.weight)
	}
	s.step(rollout.Command{Kind: rollout.CommandDeploy, Canary: &v1alpha1.VersionRef{Version: "v1"}, Actor: "dave"})
	s.runUntil(v1alpha1.PhaseAborted, time.Minute)
	if s.stable != "v1" || s.weight != 0 || s.st.Canary.Version != "v2" || len(s.refused) != 0 ||
		!strings.Contains(s.st.Rollback.Reason, "stable version v1 deployed again by dave: canary v2 taken back at once") {
		t.Errorf("stable %s at %s, canary %+v, refused %v, rollback %+v: want v2 taken back for v1", s.stable, s.weight, s.st.Canary, s.refused, s.st.Rollback)
	}
}

func TestStepIsDeterministic(t *testing.T) {
	s := newSim(t, seedPlan(v1alpha1.DecisionAutomatic, 1))
	s.deploy("v2")
	s.advance(11 * time.Minute)
	in := Input{Now: s.now.Add(time.Minute), Observed: rollout.Observed{CanaryVersion: "v2", CanaryHealth: rollout.HealthUp, StableVersion: "v1", Weight: s.weight},
		Measurements: healthy(s)}
	a, b := snapshot(Step(s.plan, s.st, in)), snapshot(Step(s.plan, s.st, in))
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("two identical steps differ:\nfirst  %s\nsecond %s", a, b)
	}
}

func TestNextWake(t *testing.T) {
	s := newSim(t, seedPlan(v1alpha1.DecisionAutomatic, 1))
	if _, ok := NextWake(s.plan, s.st); ok {
		t.Errorf("idle rollout wants a wake-up")
	}
	s.deploy("v2")
	if at, ok := NextWake(s.plan, s.st); !ok || !at.Equal(s.now.Add(spec.DefaultProgressDeadline)) {
		t.Errorf("next wake %v %v, want the progress deadline while waiting for health", at, ok)
	}
	s.now = s.now.Add(time.Second)
	s.step()
	at, ok := NextWake(s.plan, s.st)
	if !ok || !at.Equal(s.now.Add(time.Minute)) {
		t.Errorf("next wake %v %v, want the first check one minute after 5%%", at, ok)
	}
}

func TestEventsReadLikeATimeline(t *testing.T) {
	s := newSim(t, seedPlan(v1alpha1.DecisionAutomatic, 1))
	s.deploy("v2")
	s.runUntil(v1alpha1.PhaseSucceeded, time.Hour)
	h := s.history()
	for _, want := range []string{
		"Rollout of canary v2 started by alice",
		"Canary v2 is healthy",
		"Routed 5% of traffic to canary v2 (step 1/6: setWeight 5%)",
		"Metrics healthy at 5%: request-success-rate 99.9% within min 99%",
		"Soaked 10m0s at 5%",
		"Routed 25% of traffic",
		"Routed 100% of traffic to canary v2",
		"Promotion completed: v2 is now the stable version",
	} {
		if !strings.Contains(h, want) {
			t.Errorf("history lacks %q:\n%s", want, h)
		}
	}
	for _, e := range s.events {
		if e.Time.IsZero() || e.Phase == "" {
			t.Errorf("event without time or phase: %+v", e)
		}
	}
}

// BenchmarkHourLongRollout walks the write-up's plan with one-hour stages
// (three hours of rollout) second by second on the simulated clock.
func BenchmarkHourLongRollout(b *testing.B) {
	plan := seedPlan(v1alpha1.DecisionAutomatic, 1)
	for i := range plan.Steps {
		if plan.Steps[i].Kind == spec.StepPause {
			plan.Steps[i].Duration = time.Hour
		}
	}
	for range b.N {
		s := newSim(b, plan)
		s.deploy("v2")
		s.runUntil(v1alpha1.PhaseSucceeded, 4*time.Hour)
	}
}

// An operator's weight replaces the current step's until the plan's next
// setWeight step; the soak goes on meanwhile.
func TestSetWeightHoldsUntilTheNextSetWeightStep(t *testing.T) {
	s := newSim(t, seedPlan(v1alpha1.DecisionAutomatic, 1))
	s.deploy("v2")
	s.advance(2 * time.Minute) // in the first 10-minute soak at 5%
	s.step(rollout.Command{Kind: rollout.CommandSetWeight, Weight: pct(12.5), Actor: "bob", Reason: "more traffic for the cache"})
	if len(s.refused) > 0 || s.weight != v1alpha1.PercentOf(12.5) || s.st.Phase != v1alpha1.PhaseProgressing {
		t.Fatalf("after set-weight 12.5%%: weight %s phase %s, refused %v", s.weight, s.st.Phase, s.refused)
	}
	if !strings.Contains(s.history(), "Weight set to 12.5% by bob: more traffic for the cache") {
		t.Errorf("history lacks the operator's weight:\n%s", s.history())
	}
	s.advance(7 * time.Minute)
	if s.weight != v1alpha1.PercentOf(12.5) {
		t.Fatalf("the operator's weight did not hold through the soak: %s", s.weight)
	}
	s.advance(2 * time.Minute) // the soak ends: the next step sets 25%
	if s.weight != v1alpha1.PercentOf(25) {
		t.Fatalf("the next setWeight step did not take over: weight %s\n%s", s.weight, s.history())
	}
	for _, w := range []*v1alpha1.Percent{nil, pct(100), pct(-1)} {
		s.refused = nil
		s.step(rollout.Command{Kind: rollout.CommandSetWeight, Weight: w})
		if len(s.refused) != 1 || s.weight != v1alpha1.PercentOf(25) {
			t.Errorf("set-weight %v: refused %v, weight %s; want refused, 25%% kept", w, s.refused, s.weight)
		}
	}
	s.runUntil(v1alpha1.PhaseSucceeded, 2*time.Hour)
	s.refused = nil
	s.step(rollout.Command{Kind: rollout.CommandSetWeight, Weight: pct(10)})
	if len(s.refused) != 1 || !strings.Contains(s.refused[0].Error(), "cannot set-weight a rollout that is Succeeded") {
		t.Errorf("set-weight after promotion: refused %v", s.refused)
	}
}

func TestSetWeightWaitsForAHealthyCanary(t *testing.T) {
	s := newSim(t, seedPlan(v1alpha1.DecisionAutomatic, 1))
	s.health = rollout.HealthDown
	s.deploy("v2")
	s.step(rollout.Command{Kind: rollout.CommandSetWeight, Weight: pct(10)})
	if len(s.refused) != 1 || !strings.Contains(s.refused[0].Error(), "not healthy yet") || s.weight != 0 {
		t.Fatalf("set-weight on a canary still coming up: refused %v, weight %s", s.refused, s.weight)
	}
}

// Promote after the last step, while the rollout waits for a passing
// check before promoting, has no step to skip: it is refused with what the
// rollout waits for, and the step stays within the plan.
func TestPromotePastTheLastStepIsRefused(t *testing.T) {
	s := newSim(t, seedPlan(v1alpha1.DecisionAutomatic, 5))
	s.measure = func(*sim) []rollout.Measurement { return []rollout.Measurement{{Metric: "request-success-rate"}} }
	s.deploy("v2")
	for i := 0; int(s.st.CurrentStep) < len(s.plan.Steps); i++ {
		if i > len(s.plan.Steps) || len(s.refused) > 0 {
			t.Fatalf("step %d of %d after %d promotes, refused %v", s.st.CurrentStep, len(s.plan.Steps), i, s.refused)
		}
		s.step(rollout.Command{Kind: rollout.CommandPromote, Actor: "bob"})
	}
	s.step(rollout.Command{Kind: rollout.CommandPromote, Actor: "bob"})
	if int(s.st.CurrentStep) != len(s.plan.Steps) || len(s.refused) != 1 || !strings.Contains(s.refused[0].Error(), "promote --full") {
		t.Fatalf("step %d of %d, refused %v", s.st.CurrentStep, len(s.plan.Steps), s.refused)
	}
}
