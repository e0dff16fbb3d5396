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

	// Until the big move below, the listener's startup hold may wait on
	// the clock too; the move ends it, and then only the loop waits.
	deployV2(t, d, canary.URL)
	st := waitFor(t, d, 15*time.Second, "the pause at 5%", func(st v1alpha1.RolloutStatus) bool {
		return st.CurrentStep == 1 && st.CanaryWeight == v1alpha1.PercentOf(5)
	})
	end := st.StepStartedAt.Add(time.Minute)

	clock.Advance(end.Add(-time.Nanosecond).Sub(clock.Now()))
	if !clock.WaitForTimers(1, timerLimit) {
		t.Fatal("the loop did not wait again after its tick")
	}
	if n := clock.Timers(); n != 1 {
		t.Fatalf("the daemon waits on %d timers, want the loop's only", n)
	}
	if st := d.rollouts["web"].snapshot(); st.CurrentStep != 1 || st.CanaryWeight != v1alpha1.PercentOf(5) {
		t.Fatalf("a nanosecond before the pause ends: step %d at %s, want step 1 at 5%%", st.CurrentStep, st.CanaryWeight)
	}

	// The loop wakes at the latest minWake after a due time it saw coming.
	clock.Advance(minWake)
	st = waitFor(t, d, 15*time.Second, "50% once the pause ended", func(st v1alpha1.RolloutStatus) bool {
		return st.CanaryWeight == v1alpha1.PercentOf(50)
	})
	if want := end.Add(-time.Nanosecond).Add(minWake); st.StepStartedAt == nil || !st.StepStartedAt.Time.Equal(want) {
		t.Errorf("the step after the pause started at %v, want the loop's wake-up at %v", st.StepStartedAt, want)
	}
}
