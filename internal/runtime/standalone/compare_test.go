package standalone

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/loadgen"
	"github.com/pipit-dev/pipit/internal/sampleapp"
)

// comparedRolloutYAML judges the canary only by comparing its p99 latency
// with the stable's (direction "either", the default), at 5% and then 50%.
func comparedRolloutYAML(stableURL string) []byte {
	return []byte(fmt.Sprintf(`apiVersion: pipit.dev/v1alpha1
kind: Rollout
metadata:
  name: web
spec:
  service:
    listen: 127.0.0.1:0
    stable: {url: %q, version: v1}
  strategy:
    steps:
    - setWeight: 5
    - pause: {duration: 6s}
    - setWeight: 50
    - pause: {duration: 4s}
  analysis:
    interval: 2s
    failureLimit: 0
    sequential: {enabled: false}
    metrics:
    - name: latency-p99
      compare: {}
`, stableURL))
}

// A canary that answers as fast as the stable must not fail a comparison
// because it serves fewer requests: at 5% its p99 over a second is the
// slowest of a handful of requests, and pipit once failed such a canary
// as "Low". A canary twice as slow must still be caught.
func TestComparedLatencyJudgesTheCanaryNotItsWeight(t *testing.T) {
	latency := sampleapp.Config{Latency: 20 * time.Millisecond, LatencyJitter: 15 * time.Millisecond}
	run := func(t *testing.T, canaryLatency time.Duration, want v1alpha1.Phase) v1alpha1.RolloutStatus {
		stableCfg, canaryCfg := latency, latency
		stableCfg.Version, canaryCfg.Version = "v1", "v2"
		canaryCfg.Latency = canaryLatency
		stable, canary := app(t, stableCfg), app(t, canaryCfg)
		d, c := startDaemon(t, t.TempDir(), comparedRolloutYAML(stable.URL))
		addr, _ := d.ProxyAddr("web")
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go loadgen.Run(ctx, loadgen.Config{URL: "http://" + addr + "/", Rate: 300, Duration: time.Minute})
		deployV2(t, c, canary.URL)
		return waitFor(t, c, 45*time.Second, string(want), func(st v1alpha1.RolloutStatus) bool {
			if st.Phase == v1alpha1.PhaseSucceeded || st.Phase == v1alpha1.PhaseRolledBack {
				if st.Phase != want {
					events, _ := c.Events(context.Background(), "web", 0)
					t.Fatalf("phase %s, want %s; rollback %+v\nhistory: %s", st.Phase, want, st.Rollback, historyText(events))
				}
				return true
			}
			return false
		})
	}
	t.Run("unchanged canary promoted", func(t *testing.T) {
		run(t, latency.Latency, v1alpha1.PhaseSucceeded)
	})
	t.Run("slow canary rolled back", func(t *testing.T) {
		st := run(t, 2*latency.Latency, v1alpha1.PhaseRolledBack)
		if st.Rollback == nil || !strings.Contains(st.Rollback.Reason, "latency-p99") {
			t.Errorf("rollback %+v, want latency-p99 named", st.Rollback)
		}
	})
}
