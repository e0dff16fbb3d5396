package standalone

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/sampleapp"
	"github.com/pipit-dev/pipit/internal/testenv/fakeclock"
)

// timerLimit bounds, in real time, the wait for the daemon to wait on its
// clock again after the test moved it.
const timerLimit = 10 * time.Second

// TestPauseEndsOnTheDaemonsClock: a timed pause ends when the daemon's
// clock says so, not the wall clock's: a nanosecond before its end the
// rollout still pauses, and the loop's next wake-up after it moves on.
func TestPauseEndsOnTheDaemonsClock(t *testing.T) {
	stable := app(t, sampleapp.Config{Version: "v1"})
	canary := app(t, sampleapp.Config{Version: "v2"})
	doc := fmt.Appendf(nil, `apiVersion: pipit.dev/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  service:
    listen: 127.0.0.1:0
    stable: {url: %q, version: v1}
    healthCheck: {interval: 100ms, timeout: 2s}
  strategy:
    steps:
    - setWeight: 5
    - pause: {duration: 1m}
    - setWeight: 50
    - pause: {duration: 1h}
`, stable.URL)
	clock := fakeclock.New(time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC))
	d, err := Start(context.Background(), Config{Sources: []Source{{File: "web.yaml", Data: doc}}, StateDir: t.TempDir(),
		APIAddr: "127.0.0.1:0", Clock: clock, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(context.Background()) })

	// The proxy's health checks wait on the daemon's clock too: it moves
	// a health-check interval at a time until the canary is healthy and
	// gets its 5%.
	deployV2(t, d, canary.URL)
	st := driveUntil(t, d, clock, 100*time.Millisecond, "the pause at 5%", func(st v1alpha1.RolloutStatus) bool {
		return st.CurrentStep == 1 && st.CanaryWeight == v1alpha1.PercentOf(5)
	})
	end := st.StepStartedAt.Add(time.Minute)

	clock.Advance(end.Add(-time.Nanosecond).Sub(clock.Now()))
	if !clock.WaitForTimers(1, timerLimit) {
		t.Fatal("the loop did not wait again after its tick")
	}
	if st := d.rollouts["web"].snapshot(); st.CurrentStep != 1 || st.CanaryWeight != v1alpha1.PercentOf(5) {
		t.Fatalf("a nanosecond before the pause ends: step %d at %s, want step 1 at 5%%", st.CurrentStep, st.CanaryWeight)
	}

	// Past the end, the next step starts on the daemon's clock, at the
	// latest minWake after the due time (the loop's shortest wait), whatever
	// the other timers on the clock (the health checks) do meanwhile.
	st = driveUntil(t, d, clock, minWake, "50% once the pause ended", func(st v1alpha1.RolloutStatus) bool {
		return st.CanaryWeight == v1alpha1.PercentOf(50)
	})
	if started := st.StepStartedAt; started == nil || started.Time.Before(end) || started.Time.After(clock.Now()) {
		t.Errorf("the step after the pause started at %v, want between the pause's end %v and now %v", started, end, clock.Now())
	}
}

// driveUntil moves the clock on by step until cond holds for the daemon's
// rollout, within a real time limit.
func driveUntil(t *testing.T, d *Daemon, clock *fakeclock.Clock, step time.Duration, what string, cond func(v1alpha1.RolloutStatus) bool) v1alpha1.RolloutStatus {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		st := d.rollouts["web"].snapshot()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not reached: phase %s weight %s (%s)", what, st.Phase, st.CanaryWeight, st.Message)
		}
		clock.Advance(step)
		time.Sleep(10 * time.Millisecond)
	}
}
