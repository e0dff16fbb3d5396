package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// TestBlueGreenExampleRunsEndToEnd runs examples/blue-green.yaml through
// `pipit up` with its timings shortened and its addresses made free:
// users stay on v5.0.0 while the preview alone serves v5.1.0 and its
// checks pass; nobody promotes, so autoPromotionAfter switches every user
// at once; `pipit undo` switches them straight back.
func TestBlueGreenExampleRunsEndToEnd(t *testing.T) {
	listen, preview := freePort(t), freePort(t)
	file := example(t, "blue-green.yaml",
		"127.0.0.1:8087", listen,
		"127.0.0.1:8088", preview,
		"http://127.0.0.1:9071", versionServer(t, "v5.0.0"),
		"http://127.0.0.1:9072", versionServer(t, "v5.1.0"),
		"autoPromotionAfter: 10m", "autoPromotionAfter: 3s",
		"interval: 1m", "interval: 500ms",
		"duration: 10m", "duration: 2s")
	d := startUp(t, file, t.TempDir())
	d.name = "web-shop"
	stopChecks := load(t, preview, 50)
	d.waitFor(30*time.Second, "the promotion gate", func(st v1alpha1.RolloutStatus) bool { return st.Phase == v1alpha1.PhaseAwaitingDecision })
	if seen := served(t, listen, 30); seen["v5.0.0"] != 30 {
		t.Errorf("users got %v while v5.1.0 was previewed, want v5.0.0 only", seen)
	}
	if seen := served(t, preview, 10); seen["v5.1.0"] != 10 {
		t.Errorf("the preview served %v, want v5.1.0 only", seen)
	}
	st := d.waitFor(30*time.Second, "the switch on its own", func(st v1alpha1.RolloutStatus) bool { return st.Phase == v1alpha1.PhaseSucceeded })
	stopChecks()
	if st.Stable.Version != "v5.1.0" || st.Previous == nil || st.Previous.Version != "v5.0.0" {
		t.Fatalf("after the switch: stable %+v previous %+v", st.Stable, st.Previous)
	}
	if seen := served(t, listen, 30); seen["v5.1.0"] != 30 {
		t.Errorf("users got %v after the switch, want v5.1.0 only", seen)
	}
	if r := pipit(t, 15*time.Second, "undo", "web-shop", "--state-dir", d.stateDir); r.code != 0 {
		t.Fatalf("undo: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	d.waitFor(15*time.Second, "the undo", func(st v1alpha1.RolloutStatus) bool { return st.Phase == v1alpha1.PhaseRolledBack })
	if seen := served(t, listen, 30); seen["v5.0.0"] != 30 {
		t.Errorf("users got %v after the undo, want v5.0.0 only", seen)
	}
	var reasons []string
	for _, e := range d.history() {
		reasons = append(reasons, e.Reason)
	}
	if h := strings.Join(reasons, " "); !strings.Contains(h, "PreviewOpened") || !strings.Contains(h, "AutoPromoted Promoting Promoted") || !strings.Contains(h, "Undone") {
		t.Errorf("history %s", h)
	}
}

// served sends n requests to addr and counts the answers by the version
// header the proxy sets.
func served(t testing.TB, addr string, n int) map[string]int {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	seen := map[string]int{}
	for range n {
		resp, err := client.Get("http://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		seen[resp.Header.Get("X-Pipit-Version")]++
	}
	return seen
}
