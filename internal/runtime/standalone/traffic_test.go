package standalone

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/sampleapp"
)

// get sends one request through the proxy with the headers given and
// returns the version that answered.
func get(t *testing.T, addr string, headers map[string]string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.Header.Get("X-Pipit-Version")
}

func TestSegmentRulesAndUserKeysThroughTheDaemon(t *testing.T) {
	stable := app(t, sampleapp.Config{Version: "v1"})
	canary := app(t, sampleapp.Config{Version: "v2"})
	listen := freeAddr(t)
	doc := fmt.Sprintf(`apiVersion: pipit.dev/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  service:
    listen: %s
    stable: {url: %q, version: v1}
    healthCheck: {interval: 100ms, timeout: 2s}
    traffic:
      userKey: [{header: X-User-ID}]
      rules:
        - {name: force, to: canary, headers: {canary: {exact: "true"}}}
        - {name: enterprise, to: stable, headers: {X-Customer-Tier: {exact: enterprise}}}
        - {name: internal, to: canary, headers: {X-User-Email: {suffix: "@company.com"}}}
  strategy:
    steps: [{setWeight: 10}, {pause: {}}]
`, listen, stable.URL)
	_, c := startDaemon(t, t.TempDir(), []byte(doc))
	deployV2(t, c, canary.URL)
	waitFor(t, c, 10*time.Second, "10%", func(st v1alpha1.RolloutStatus) bool { return st.CanaryWeight > 0 })

	for range 20 {
		if v := get(t, listen, map[string]string{"canary": "true"}); v != "v2" {
			t.Fatalf("canary: true got %s", v)
		}
		if v := get(t, listen, map[string]string{"X-User-Email": "ann@company.com"}); v != "v2" {
			t.Fatalf("internal user got %s", v)
		}
		if v := get(t, listen, map[string]string{"X-User-Email": "bob@company.com", "X-Customer-Tier": "enterprise", "canary": "false"}); v != "v1" {
			t.Fatalf("enterprise customer got %s", v)
		}
	}
	// A user key gets the same version every time, and about 10% of users
	// get the canary.
	canaryUsers := 0
	for u := range 400 {
		id := map[string]string{"X-User-ID": fmt.Sprintf("user-%d", u)}
		first := get(t, listen, id)
		if again := get(t, listen, id); again != first {
			t.Fatalf("user-%d got %s then %s", u, first, again)
		}
		if first == "v2" {
			canaryUsers++
		}
	}
	if canaryUsers < 16 || canaryUsers > 70 {
		t.Errorf("%d of 400 users on the canary at 10%%", canaryUsers)
	}
	// After a rollback nobody gets the canary, whatever the rules say.
	if _, err := c.Submit(context.Background(), "web", rollout.Command{Kind: rollout.CommandAbort}); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if v := get(t, listen, map[string]string{"canary": "true", "X-User-Email": "ann@company.com"}); v != "v1" {
			t.Fatalf("after the rollback a rule still sent a request to %s", v)
		}
	}
}
