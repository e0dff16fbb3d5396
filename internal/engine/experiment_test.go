package engine

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/spec"
)

// experimentPlan resolves an experiment on the goal checkout, checked
// every minute, with the success rate as its guardrail.
func experimentPlan(t *testing.T, ex v1alpha1.ExperimentStrategy) spec.Plan {
	t.Helper()
	return validPlan(t, experimentRollout(ex))
}

// experimentRollout is the rollout of experimentPlan.
func experimentRollout(ex v1alpha1.ExperimentStrategy) *v1alpha1.Rollout {
	min99 := 99.0
	return &v1alpha1.Rollout{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.KindRollout},
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: v1alpha1.RolloutSpec{
			Service: &v1alpha1.ServiceSpec{Listen: "127.0.0.1:8080", Stable: v1alpha1.Upstream{URL: "http://127.0.0.1:9001"},
				Traffic: &v1alpha1.TrafficSpec{UserKey: []v1alpha1.UserKeySource{{Header: "X-User-ID"}}}},
			Strategy: v1alpha1.Strategy{Experiment: &ex},
			Analysis: &v1alpha1.AnalysisSpec{
				Interval: &metav1.Duration{Duration: time.Minute},
				Metrics:  []v1alpha1.MetricSpec{{Name: "request-success-rate", ThresholdRange: &v1alpha1.ThresholdRange{Min: &min99}}},
				Goals:    []v1alpha1.Goal{{Name: "checkout", Path: &v1alpha1.StringMatch{Exact: "/checkout"}}},
			},
		},
	}
}

// users simulates an experiment's users as the proxy counts them since
// the treatment got its share: each minute perMinute new visitors of the
// control and treatmentShare times as many of the treatment, who convert
// at the given rates; the guardrail's success rate is successRate.
type users struct {
	perMinute                  float64
	treatmentShare             float64
	controlRate, treatmentRate float64
	successRate                float64
	// preSplit are control visitors first seen before the split, while
	// the treatment became healthy; a fifth of them converted.
	preSplit float64
}

func (u users) measure(s *sim) []rollout.Measurement {
	minutes := s.now.Sub(s.st.Experiment.StartedAt.Time).Minutes()
	count := func(visitors, rate float64) *rollout.Conversions {
		n := math.Floor(visitors)
		return &rollout.Conversions{Visitors: uint64(n), Converted: uint64(math.Floor(n * rate))}
	}
	control := count(minutes*u.perMinute, u.controlRate)
	control.Visitors += uint64(u.preSplit)
	control.Converted += uint64(u.preSplit / 5)
	return append(successRate(u.successRate), rollout.Measurement{Metric: "conversion-rate:checkout",
		StableUsers: control, CanaryUsers: count(minutes*u.perMinute*u.treatmentShare, u.treatmentRate)})
}

// runExperiment deploys v2 under the plan with the users and runs it
// until phase p.
func runExperiment(t *testing.T, plan spec.Plan, u users, p v1alpha1.Phase, limit time.Duration) *sim {
	t.Helper()
	s := newSim(t, plan)
	s.measure = u.measure
	s.deploy("v2")
	s.runUntil(p, limit)
	return s
}

func TestExperimentPromotesABetterTreatment(t *testing.T) {
	u := users{perMinute: 100, treatmentShare: 1, controlRate: 0.10, treatmentRate: 0.15, successRate: 99.9}
	s := runExperiment(t, experimentPlan(t, v1alpha1.ExperimentStrategy{}), u, v1alpha1.PhaseSucceeded, 2*time.Hour)
	x := s.st.Experiment
	if s.stable != "v2" || x.Winner != v1alpha1.WinnerTreatment {
		t.Fatalf("stable %s, experiment %+v: want v2 promoted as the winner", s.stable, x)
	}
	if x.Control.Rate == nil || x.Treatment.Rate == nil || *x.Treatment.Rate < 14 || *x.Control.Rate > 11 ||
		x.Difference == nil || len(x.Interval) != 2 || x.Interval[0] <= 0 || x.PValue == nil || *x.PValue > 0.05 {
		t.Errorf("experiment numbers %+v: want rates near 10%% and 15%%, an interval above 0 and p under 0.05", x)
	}
	if s.sawWeights()[0] != 50*v1alpha1.PercentScale {
		t.Errorf("weights %v, want the split of 50%% from the start", s.sawWeights())
	}
	if h := s.history(); !strings.Contains(h, "Experiment concluded: winner treatment (v2) — conversion on checkout: control 10.") {
		t.Errorf("history does not name the winner with its numbers:\n%s", h)
	}
}

// In Kubernetes the traffic rules send the treatment group to the canary:
// the weight stays 0 until the winner is promoted, and the treatment is
// checked all the same, as a blue-green preview is.
func TestExperimentByRulesKeepsTheWeightAtZero(t *testing.T) {
	r := experimentRollout(v1alpha1.ExperimentStrategy{})
	r.Spec.Service, r.Spec.TargetRef = nil, &v1alpha1.TargetRef{Name: "web"}
	r.Spec.Kubernetes = &v1alpha1.KubernetesSpec{
		Router: &v1alpha1.KubernetesRouter{GatewayAPI: &v1alpha1.GatewayAPIRouter{HTTPRoute: "web"}},
		Traffic: &v1alpha1.TrafficSpec{Rules: []v1alpha1.TrafficRule{
			{To: v1alpha1.DestinationCanary, Headers: map[string]v1alpha1.StringMatch{"X-Variant": {Exact: "treatment"}}},
		}},
	}
	r.Spec.Analysis.Goals[0] = v1alpha1.Goal{Name: "checkout", Prometheus: &v1alpha1.PrometheusGoal{Visitors: "v", Conversions: "c"}}
	plan := validPlan(t, r)
	u := users{perMinute: 100, treatmentShare: 1, controlRate: 0.10, treatmentRate: 0.15, successRate: 99.9}
	s := newSim(t, plan)
	s.measure = u.measure
	s.deploy("v2")
	s.advance(2 * time.Minute)
	if !s.st.Previewing || s.weight != 0 || !checking(s.st) || s.st.Analysis.LastCheckAt == nil {
		t.Fatalf("previewing %v at %s, checking %v, last check %v: want the group under test with no weight, checked",
			s.st.Previewing, s.weight, checking(s.st), s.st.Analysis.LastCheckAt)
	}
	s.step(rollout.Command{Kind: rollout.CommandSetWeight, Weight: new(v1alpha1.Percent(10 * v1alpha1.PercentScale)), Actor: "bob"})
	if len(s.refused) != 1 || s.refused[0] != errExperimentWeight {
		t.Errorf("setting a weight mid-experiment: refused %v, want errExperimentWeight", s.refused)
	}
	s.runUntil(v1alpha1.PhaseSucceeded, 2*time.Hour)
	if x := s.st.Experiment; s.stable != "v2" || x.Winner != v1alpha1.WinnerTreatment || s.st.Previewing {
		t.Fatalf("stable %s, experiment %+v, previewing %v: want v2 promoted as the winner", s.stable, x, s.st.Previewing)
	}
	if w := s.sawWeights(); !slices.Equal(w, []v1alpha1.Percent{0, v1alpha1.FullWeight}) {
		t.Errorf("weights %v, want 0 through the experiment, then all of it", w)
	}
}

// The control's users first seen before the split do not count as a
// broken split: the sample ratio counts the visitors since the first
// check.
func TestExperimentSampleRatioIgnoresTheUsersBeforeTheSplit(t *testing.T) {
	u := users{perMinute: 100, treatmentShare: 1, controlRate: 0.10, treatmentRate: 0.15, successRate: 99.9, preSplit: 400}
	s := runExperiment(t, experimentPlan(t, v1alpha1.ExperimentStrategy{}), u, v1alpha1.PhaseSucceeded, 2*time.Hour)
	if x := s.st.Experiment; x.Winner != v1alpha1.WinnerTreatment || x.SampleRatioFrom == nil || x.SampleRatioFrom.ControlVisitors < 400 {
		t.Errorf("experiment %+v: want v2 the winner, the sample ratio counted from the first check", x)
	}
}

func TestExperimentRollsBackAWorseTreatment(t *testing.T) {
	u := users{perMinute: 100, treatmentShare: 1, controlRate: 0.15, treatmentRate: 0.10, successRate: 99.9}
	s := runExperiment(t, experimentPlan(t, v1alpha1.ExperimentStrategy{}), u, v1alpha1.PhaseRolledBack, 2*time.Hour)
	if x := s.st.Experiment; s.stable != "v1" || x.Winner != v1alpha1.WinnerControl {
		t.Fatalf("stable %s, experiment %+v: want the control the winner", s.stable, x)
	}
	if r := s.st.Rollback; !strings.Contains(r.Reason, "winner control (v1)") || r.Metric != "conversion-rate:checkout" {
		t.Errorf("rollback %+v: want the winner and the goal's metric named", r)
	}
}

// A split that does not hold (the treatment gets 40% of the visitors of
// a 50/50 split) stops the experiment before it names a winner.
func TestExperimentStopsOnASampleRatioMismatch(t *testing.T) {
	u := users{perMinute: 100, treatmentShare: 0.67, controlRate: 0.10, treatmentRate: 0.10, successRate: 99.9}
	s := runExperiment(t, experimentPlan(t, v1alpha1.ExperimentStrategy{}), u, v1alpha1.PhaseRolledBack, time.Hour)
	x := s.st.Experiment
	if x.Winner != v1alpha1.WinnerNone || !strings.Contains(x.Reason, "sample ratio mismatch: control ") ||
		!strings.Contains(x.Reason, "against a planned split of 50/50") {
		t.Fatalf("experiment %+v: want it stopped by the sample ratio", x)
	}
	if x.SampleRatioPValue == nil || *x.SampleRatioPValue >= 0.001 {
		t.Errorf("sample ratio p-value %v, want under 0.001", x.SampleRatioPValue)
	}
}

// A failing guardrail rolls the treatment back at the first check, as it
// does a canary, before the experiment has a verdict.
func TestExperimentGuardrailRollsBackAtOnce(t *testing.T) {
	u := users{perMinute: 100, treatmentShare: 1, controlRate: 0.10, treatmentRate: 0.30, successRate: 80}
	s := newSim(t, experimentPlan(t, v1alpha1.ExperimentStrategy{}))
	s.measure = u.measure
	s.deploy("v2")
	took := s.runUntil(v1alpha1.PhaseRolledBack, time.Hour)
	if took > time.Minute+time.Second {
		t.Errorf("rolled back after %s, want at the first check (1m)", took)
	}
	x := s.st.Experiment
	if s.st.Rollback.Metric != "request-success-rate" || x.Winner != v1alpha1.WinnerNone || !strings.Contains(x.Reason, "stopped before a verdict: request-success-rate") {
		t.Errorf("rollback %+v, experiment %+v: want the guardrail to blame and no winner", s.st.Rollback, x)
	}
	if h := s.history(); !strings.Contains(h, "Experiment concluded: no winner") {
		t.Errorf("history does not say the experiment ended:\n%s", h)
	}
}

// A person who promotes or aborts mid-experiment ends it with no winner,
// said in the status and the history.
func TestExperimentEndedByAPerson(t *testing.T) {
	u := users{perMinute: 100, treatmentShare: 1, controlRate: 0.10, treatmentRate: 0.10, successRate: 99.9}
	for _, tc := range []struct {
		cmd   rollout.CommandKind
		phase v1alpha1.Phase
		how   string
	}{
		{rollout.CommandPromoteFull, v1alpha1.PhaseSucceeded, "the treatment is promoted without one"},
		{rollout.CommandAbort, v1alpha1.PhaseAborted, "aborted by carol"},
	} {
		s := newSim(t, experimentPlan(t, v1alpha1.ExperimentStrategy{}))
		s.measure = u.measure
		s.deploy("v2")
		s.advance(5 * time.Minute)
		s.step(rollout.Command{Kind: tc.cmd, Actor: "carol"})
		s.runUntil(tc.phase, time.Minute)
		if x := s.st.Experiment; x.Winner != v1alpha1.WinnerNone || !strings.Contains(x.Reason, "stopped before a verdict: "+tc.how) {
			t.Errorf("%s: experiment %+v, want no winner and why", tc.cmd, x)
		}
	}
}

// With no difference, better finds no winner by maxDuration: the
// treatment is rolled back at its end, not before.
func TestExperimentWithoutAWinnerEndsAtMaxDuration(t *testing.T) {
	u := users{perMinute: 100, treatmentShare: 1, controlRate: 0.10, treatmentRate: 0.10, successRate: 99.9}
	plan := experimentPlan(t, v1alpha1.ExperimentStrategy{MaxDuration: &metav1.Duration{Duration: 30 * time.Minute}})
	s := newSim(t, plan)
	s.measure = u.measure
	s.deploy("v2")
	took := s.runUntil(v1alpha1.PhaseRolledBack, time.Hour)
	if took < 30*time.Minute || took > 32*time.Minute {
		t.Errorf("ended after %s, want at maxDuration (30m)", took)
	}
	if x := s.st.Experiment; x.Winner != v1alpha1.WinnerNone || !strings.Contains(x.Reason, "no winner within maxDuration 30m0s") {
		t.Errorf("experiment %+v: want no winner", x)
	}
	if len(s.st.Experiment.Looks) < 25 {
		t.Errorf("%d looks recorded, want one per check once both variants had 100 visitors", len(s.st.Experiment.Looks))
	}
}

// An experiment whose goal is never counted (no user key reaches the
// proxy) still ends at maxDuration, with no winner.
func TestExperimentWithoutCountsEndsAtMaxDuration(t *testing.T) {
	s := newSim(t, experimentPlan(t, v1alpha1.ExperimentStrategy{MaxDuration: &metav1.Duration{Duration: 10 * time.Minute}}))
	s.deploy("v2")
	s.runUntil(v1alpha1.PhaseRolledBack, time.Hour)
	if x := s.st.Experiment; x.Winner != v1alpha1.WinnerNone || !strings.Contains(x.Reason, "fewer than 100 visitors in a variant") {
		t.Errorf("experiment %+v: want no winner for want of visitors", x)
	}
}

// notWorse promotes a treatment that converts as the control does once
// the interval rules out a loss of more than the margin.
func TestExperimentNotWorsePromotesAnEqualTreatment(t *testing.T) {
	u := users{perMinute: 500, treatmentShare: 1, controlRate: 0.10, treatmentRate: 0.10, successRate: 99.9}
	plan := experimentPlan(t, v1alpha1.ExperimentStrategy{PromoteIf: v1alpha1.PromoteIfNotWorse, Margin: pct(2)})
	s := runExperiment(t, plan, u, v1alpha1.PhaseSucceeded, 3*time.Hour)
	if x := s.st.Experiment; x.Winner != v1alpha1.WinnerTreatment || x.Interval[0] <= -2 || !strings.Contains(x.Reason, "not worse") {
		t.Errorf("experiment %+v: want the treatment promoted as not worse", x)
	}
}

// At maxDuration notWorse decides by the fixed z-test: a treatment 1.5
// points worse, with a margin of 1, loses.
func TestExperimentNotWorseDecidesAtMaxDuration(t *testing.T) {
	u := users{perMinute: 100, treatmentShare: 1, controlRate: 0.10, treatmentRate: 0.085, successRate: 99.9}
	plan := experimentPlan(t, v1alpha1.ExperimentStrategy{PromoteIf: v1alpha1.PromoteIfNotWorse, Margin: pct(1),
		MaxDuration: &metav1.Duration{Duration: 20 * time.Minute}})
	s := runExperiment(t, plan, u, v1alpha1.PhaseRolledBack, time.Hour)
	if x := s.st.Experiment; x.Winner != v1alpha1.WinnerControl || !strings.Contains(x.Reason, "fixed z-test") {
		t.Errorf("experiment %+v: want the control the winner by the z-test", x)
	}
}

// notWorse promotes nothing on no conversions at all, whose interval is
// empty: at maxDuration the control stays.
func TestExperimentNotWorseWithoutConversionsKeepsTheControl(t *testing.T) {
	u := users{perMinute: 100, treatmentShare: 1, successRate: 99.9}
	plan := experimentPlan(t, v1alpha1.ExperimentStrategy{PromoteIf: v1alpha1.PromoteIfNotWorse, Margin: pct(1),
		MaxDuration: &metav1.Duration{Duration: 10 * time.Minute}})
	s := runExperiment(t, plan, u, v1alpha1.PhaseRolledBack, time.Hour)
	if x := s.st.Experiment; x.Winner != v1alpha1.WinnerControl || !strings.Contains(x.Reason, "too few conversions for the z-test") {
		t.Errorf("experiment %+v: want the control kept for want of conversions", x)
	}
}

func TestExperimentRefusesSetWeight(t *testing.T) {
	u := users{perMinute: 10, treatmentShare: 1, controlRate: 0.10, treatmentRate: 0.10, successRate: 99.9}
	s := newSim(t, experimentPlan(t, v1alpha1.ExperimentStrategy{}))
	s.measure = u.measure
	s.deploy("v2")
	s.advance(2 * time.Minute)
	s.step(rollout.Command{Kind: rollout.CommandSetWeight, Weight: pct(10)})
	if len(s.refused) != 1 || !strings.Contains(s.refused[0].Error(), "an experiment holds its split") || s.weight != 50*v1alpha1.PercentScale {
		t.Errorf("refused %v, weight %s: want set-weight refused and the split kept", s.refused, s.weight)
	}
}
