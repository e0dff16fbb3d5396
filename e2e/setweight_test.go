package e2e

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/sampleapp"
)

// TestSetWeightRoutesThatShareAndSurvivesARestart: an operator sets the
// canary's weight with `pipit set-weight`; the proxy routes that share at
// once, the history names who did it, and a daemon killed with SIGKILL
// comes back at the operator's weight, not the step's.
func TestSetWeightRoutesThatShareAndSurvivesARestart(t *testing.T) {
	stable := httptest.NewServer(sampleapp.Handler(sampleapp.Config{Version: "v1"}))
	defer stable.Close()
	canary := httptest.NewServer(sampleapp.Handler(sampleapp.Config{Version: "v2"}))
	defer canary.Close()
	listen := freePort(t)
	file := writeRollout(t, listen, stable.URL, "1h")
	state := t.TempDir()

	d := startUp(t, file, state)
	if r := pipit(t, 10*time.Second, "deploy", "web", "--canary", canary.URL, "--version", "v2", "--state-dir", state); r.code != 0 {
		t.Fatalf("pipit deploy: exit %d: %s", r.code, r.stderr)
	}
	d.waitFor(10*time.Second, "25%", func(st v1alpha1.RolloutStatus) bool { return st.CanaryWeight == v1alpha1.PercentOf(25) })

	r := pipit(t, 10*time.Second, "set-weight", "web", "60", "--reason", "warming caches", "--state-dir", state)
	if r.code != 0 || !strings.Contains(r.stdout, "weight 60%") {
		t.Fatalf("pipit set-weight web 60: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if share := canaryShare(t, listen, 400); share < 0.45 || share > 0.75 {
		t.Errorf("after set-weight 60: %.0f%% of 400 requests went to the canary", 100*share)
	}
	if !hasEvent(d.history(), "WeightSet", "Weight set to 60% by", "warming caches") {
		t.Errorf("history lacks the operator's weight: %+v", d.history())
	}

	d.kill9()
	d = startUp(t, file, state)
	if st := d.status().Status; st.CanaryWeight != v1alpha1.PercentOf(60) || st.Phase != v1alpha1.PhaseProgressing {
		t.Fatalf("after kill -9 and restart: %s at %s, want Progressing at the operator's 60%%", st.Phase, st.CanaryWeight)
	}
	if share := canaryShare(t, listen, 400); share < 0.45 || share > 0.75 {
		t.Errorf("after the restart: %.0f%% of 400 requests went to the canary", 100*share)
	}

	// All the traffic is a promotion, not a weight: bad input, nothing changes.
	if r := pipit(t, 10*time.Second, "set-weight", "web", "100", "--state-dir", state); r.code != 2 || !strings.Contains(r.stderr, "promote web --full") {
		t.Errorf("pipit set-weight web 100: exit %d, stderr %s; want 2 pointing at promote --full", r.code, r.stderr)
	}
	if st := d.status().Status; st.CanaryWeight != v1alpha1.PercentOf(60) {
		t.Errorf("a refused set-weight changed the weight to %s", st.CanaryWeight)
	}
}

// canaryShare sends n requests through the proxy at addr and returns the
// share the canary (v2) answered; any answer but 200 fails the test.
func canaryShare(t testing.TB, addr string, n int) float64 {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	canary := 0
	for range n {
		resp, err := client.Get("http://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d from the proxy", resp.StatusCode)
		}
		if resp.Header.Get("X-Pipit-Version") == "v2" {
			canary++
		}
	}
	return float64(canary) / float64(n)
}

// hasEvent reports whether an event of the reason holds every text.
func hasEvent(events []v1alpha1.Event, reason string, texts ...string) bool {
	for _, e := range events {
		if e.Reason != reason {
			continue
		}
		found := true
		for _, s := range texts {
			found = found && strings.Contains(e.Message, s)
		}
		if found {
			return true
		}
	}
	return false
}
