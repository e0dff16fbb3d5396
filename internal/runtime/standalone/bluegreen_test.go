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
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/sampleapp"
)

// blueGreenYAML is a manual blue-green rollout of the stable URL with a
// preview on a free port, two checks of it before the switch and an undo
// window of a minute.
func blueGreenYAML(stableURL string) []byte {
	return []byte(fmt.Sprintf(webService+`  strategy:
    blueGreen:
      previewListen: 127.0.0.1:0
      checks: 2
  decision: manual
  analysis:
    interval: 300ms
    metrics:
    - name: request-success-rate
      thresholdRange: {min: 99}
  undoWindow: 1m
`, stableURL))
}

// countingApp serves the sample app of version and counts the requests
// whose query starts with prefix.
func countingApp(t *testing.T, version, prefix string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	h := sampleapp.Handler(sampleapp.Config{Version: version})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.RawQuery, prefix) {
			hits.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s, &hits
}

// The new version of a blue-green rollout is reached only on its preview
// while users stay on the old one; the preview's checks open the
// promotion gate; promote switches every user at once; undo switches
// them straight back.
func TestBlueGreenPreviewsThenSwitchesAndUndoes(t *testing.T) {
	stable := app(t, sampleapp.Config{Version: "v1"})
	// The users' requests ask for /?users: v2 must see none of them
	// before the switch, only the preview's.
	v2, usersOnV2 := countingApp(t, "v2", "users")
	d, c := startDaemon(t, t.TempDir(), blueGreenYAML(stable.URL))
	addr, _ := d.ProxyAddr("web")
	preview, ok := d.PreviewAddr("web")
	if !ok || preview == addr {
		t.Fatalf("preview address %q (%v), proxy %q", preview, ok, addr)
	}
	stopUsers := startLoad(t, addr+"/?users", 100)
	deployV2(t, c, v2.URL)
	stopPreview := startLoad(t, preview, 50)
	st := waitFor(t, c, 30*time.Second, "the promotion gate after the preview's checks", phaseIs(v1alpha1.PhaseAwaitingDecision))
	checked := stopPreview()
	if st.Gate.Kind != v1alpha1.GatePromotion || !st.Previewing || st.CanaryWeight != 0 || st.Analysis.PassedChecks < 2 {
		t.Fatalf("gate %+v previewing %v weight %s checks %d: want the promotion gate after two checks at 0%%",
			st.Gate, st.Previewing, st.CanaryWeight, st.Analysis.PassedChecks)
	}
	if users := stopUsers(); users.StatusCodes["200"] == 0 || checked.StatusCodes["200"] == 0 || usersOnV2.Load() != 0 {
		t.Errorf("v2 answered %d of the users' requests (users %v, preview %v): users reached v2 before the switch",
			usersOnV2.Load(), users.StatusCodes, checked.StatusCodes)
	}

	if _, err := c.Submit(context.Background(), "web", rollout.Command{Kind: rollout.CommandPromote, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	st = waitFor(t, c, 20*time.Second, "the switch", phaseIs(v1alpha1.PhaseSucceeded))
	if seen := versionsServed(t, addr, 40); seen["v2"] != 40 {
		t.Errorf("after the switch users got %v, want v2 only", seen)
	}
	if st.Previous == nil || st.Previous.Version != "v1" || st.Previewing {
		t.Errorf("after the switch: previous %+v, previewing %v", st.Previous, st.Previewing)
	}
	if _, err := c.Submit(context.Background(), "web", rollout.Command{Kind: rollout.CommandUndo, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, 20*time.Second, "the undo", phaseIs(v1alpha1.PhaseRolledBack))
	if seen := versionsServed(t, addr, 40); seen["v1"] != 40 {
		t.Errorf("after the undo users got %v, want v1 only", seen)
	}
	events, _ := c.Events(context.Background(), "web", 0)
	if h := historyText(events); !strings.Contains(h, "open on its preview") || !strings.Contains(h, "Switched all traffic from v1 to v2 at once") {
		t.Errorf("history:\n%s", h)
	}
}

// A preview address may not be another listener's.
func TestBlueGreenPreviewNeedsAnAddressOfItsOwn(t *testing.T) {
	yaml := strings.Replace(string(blueGreenYAML("http://127.0.0.1:9")), "listen: 127.0.0.1:0", "listen: 127.0.0.1:18080", 1)
	yaml = strings.Replace(yaml, "previewListen: 127.0.0.1:0", "previewListen: 127.0.0.1:18080", 1)
	d, err := Start(context.Background(), Config{Sources: []Source{{File: "web.yaml", Data: []byte(yaml)}}, StateDir: t.TempDir(), APIAddr: "127.0.0.1:0"})
	if err == nil {
		d.Stop(context.Background())
	}
	if err == nil || !strings.Contains(err.Error(), "previewListen") {
		t.Fatalf("Start: %v, want a refusal naming previewListen", err)
	}
}
