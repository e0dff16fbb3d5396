package health

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/internal/proxy/route"
	"github.com/pipit-dev/pipit/internal/testenv/fakeclock"
)

// fleetTarget is a fake proxy whose stable is served by machines, real
// HTTP servers whose health a test turns off and on.
type fleetTarget struct {
	mu       sync.Mutex
	version  string
	machines []*url.URL
	out      []string // as last set by the checker
	passive  *Passive
}

func (f *fleetTarget) Upstream(role string) (string, []*url.URL, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if role != route.RoleStable {
		return "", nil, false
	}
	return f.version, slices.Clone(f.machines), true
}

func (f *fleetTarget) SetOutOfRotation(role, version string, out []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if role == route.RoleStable && version == f.version {
		f.out = out
	}
}

func (f *fleetTarget) outOfRotation() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.out
}

func (f *fleetTarget) AttachPassive(p *Passive) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.passive = p
	return true
}

func (f *fleetTarget) DetachPassive(*Passive) {}

// machine is one machine of a fleet: a server answering /health 200, or
// 503 while it is down.
type machine struct {
	srv  *httptest.Server
	down atomic.Bool
}

func newMachine(t *testing.T) *machine {
	m := &machine{}
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if m.down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(m.srv.Close)
	return m
}

type verdict struct {
	healthy bool
	reason  string
}

// fleetChecker runs a checker of three machines paced by a fake clock.
type fleetChecker struct {
	t        *testing.T
	clock    *fakeclock.Clock
	target   *fleetTarget
	machines []*machine
	changes  chan verdict
}

func newFleetChecker(t *testing.T) *fleetChecker {
	f := &fleetChecker{t: t, clock: fakeclock.New(time.Unix(0, 0)), target: &fleetTarget{version: "v1"},
		changes: make(chan verdict, 16)}
	for range 3 {
		m := newMachine(t)
		f.machines = append(f.machines, m)
		f.target.machines = append(f.target.machines, mustURL(t, m.srv.URL))
	}
	h, err := NewChecker(f.target, Config{Interval: time.Second, FailureThreshold: 2, Clock: f.clock,
		OnChange: func(role string, healthy bool, reason string) {
			if role == route.RoleStable {
				f.changes <- verdict{healthy, reason}
			}
		}})
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
	return f
}

// next moves the clock on an interval at a time until the checker
// reports a change, and returns it.
func (f *fleetChecker) next() verdict {
	f.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case v := <-f.changes:
			return v
		case <-time.After(20 * time.Millisecond):
		}
		if f.clock.WaitForTimers(1, time.Second) {
			f.clock.Advance(time.Second)
		}
	}
	f.t.Fatal("no health change within 10s")
	return verdict{}
}

func (f *fleetChecker) url(i int) string { return f.target.machines[i].String() }

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestCheckerJudgesEachMachine: a machine that fails its threshold goes
// out of rotation and is named in the reason while the version stays
// healthy; all machines down is the version down; one coming back is
// the version up again, with the others still out.
func TestCheckerJudgesEachMachine(t *testing.T) {
	f := newFleetChecker(t)
	if v := f.next(); !v.healthy || v.reason != "all 3 machines in rotation" {
		t.Fatalf("first verdict %+v", v)
	}

	f.machines[1].down.Store(true)
	v := f.next()
	if !v.healthy || !strings.HasPrefix(v.reason, "2 of 3 machines in rotation; out of rotation: "+f.url(1)+" (GET ") ||
		!strings.HasSuffix(v.reason, "answered 503 Service Unavailable (2 failures in a row))") {
		t.Fatalf("one machine failing: %+v", v)
	}
	if out := f.target.outOfRotation(); !slices.Equal(out, []string{f.url(1)}) {
		t.Fatalf("out of rotation %q, want the failing machine", out)
	}

	f.machines[0].down.Store(true)
	f.machines[2].down.Store(true)
	for v.healthy { // the version is down once every machine is
		v = f.next()
	}
	if !strings.HasPrefix(v.reason, "all 3 machines down: ") {
		t.Fatalf("all machines failing: %+v", v)
	}
	for i := range 3 {
		if !strings.Contains(v.reason, f.url(i)+" (GET ") {
			t.Fatalf("reason %q does not name machine %d", v.reason, i)
		}
	}
	if out := f.target.outOfRotation(); len(out) != 3 {
		t.Fatalf("out of rotation %q, want every machine", out)
	}

	f.machines[2].down.Store(false)
	v = f.next()
	if !v.healthy || !strings.Contains(v.reason, "1 of 3 machines in rotation; out of rotation: "+f.url(0)+" (") ||
		!strings.Contains(v.reason, f.url(1)) || strings.Contains(v.reason, f.url(2)) {
		t.Fatalf("a machine back: %+v", v)
	}
	if out := f.target.outOfRotation(); !slices.Equal(out, []string{f.url(0), f.url(1)}) {
		t.Fatalf("out of rotation %q, want the two failing machines", out)
	}
}

// TestCheckerPassiveAndNewMachines: a burst of transport errors marks the
// whole version down at once, and one successful probe of any machine
// clears it; a machine that leaves the version is forgotten, and its
// place in the reason with it.
func TestCheckerPassiveAndNewMachines(t *testing.T) {
	f := newFleetChecker(t)
	f.next() // all in rotation
	f.target.mu.Lock()
	sink := f.target.passive
	f.target.mu.Unlock()
	sink.Report(route.RoleStable, "v1", 5, "connection refused")
	if v := f.next(); v.healthy || v.reason != "5 transport errors in a row on live traffic, last: connection refused" {
		t.Fatalf("after a burst: %+v", v)
	}
	if v := f.next(); !v.healthy || v.reason != "all 3 machines in rotation" {
		t.Fatalf("after a successful probe: %+v", v)
	}
	sink.Report(route.RoleStable, "v0", 5, "connection refused") // another version's: ignored

	f.machines[0].down.Store(true)
	if v := f.next(); !v.healthy || !strings.Contains(v.reason, "out of rotation: "+f.url(0)) {
		t.Fatalf("machine 0 failing: %+v", v)
	}
	f.target.mu.Lock()
	f.target.machines = f.target.machines[1:] // the failing machine leaves the fleet
	f.target.mu.Unlock()
	f.machines[1].down.Store(true)
	if v := f.next(); !v.healthy || v.reason != "all 2 machines in rotation" {
		t.Fatalf("machine 0 gone: %+v", v)
	}
	v := f.next()
	if !v.healthy || v.reason != "1 of 2 machines in rotation; out of rotation: "+f.url(0)+" ("+
		"GET "+f.url(0)+"/health answered 503 Service Unavailable (2 failures in a row))" {
		t.Fatalf("machine 1 (now the first) failing: %+v", v)
	}
}
