package standalone

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/client"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/sampleapp"
	"github.com/pipit-dev/pipit/internal/store"
)

// stickyRolloutYAML holds the canary at 50% with sticky sessions of an
// hour until someone acts.
func stickyRolloutYAML(stableURL string) []byte {
	return []byte(fmt.Sprintf(`apiVersion: pipit.dev/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  service:
    listen: 127.0.0.1:0
    stable: {url: %q, version: v1}
    healthCheck: {interval: 100ms, timeout: 2s}
    traffic:
      stickySession: {ttl: 1h}
  strategy:
    steps: [{setWeight: 50}, {pause: {}}]
`, stableURL))
}

// cookieRequest sends one request through the proxy at addr with the
// Cookie header, if any, and returns the version that answered and the
// sticky cookie set (name=value), if any.
func cookieRequest(t *testing.T, addr, cookie string) (version, set string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	set, _, _ = strings.Cut(resp.Header.Get("Set-Cookie"), ";")
	return resp.Header.Get("X-Pipit-Version"), set
}

// canaryCookie draws until the proxy at addr gives a browser the canary,
// and returns that browser's cookie.
func canaryCookie(t *testing.T, addr string) string {
	t.Helper()
	for range 200 {
		if v, set := cookieRequest(t, addr, ""); v == "v2" && set != "" {
			return set
		}
	}
	t.Fatal("no browser got the canary at 50% in 200 tries")
	return ""
}

// aheadClock is the wall clock moved ahead by a duration the test sets: the
// rollout runs in real time while cookies seem to age faster.
type aheadClock struct{ ahead *atomic.Int64 }

func (c aheadClock) Now() time.Time { return time.Now().Add(time.Duration(c.ahead.Load())) }

func (aheadClock) NewTimer(d time.Duration) rollout.Timer { return rollout.SystemClock{}.NewTimer(d) }

// TestCookieKeysRotateAndSurviveRestarts: the daemon keeps its cookie key
// in a private file; a rotation over the control API keeps the users the
// previous key placed and says until when; a restarted daemon still
// honours the cookies issued before it, with either key, each until its
// expiry. (The proxy's tests take the grace period apart from expiries.)
func TestCookieKeysRotateAndSurviveRestarts(t *testing.T) {
	stable := app(t, sampleapp.Config{Version: "v1"})
	canary := app(t, sampleapp.Config{Version: "v2"})
	dir := t.TempDir()
	doc := stickyRolloutYAML(stable.URL)
	var ahead atomic.Int64 // how far the daemons' clock runs ahead of the wall clock
	clock := aheadClock{ahead: &ahead}
	start := func() (*Daemon, *client.HTTP, string) {
		t.Helper()
		d, err := Start(context.Background(), Config{Sources: []Source{{File: "web.yaml", Data: doc}}, StateDir: dir,
			APIAddr: "127.0.0.1:0", Clock: clock, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Stop(context.Background()) })
		c, err := client.FromStateDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		addr, _ := d.ProxyAddr("web")
		return d, c, addr
	}

	d, c, addr := start()
	info, err := os.Stat(filepath.Join(dir, store.CookieKeysFile))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v; want mode 0600", info, err)
	}
	deployV2(t, c, canary.URL)
	waitFor(t, c, 10*time.Second, "50%", func(st v1alpha1.RolloutStatus) bool { return st.CanaryWeight == v1alpha1.PercentOf(50) })
	before := canaryCookie(t, addr)

	rot, err := c.RotateCookieKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rot.Rollouts) != 1 || rot.Rollouts[0].Name != "web" || rot.Rollouts[0].PreviousUntil.Sub(rot.RotatedAt) != time.Hour {
		t.Fatalf("rotation answered %+v", rot)
	}
	keys, err := store.ReadCookieKeys(dir)
	if err != nil || keys.Previous == nil || !keys.RotatedAt.Equal(rot.RotatedAt) {
		t.Fatalf("keys saved after the rotation: previous kept %v, rotated at %v (%v)", keys.Previous != nil, keys.RotatedAt, err)
	}
	for range 20 {
		if v, set := cookieRequest(t, addr, before); v != "v2" || set != "" {
			t.Fatalf("the cookie from before the rotation: %s, Set-Cookie %q", v, set)
		}
	}
	after := canaryCookie(t, addr)
	if after == before {
		t.Fatal("the cookie issued after the rotation is the one from before")
	}

	if err := d.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, _, addr = start()
	for _, cookie := range []string{before, after} {
		if v, set := cookieRequest(t, addr, cookie); v != "v2" || set != "" {
			t.Fatalf("after a restart, the cookie %s: %s, Set-Cookie %q", cookie, v, set)
		}
	}

	// The cookie from before the rotation lasts its hour, which ends
	// within the previous key's grace period, and not a moment more.
	expiry := cookieExpiry(t, before)
	ahead.Store(int64(time.Until(expiry.Add(-3 * time.Second))))
	if v, set := cookieRequest(t, addr, before); v != "v2" || set != "" {
		t.Fatalf("just before its expiry: %s, Set-Cookie %q", v, set)
	}
	ahead.Store(int64(time.Until(expiry.Add(2 * time.Second))))
	if _, set := cookieRequest(t, addr, before); set == "" {
		t.Fatal("the previous key's cookie was honoured past its expiry")
	}
}

// cookieExpiry reads the expiry of a sticky cookie, NAME=ROLE.EXPIRY.MAC.
func cookieExpiry(t *testing.T, cookie string) time.Time {
	t.Helper()
	parts := strings.Split(cookie, ".")
	if len(parts) != 3 {
		t.Fatalf("cookie %q: want NAME=ROLE.EXPIRY.MAC", cookie)
	}
	sec, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return time.Unix(sec, 0)
}
