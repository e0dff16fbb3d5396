package standalone

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/sampleapp"
)

// watchedRolloutYAML is a short rollout with a watch of watch after the
// promotion, reusing the analysis metric, inside an undo window of a
// minute.
func watchedRolloutYAML(stableURL, watch string) []byte {
	return []byte(fmt.Sprintf(webService+`  strategy:
    steps:
    - setWeight: 50
    - pause: {duration: 1s}
  analysis:
    interval: 300ms
    failureLimit: 1
    metrics:
    - name: request-success-rate
      thresholdRange: {min: 99}
  undoWindow: 1m
  postPromotion: {duration: %s}
`, stableURL, watch))
}

// turnsBad serves v2 of the sample app healthy until bad is set, then
// v2 answering a third of its requests with a 500: a version that passes
// its canary and breaks once it takes all the traffic.
func turnsBad(t *testing.T, bad *atomic.Bool) string {
	t.Helper()
	good := sampleapp.Handler(sampleapp.Config{Version: "v2"})
	faulty := sampleapp.Handler(sampleapp.Config{Version: "v2", ErrorRate: 0.3})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if bad.Load() {
			faulty.ServeHTTP(w, r)
			return
		}
		good.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s.URL
}

func TestPromotedVersionThatTurnsBadIsUndoneWithinTheWatch(t *testing.T) {
	stable := app(t, sampleapp.Config{Version: "v1"})
	var bad atomic.Bool
	v2 := turnsBad(t, &bad)
	d, c := startDaemon(t, t.TempDir(), watchedRolloutYAML(stable.URL, "20s"))
	addr, _ := d.ProxyAddr("web")
	stopLoad := startLoad(t, addr, 150)

	deployV2(t, c, v2)
	st := waitFor(t, c, 40*time.Second, "the watch after promotion", func(st v1alpha1.RolloutStatus) bool {
		return st.Phase == v1alpha1.PhaseSucceeded && st.Watch != nil && st.Watch.Until != nil
	})
	if len(st.Watch.Baselines) != 1 || st.Watch.Baselines[0].Metric != "request-success-rate" || st.Watch.Baselines[0].Value < 99 {
		t.Errorf("baselines of v1 %+v", st.Watch.Baselines)
	}
	bad.Store(true)
	turnedBad := time.Now()
	st = waitFor(t, c, 20*time.Second, "the undo", phaseIs(v1alpha1.PhaseRolledBack))
	if took := time.Since(turnedBad); took > 10*time.Second {
		t.Errorf("undone %s after the version turned bad", took)
	}
	if st.Stable.Version != "v1" || st.Watch.Outcome != v1alpha1.WatchFailed || st.Rollback == nil ||
		st.Rollback.Metric != "request-success-rate" || !strings.Contains(st.Rollback.Reason, "undone by the watch after promotion: request-success-rate") {
		t.Errorf("after the failed watch: stable %+v watch %+v rollback %+v", st.Stable, st.Watch, st.Rollback)
	}
	stopLoad()
	if seen := versionsServed(t, addr, 50); seen["v1"] != 50 {
		t.Errorf("after the undo the proxy served %v, want only v1", seen)
	}
	events, _ := c.Events(context.Background(), "web", 0)
	var reasons []string
	for _, e := range events {
		reasons = append(reasons, e.Reason)
	}
	if h := strings.Join(reasons, " "); !strings.Contains(h, "Promoted PostPromotionStarted") || !strings.Contains(h, "PostPromotionFailed Undone") {
		t.Errorf("history %s", historyText(events))
	}
}

func TestPromotedVersionThatStaysHealthyPassesTheWatch(t *testing.T) {
	stable := app(t, sampleapp.Config{Version: "v1"})
	canary := app(t, sampleapp.Config{Version: "v2"})
	d, c := startDaemon(t, t.TempDir(), watchedRolloutYAML(stable.URL, "2s"))
	addr, _ := d.ProxyAddr("web")
	stopLoad := startLoad(t, addr, 150)
	deployV2(t, c, canary.URL)
	st := waitFor(t, c, 40*time.Second, "the watch to pass", func(st v1alpha1.RolloutStatus) bool {
		return st.Watch != nil && st.Watch.Outcome != ""
	})
	stopLoad()
	if st.Phase != v1alpha1.PhaseSucceeded || st.Stable.Version != "v2" || st.Watch.Outcome != v1alpha1.WatchPassed || st.Watch.Checks < 3 ||
		st.Previous == nil || st.Previous.Version != "v1" {
		t.Errorf("after the watch: phase %s stable %+v previous %+v watch %+v", st.Phase, st.Stable, st.Previous, st.Watch)
	}
	for _, r := range st.Watch.LastResults {
		if r.Canary == nil || *r.Canary < 99 {
			t.Errorf("the last check of v2 alone measured %+v", r)
		}
	}
}
