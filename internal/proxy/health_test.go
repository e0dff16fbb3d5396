package proxy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/proxy/health"
	"github.com/pipit-dev/pipit/internal/testenv/nettest"
)

type change struct {
	role    string
	healthy bool
	reason  string
}

// runChecker starts a checker whose OnChange feeds the returned channel
// (after calling also, if set), and stops it at the end of the test.
func runChecker(t *testing.T, p *Proxy, cfg health.Config, also func(change)) (*health.Checker, <-chan change) {
	t.Helper()
	changes := make(chan change, 64)
	cfg.Logger = testLogger(t)
	cfg.OnChange = func(role string, healthy bool, reason string) {
		c := change{role, healthy, reason}
		if also != nil {
			also(c)
		}
		changes <- c
	}
	h, err := NewHealthChecker(p, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- h.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return h, changes
}

func nextChange(t *testing.T, changes <-chan change) change {
	t.Helper()
	select {
	case c := <-changes:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no health change within 10s")
		return change{}
	}
}

func TestHealthCheckerReportsTransitions(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ready" {
			t.Errorf("probe of %s", r.URL.Path)
		}
		if !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		http.Redirect(w, r, "/elsewhere", http.StatusFound) // 3xx counts as healthy
	}))
	defer up.Close()
	p := newProxy(t, Config{Stable: Upstream{Version: "v1", URL: nettest.MustURL(t, up.URL)}})
	h, changes := runChecker(t, p, health.Config{Path: "/ready", Interval: 20 * time.Millisecond, FailureThreshold: 2}, nil)

	if c := nextChange(t, changes); c != (change{RoleStable, true, c.reason}) || !strings.Contains(c.reason, "302") {
		t.Fatalf("first change %+v, want stable healthy after a 302", c)
	}
	if ok, _, known := h.Health(RoleStable); !ok || !known {
		t.Errorf("Health(stable) = %v, known %v", ok, known)
	}
	if _, _, known := h.Health(RoleCanary); known {
		t.Error("Health(canary) known with no canary")
	}

	healthy.Store(false)
	c := nextChange(t, changes)
	if c.role != RoleStable || c.healthy || !strings.Contains(c.reason, "503") || !strings.Contains(c.reason, "2 failures in a row") {
		t.Fatalf("change %+v, want stable down after 2 failed probes", c)
	}
	if ok, reason, known := h.Health(RoleStable); ok || !known || !strings.Contains(reason, "503") {
		t.Errorf("Health(stable) = %v %q %v", ok, reason, known)
	}

	healthy.Store(true)
	if c := nextChange(t, changes); c.role != RoleStable || !c.healthy {
		t.Fatalf("change %+v, want stable healthy again", c)
	}
}

func TestHealthCheckerFollowsNewCanary(t *testing.T) {
	st, v2 := newUpstream(t, "v1"), newUpstream(t, "v2")
	dead := nettest.DeadURL(t)
	p := newProxy(t, Config{Stable: st.upstream(t)})
	h, changes := runChecker(t, p, health.Config{Interval: 20 * time.Millisecond, FailureThreshold: 1}, nil)
	if c := nextChange(t, changes); c.role != RoleStable || !c.healthy {
		t.Fatalf("change %+v", c)
	}

	c2 := v2.upstream(t)
	if err := p.setUpstreams(st.upstream(t), &c2); err != nil {
		t.Fatal(err)
	}
	if c := nextChange(t, changes); c != (change{RoleCanary, true, c.reason}) {
		t.Fatalf("change %+v, want canary v2 healthy", c)
	}
	if err := p.setUpstreams(st.upstream(t), &Upstream{Version: "v3", URL: dead}); err != nil {
		t.Fatal(err)
	}
	// v3 is a new upstream: its first verdict is reported even though v2
	// was healthy before it.
	if c := nextChange(t, changes); c.role != RoleCanary || c.healthy || !strings.Contains(c.reason, "refused") {
		t.Fatalf("change %+v, want canary v3 down", c)
	}
	if err := p.setUpstreams(st.upstream(t), nil); err != nil {
		t.Fatal(err)
	}
	nettest.Eventually(t, "canary health to be forgotten", func() bool {
		_, _, known := h.Health(RoleCanary)
		return !known
	})
}

func TestPassiveCheckMarksCanaryDownAtOnce(t *testing.T) {
	st, ca := newUpstream(t, "v1"), newUpstream(t, "v2")
	c := ca.upstream(t)
	p := newProxy(t, Config{Stable: st.upstream(t), Canary: &c, Weight: v1alpha1.FullWeight})
	// Probes every hour: after the first round only the passive check can
	// notice anything.
	h, changes := runChecker(t, p, health.Config{Interval: time.Hour, PassiveFailures: 3}, nil)
	for range 2 {
		if c := nextChange(t, changes); !c.healthy {
			t.Fatalf("change %+v, want both healthy first", c)
		}
	}

	ca.Close()
	url, client := front(t, p), &http.Client{}
	for i := 0; ; i++ {
		if code, _, _ := get(t, client, url); code != http.StatusBadGateway {
			t.Fatalf("request to a closed canary: %d", code)
		}
		select {
		case c := <-changes:
			if c.role != RoleCanary || c.healthy || !strings.Contains(c.reason, "3 transport errors in a row") {
				t.Fatalf("change %+v, want canary down from the passive check", c)
			}
			if i < 2 {
				t.Fatalf("marked down after %d errors, want 3", i+1)
			}
			if ok, _, known := h.Health(RoleCanary); ok || !known {
				t.Error("Health(canary) still healthy")
			}
			return
		case <-time.After(20 * time.Millisecond):
		}
		if i > 100 {
			t.Fatal("not marked down after 100 transport errors")
		}
	}
}

func TestHealthCheckerStopsWithoutLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		// A stable that never answers keeps a probe in flight at the
		// moment of cancellation.
		hang := make(chan struct{})
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-hang:
			case <-r.Context().Done():
			}
		}))
		defer slow.Close()
		defer close(hang)
		ca := newUpstream(t, "v2")
		c := ca.upstream(t)
		p, err := New(Config{Stable: Upstream{URL: nettest.MustURL(t, slow.URL)}, Canary: &c})
		if err != nil {
			t.Fatal(err)
		}
		defer p.CloseIdleConnections()
		h, err := NewHealthChecker(p, health.Config{Interval: 10 * time.Millisecond, Timeout: time.Minute, FailureThreshold: 1, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		run := func() (stop func()) {
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error)
			go func() { done <- h.Run(ctx) }()
			return func() {
				cancel()
				select {
				case err := <-done:
					if err != nil {
						t.Fatal(err)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("Run did not return after cancellation")
				}
			}
		}
		stop := run()
		nettest.Eventually(t, "canary verdict", func() bool { _, _, known := h.Health(RoleCanary); return known })
		if err := h.Run(context.Background()); err == nil {
			t.Error("a second Run at the same time was allowed")
		}
		stop()
		if p.passive.Load() != nil {
			t.Error("the proxy still reports to a stopped checker")
		}

		// Run again: the stable probe cut short by the stop is not held
		// against it (FailureThreshold is 1 here), so stable stays unknown.
		stop = run()
		time.Sleep(50 * time.Millisecond)
		if healthy, reason, known := h.Health(RoleStable); known {
			t.Errorf("stable judged %v (%s) though its probes never finished", healthy, reason)
		}
		stop()
		ca.Close()
	}()
	nettest.Eventually(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}

func TestNewHealthCheckerRefusesNegatives(t *testing.T) {
	p := newProxy(t, Config{Stable: Upstream{URL: nettest.MustURL(t, "http://127.0.0.1:1")}})
	for _, cfg := range []health.Config{{Interval: -1}, {Timeout: -time.Second}, {FailureThreshold: -2}} {
		if _, err := NewHealthChecker(p, cfg); err == nil {
			t.Errorf("accepted %+v", cfg)
		}
	}
}

// TestHealthCheckerTakesAMachineOutOfRotation: a machine whose health
// check fails gets no request while the others share them, and gets its
// share again once it passes; the version stays healthy throughout.
func TestHealthCheckerTakesAMachineOutOfRotation(t *testing.T) {
	a, b := newUpstream(t, "v1"), newUpstream(t, "v1")
	var sickDown atomic.Bool
	var sickHits atomic.Int64
	sick := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			if sickDown.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			return
		}
		sickHits.Add(1)
	}))
	defer sick.Close()
	p := newProxy(t, Config{Stable: Upstream{Version: "v1", URL: nettest.MustURL(t, a.URL),
		Replicas: []*url.URL{nettest.MustURL(t, sick.URL), nettest.MustURL(t, b.URL)}}})
	_, changes := runChecker(t, p, health.Config{Interval: 20 * time.Millisecond, FailureThreshold: 2}, nil)
	if c := nextChange(t, changes); !c.healthy || c.reason != "all 3 machines in rotation" {
		t.Fatalf("first change %+v", c)
	}
	addr := front(t, p)
	spread := func(n int) (sick, others int64) {
		s0, o0 := sickHits.Load(), a.hits.Load()+b.hits.Load()
		for range n {
			if code, _, _ := get(t, http.DefaultClient, addr+"/"); code != http.StatusOK {
				t.Fatalf("status %d", code)
			}
		}
		return sickHits.Load() - s0, a.hits.Load() + b.hits.Load() - o0
	}

	sickDown.Store(true)
	if c := nextChange(t, changes); !c.healthy || !strings.HasPrefix(c.reason, "2 of 3 machines in rotation; out of rotation: "+sick.URL) {
		t.Fatalf("change %+v, want the sick machine out of rotation", c)
	}
	if s, o := spread(30); s != 0 || o != 30 {
		t.Errorf("with a machine out of rotation it got %d requests and the others %d, want 0 and 30", s, o)
	}
	sickDown.Store(false)
	if c := nextChange(t, changes); !c.healthy || c.reason != "all 3 machines in rotation" {
		t.Fatalf("change %+v, want every machine back", c)
	}
	if s, o := spread(30); s != 10 || o != 20 {
		t.Errorf("with every machine back the sick one got %d requests and the others %d, want 10 and 20", s, o)
	}
}
