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

// watchPlan is the seed plan with a latency metric beside the success
// rate, and a watch of watch after the promotion reusing both metrics,
// with an undo window of undo.
func watchPlan(watch, undo time.Duration) spec.Plan {
	min99 := 99.0
	s := v1alpha1.RolloutSpec{
		Strategy: v1alpha1.Strategy{Steps: []v1alpha1.Step{
			{SetWeight: pct(50)}, {Pause: &v1alpha1.PauseStep{Duration: &metav1.Duration{Duration: 5 * time.Minute}}},
		}},
		Analysis: &v1alpha1.AnalysisSpec{
			Interval: &metav1.Duration{Duration: time.Minute},
			Metrics: []v1alpha1.MetricSpec{
				{Name: "request-success-rate", ThresholdRange: &v1alpha1.ThresholdRange{Min: &min99}},
				{Name: "latency-p99"},
			},
		},
		UndoWindow:    &metav1.Duration{Duration: undo},
		PostPromotion: &v1alpha1.PostPromotionSpec{Duration: metav1.Duration{Duration: watch}},
	}
	p, err := spec.Resolve(&s)
	if err != nil {
		panic(err)
	}
	return p
}

// afterPromotion measures success rate and p99 latency: before the
// promotion the canary's and the old stable's (99.9%, 100ms), after it
// the new stable's alone, as the Set measures it.
func afterPromotion(success, latency float64) func(*sim) []rollout.Measurement {
	return func(s *sim) []rollout.Measurement {
		if s.st.Phase == v1alpha1.PhaseSucceeded {
			return []rollout.Measurement{
				{Metric: "request-success-rate", Stable: val(success)},
				{Metric: "latency-p99", Stable: val(latency)},
			}
		}
		return []rollout.Measurement{
			{Metric: "request-success-rate", Canary: val(99.9), Stable: val(99.9)},
			{Metric: "latency-p99", Canary: val(100), Stable: val(100)},
		}
	}
}

// promoted runs a rollout of v2 to its promotion.
func promoted(t *testing.T, plan spec.Plan, measure func(*sim) []rollout.Measurement) *sim {
	t.Helper()
	s := newSim(t, plan)
	s.measure = measure
	s.deploy("v2")
	s.runUntil(v1alpha1.PhaseSucceeded, time.Hour)
	if w := s.st.Watch; w == nil || w.Until == nil || len(w.Baselines) != 2 {
		t.Fatalf("no watch with two baselines after the promotion: %+v\n%s", w, s.history())
	}
	return s
}

// reasons lists the reasons of the events from the promotion on.
func reasons(s *sim) []string {
	var out []string
	for _, e := range s.events {
		if e.Reason == "Promoted" {
			out = nil
		}
		if !strings.HasPrefix(e.Reason, "Check") {
			out = append(out, e.Reason)
		}
	}
	return out
}

func TestWatchAfterPromotionPasses(t *testing.T) {
	// A latency 5% above the baseline is within the default tolerance,
	// and faster is never a failure.
	for _, latency := range []float64{105, 40} {
		s := promoted(t, watchPlan(10*time.Minute, 15*time.Minute), afterPromotion(99.8, latency))
		s.advance(11 * time.Minute)
		if got, want := strings.Join(reasons(s), " "), "Promoted PostPromotionStarted PostPromotionPassed"; got != want {
			t.Fatalf("latency %v: events %q, want %q\n%s", latency, got, want, s.history())
		}
		w := s.st.Watch
		if s.st.Phase != v1alpha1.PhaseSucceeded || s.stable != "v2" || w.Outcome != v1alpha1.WatchPassed || w.Checks != 10 {
			t.Errorf("latency %v: phase %s stable %s watch %s after %d checks", latency, s.st.Phase, s.stable, w.Outcome, w.Checks)
		}
		if s.st.Previous == nil || CheckDue(s.st, s.now.Add(time.Hour)) {
			t.Errorf("after the watch: previous %v kept until the undo window closes, no more checks", s.st.Previous)
		}
	}
}

func TestWatchAfterPromotionUndoes(t *testing.T) {
	cases := []struct {
		name            string
		success, p99    float64
		metric, because string
	}{
		{"on a bound", 91.5, 100, "request-success-rate", "request-success-rate 91.5% < min 99%"},
		{"against the baseline", 99.9, 150, "latency-p99", "latency-p99 150ms is above the previous version's 100ms by more than the allowed change of 10%"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := promoted(t, watchPlan(10*time.Minute, 15*time.Minute), afterPromotion(tc.success, tc.p99))
			promotedAt := s.now
			s.advance(3 * time.Minute)
			if got, want := strings.Join(reasons(s), " "), "Promoted PostPromotionStarted PostPromotionFailed Undone"; got != want {
				t.Fatalf("events %q, want %q\n%s", got, want, s.history())
			}
			if s.st.Phase != v1alpha1.PhaseRolledBack || s.stable != "v1" || s.st.Stable.Version != "v1" || s.weight != 0 {
				t.Errorf("after the failed watch: phase %s, stable %s (status %s), weight %s", s.st.Phase, s.stable, s.st.Stable.Version, s.weight)
			}
			rb := s.st.Rollback
			if rb == nil || rb.Metric != tc.metric || !strings.Contains(rb.Reason, tc.because) || !strings.Contains(rb.Reason, watchActor) {
				t.Errorf("rollback %+v, want metric %s and reason %q", rb, tc.metric, tc.because)
			}
			// The first check, one interval after the promotion, undid it.
			if !rb.At.Time.Equal(promotedAt.Add(time.Minute)) || s.st.Watch.Outcome != v1alpha1.WatchFailed {
				t.Errorf("undone at %s (promoted %s), watch %s", rb.At, promotedAt, s.st.Watch.Outcome)
			}
		})
	}
}

func TestWatchFailingAfterTheUndoWindowLeavesThePromotion(t *testing.T) {
	// The watch lasts the whole undo window. The runtime is down from the
	// promotion until after the window closed: the late check still
	// judges, but the previous version is gone, so the promotion stands
	// and the history says why.
	s := promoted(t, watchPlan(15*time.Minute, 15*time.Minute), afterPromotion(91.5, 100))
	s.now = s.st.PromotedAt.Add(16 * time.Minute)
	s.step()
	if got, want := strings.Join(reasons(s), " "), "Promoted PostPromotionStarted PostPromotionFailed UndoWindowClosed"; got != want {
		t.Fatalf("events %q, want %q\n%s", got, want, s.history())
	}
	failed := s.events[len(s.events)-2]
	if !strings.Contains(failed.Message, "undo window of 15m0s has closed, so the promotion stands") || failed.Type != v1alpha1.EventWarning {
		t.Errorf("event %s %q", failed.Type, failed.Message)
	}
	if s.st.Phase != v1alpha1.PhaseSucceeded || s.stable != "v2" || s.st.Previous != nil {
		t.Errorf("phase %s stable %s previous %v, want v2 kept", s.st.Phase, s.stable, s.st.Previous)
	}
}

func TestWatchFailingOnItsLastCheckAtTheWindowsEndUndoes(t *testing.T) {
	// A watch as long as the undo window: a failure at its last check,
	// the instant the window closes, is still undone.
	s := promoted(t, watchPlan(15*time.Minute, 15*time.Minute), afterPromotion(99.9, 100))
	end := s.st.PromotedAt.Add(15 * time.Minute)
	s.advance(end.Sub(s.now) - time.Second)
	s.measure = afterPromotion(91.5, 100)
	s.advance(time.Second)
	if s.st.Phase != v1alpha1.PhaseRolledBack || s.stable != "v1" || s.st.Watch.Checks != 15 {
		t.Fatalf("phase %s stable %s after %d checks\n%s", s.st.Phase, s.stable, s.st.Watch.Checks, s.history())
	}
}

func TestManualUndoDuringTheWatch(t *testing.T) {
	s := promoted(t, watchPlan(10*time.Minute, 15*time.Minute), afterPromotion(99.9, 100))
	s.advance(3 * time.Minute)
	s.step(rollout.Command{Kind: rollout.CommandUndo, Actor: "sre", Reason: "checkout errors"})
	s.advance(10 * time.Minute)
	if got, want := strings.Join(reasons(s), " "), "Promoted PostPromotionStarted Undone"; got != want {
		t.Fatalf("events %q, want %q\n%s", got, want, s.history())
	}
	if s.st.Phase != v1alpha1.PhaseRolledBack || s.stable != "v1" || s.st.Watch.Outcome != v1alpha1.WatchUndone || s.st.Watch.Checks != 3 {
		t.Errorf("phase %s stable %s watch %+v", s.st.Phase, s.stable, s.st.Watch)
	}
	// A new rollout starts without the old watch.
	s.deploy("v3")
	if s.st.Watch != nil {
		t.Errorf("watch %+v kept into a new rollout", s.st.Watch)
	}
}

func TestWatchRemovedFromThePlanEnds(t *testing.T) {
	s := promoted(t, watchPlan(10*time.Minute, 15*time.Minute), afterPromotion(91.5, 100))
	s.plan.PostPromotion = nil // the file was reloaded without it
	s.advance(2 * time.Minute)
	if s.st.Watch != nil || s.st.Phase != v1alpha1.PhaseSucceeded || s.stable != "v2" || CheckDue(s.st, s.now.Add(time.Hour)) {
		t.Errorf("watch %+v, phase %s, stable %s", s.st.Watch, s.st.Phase, s.stable)
	}
}

func TestJudgingTheStableAgainstItsBaseline(t *testing.T) {
	ten := 0.1
	either := &v1alpha1.CompareSpec{Direction: "either", AllowedChange: &ten}
	cases := []struct {
		metric  v1alpha1.MetricSpec
		value   float64
		verdict v1alpha1.Verdict
	}{
		{v1alpha1.MetricSpec{Name: "request-success-rate"}, 89, v1alpha1.VerdictFailed}, // success: decrease is bad
		{v1alpha1.MetricSpec{Name: "request-success-rate"}, 100, v1alpha1.VerdictSuccessful},
		{v1alpha1.MetricSpec{Name: "error-rate"}, 111, v1alpha1.VerdictFailed},
		{v1alpha1.MetricSpec{Name: "error-rate"}, 109, v1alpha1.VerdictSuccessful},
		{v1alpha1.MetricSpec{Name: "queue", Provider: &v1alpha1.MetricProvider{}}, 500, v1alpha1.VerdictSuccessful}, // direction unknown: bound only
		{v1alpha1.MetricSpec{Name: "queue", Provider: &v1alpha1.MetricProvider{}, Compare: either}, 80, v1alpha1.VerdictFailed},
	}
	for _, tc := range cases {
		r := judgeStable(tc.metric, rollout.Measurement{Metric: tc.metric.Name, Stable: val(tc.value)}, val(100))
		if r.Verdict != tc.verdict || *r.Canary != tc.value || *r.Stable != 100 {
			t.Errorf("%s at %v against 100: %s (%s)", tc.metric.Name, tc.value, r.Verdict, r.Message)
		}
	}
	if r := judgeStable(v1alpha1.MetricSpec{Name: "error-rate"}, rollout.Measurement{Metric: "error-rate"}, val(1)); r.Verdict != v1alpha1.VerdictNoData {
		t.Errorf("no data: %s", r.Verdict)
	}
}
