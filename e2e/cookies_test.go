package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/sampleapp"
	"github.com/pipit-dev/pipit/internal/store"
)

// TestStickyCookiesAreSignedRotatedAndKept drives the real binary as an
// operator and a browser would: the daemon keeps its cookie key in a 0600
// file; a cookie issued by a daemon on another state directory is never
// honoured; after `pipit keys rotate` a cookie from before still keeps its
// user; and a daemon killed and started again still honours it.
func TestStickyCookiesAreSignedRotatedAndKept(t *testing.T) {
	stable := httptest.NewServer(sampleapp.Handler(sampleapp.Config{Version: "v1"}))
	defer stable.Close()
	canary := httptest.NewServer(sampleapp.Handler(sampleapp.Config{Version: "v2"}))
	defer canary.Close()

	listen, otherListen := freePort(t), freePort(t)
	state, otherState := t.TempDir(), t.TempDir()
	file := writeStickyRollout(t, listen, stable.URL)
	d := startUp(t, file, state)
	keyFile := filepath.Join(state, store.CookieKeysFile)
	if info, err := os.Stat(keyFile); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("key file %s: %v, %v; want mode 0600", keyFile, info, err)
	}
	deployAndWaitForHalf(t, d, canary.URL)
	cookie := canaryCookieFrom(t, listen)

	// Another installation (its own state directory, so its own key) of
	// the same rollout file, versions and all: the cookie is a stranger's.
	other := startUp(t, writeStickyRollout(t, otherListen, stable.URL), otherState)
	deployAndWaitForHalf(t, other, canary.URL)
	for range 20 {
		if _, set := stickyGet(t, otherListen, cookie); set == "" || set == cookie {
			t.Fatalf("another daemon honoured the cookie %s (Set-Cookie %q)", cookie, set)
		}
	}
	other.kill9()

	r := pipit(t, 10*time.Second, "keys", "rotate", "--state-dir", state)
	if r.code != 0 || !strings.Contains(r.stdout, "Rotated the sticky-cookie key") || !strings.Contains(r.stdout, "web") {
		t.Fatalf("pipit keys rotate: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	keys, err := store.ReadCookieKeys(state)
	if err != nil || keys.Previous == nil || keys.RotatedAt.IsZero() {
		t.Fatalf("keys after the rotation: previous kept %v, rotated at %v (%v)", keys.Previous != nil, keys.RotatedAt, err)
	}
	keepsCanary(t, listen, cookie, "after pipit keys rotate")
	if r := pipit(t, 10*time.Second, "keys", "rotate", "--kube"); r.code != 2 || !strings.Contains(r.stderr, "standalone") {
		t.Errorf("pipit keys rotate --kube: exit %d, %s; want 2 and a reason", r.code, r.stderr)
	}

	d.kill9()
	d = startUp(t, file, state)
	if st := d.status().Status; st.CanaryWeight != v1alpha1.PercentOf(50) {
		t.Fatalf("after the restart the weight is %s", st.CanaryWeight)
	}
	keepsCanary(t, listen, cookie, "after a restart")
}

// writeStickyRollout writes a rollout that holds its canary at 50% with
// sticky sessions until someone acts.
func writeStickyRollout(t testing.TB, listen, stableURL string) string {
	t.Helper()
	doc := fmt.Sprintf(`apiVersion: pipit.dev/v1alpha1
kind: Rollout
metadata:
  name: web
spec:
  service:
    listen: %s
    stable: {url: %q, version: v1}
    healthCheck: {interval: 100ms, timeout: 2s}
    traffic:
      stickySession: {ttl: 1h}
  strategy:
    steps:
    - setWeight: 50
    - pause: {}
`, listen, stableURL)
	path := filepath.Join(t.TempDir(), "rollout.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func deployAndWaitForHalf(t testing.TB, d *daemon, canaryURL string) {
	t.Helper()
	if r := pipit(t, 10*time.Second, "deploy", "web", "--canary", canaryURL, "--version", "v2", "--state-dir", d.stateDir); r.code != 0 {
		t.Fatalf("pipit deploy: exit %d: %s", r.code, r.stderr)
	}
	d.waitFor(15*time.Second, "50%", func(st v1alpha1.RolloutStatus) bool { return st.CanaryWeight == v1alpha1.PercentOf(50) })
}

// stickyGet sends one request through the proxy at addr with the Cookie
// header, if any, and returns the version that answered and the sticky
// cookie it set (name=value), if any.
func stickyGet(t testing.TB, addr, cookie string) (version, set string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d from the proxy", resp.StatusCode)
	}
	set, _, _ = strings.Cut(resp.Header.Get("Set-Cookie"), ";")
	return resp.Header.Get("X-Pipit-Version"), set
}

// canaryCookieFrom draws as new browsers until one gets the canary, and
// returns its cookie.
func canaryCookieFrom(t testing.TB, addr string) string {
	t.Helper()
	for range 200 {
		if v, set := stickyGet(t, addr, ""); v == "v2" && set != "" {
			return set
		}
	}
	t.Fatal("no browser got the canary at 50% in 200 tries")
	return ""
}

// keepsCanary checks that cookie keeps its browser on the canary, and is
// not replaced, request after request.
func keepsCanary(t testing.TB, addr, cookie, when string) {
	t.Helper()
	for range 20 {
		if v, set := stickyGet(t, addr, cookie); v != "v2" || set != "" {
			t.Fatalf("%s the cookie got %s (Set-Cookie %q), want v2 and no new cookie", when, v, set)
		}
	}
}
