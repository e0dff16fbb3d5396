package target

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/testenv/fakeclock"
	"github.com/pipit-dev/pipit/internal/testenv/nettest"
)

// fakeEndpoints records what the target tells the proxy.
type fakeEndpoints struct {
	mu     sync.Mutex
	routes map[string]route
	fail   error
}

func (f *fakeEndpoints) SetEndpoints(role, version string, urls []*url.URL) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	if f.routes == nil {
		f.routes = map[string]route{}
	}
	f.routes[role] = route{version: version, urls: slices.Clone(urls)}
	return nil
}

func (f *fakeEndpoints) get(role string) route {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.routes[role]
}

func (f *fakeEndpoints) setFail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = err
}

// probePeriod is the probes' period in childSpec.
const probePeriod = 50 * time.Millisecond

func ms(n int) *metav1.Duration {
	return &metav1.Duration{Duration: time.Duration(n) * time.Millisecond}
}

// childSpec runs the test binary as runChild with env added.
func childSpec(t *testing.T, replicas int32, env map[string]string) v1alpha1.ProcessSpec {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	s := v1alpha1.ProcessSpec{
		Command: exe, Args: []string{"-port", "{{ .Port }}"}, Replicas: replicas,
		Env:             map[string]string{childEnv: "1", "CHILD_VERSION": "{{ .Version }}"},
		Readiness:       &v1alpha1.ProbeSpec{Period: &metav1.Duration{Duration: probePeriod}, FailureThreshold: 2},
		StopGracePeriod: ms(2000),
	}
	for k, v := range env {
		s.Env[k] = v
	}
	return s
}

type harness struct {
	t     *testing.T
	p     *Process
	ep    *fakeEndpoints
	dir   string
	specs map[string]v1alpha1.ProcessSpec
}

// newHarness builds a Process over specs; tweak adjusts its config.
func newHarness(t *testing.T, specs map[string]v1alpha1.ProcessSpec, tweak func(*ProcessConfig)) *harness {
	t.Helper()
	h := &harness{t: t, ep: &fakeEndpoints{}, dir: t.TempDir(), specs: specs}
	h.p = h.open(tweak)
	return h
}

// open builds a Process on h's directory, specs and endpoints, shut down
// at the end of the test.
func (h *harness) open(tweak func(*ProcessConfig)) *Process {
	h.t.Helper()
	cfg := ProcessConfig{
		Dir: h.dir, Endpoints: h.ep, RestartBackoff: 20 * time.Millisecond,
		Specs: func(v string) (v1alpha1.ProcessSpec, bool) { s, ok := h.specs[v]; return s, ok },
	}
	if tweak != nil {
		tweak(&cfg)
	}
	p, err := NewProcess(context.Background(), cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Shutdown(ctx)
	})
	return p
}

func ref(v string) v1alpha1.VersionRef { return v1alpha1.VersionRef{Version: v} }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// fakeClock puts the target of a harness on a fake clock.
func fakeClock(clock *fakeclock.Clock) func(*ProcessConfig) {
	return func(c *ProcessConfig) { c.Clock = clock }
}

// drive moves clock on by step until cond holds. Between two moves it lets
// real time pass too: the replicas are real processes that take real time
// to start and to answer probes. It fails the test after 10s of real time.
func drive(t *testing.T, clock *fakeclock.Clock, step time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		clock.Advance(step)
	}
}

// tick moves clock on by d, then waits until the target waits on n timers
// again: the probes and the loop that d made due have run.
func tick(t *testing.T, clock *fakeclock.Clock, d time.Duration, n int) {
	t.Helper()
	clock.Advance(d)
	if !clock.WaitForTimers(n, 10*time.Second) {
		t.Fatalf("after %v the target waits on %d timers, want %d", d, clock.Timers(), n)
	}
}

// allReady reports whether version runs n replicas, all ready.
func (h *harness) allReady(version string, n int) bool {
	rs := h.p.Replicas(version)
	ready := 0
	for _, r := range rs {
		if r.Ready {
			ready++
		}
	}
	return len(rs) == n && ready == n
}

// notReadyReason says why the first replica of version gets no traffic.
func (h *harness) notReadyReason(version string) string {
	h.p.mu.Lock()
	g := h.p.groups[version]
	h.p.mu.Unlock()
	if g == nil {
		return ""
	}
	return g.replicas[0].notReadyReason()
}

// waitReady waits until all replicas of version are ready and returns them.
func (h *harness) waitReady(version string, n int) []ReplicaStatus {
	h.t.Helper()
	nettest.Eventually(h.t, version+" has "+strconv.Itoa(n)+" ready replicas", func() bool { return h.allReady(version, n) })
	return h.p.Replicas(version)
}

func urlStrings(urls []*url.URL) []string {
	var out []string
	for _, u := range urls {
		out = append(out, u.String())
	}
	slices.Sort(out)
	return out
}

func replicaURLs(rs []ReplicaStatus) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.URL.String())
	}
	slices.Sort(out)
	return out
}

func get(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// alive reports whether pid runs (a zombie has exited).
func alive(pid int) bool {
	st, err := readProcStat(pid)
	return err == nil && st.alive()
}

func readPidFile(t *testing.T, path string) int {
	t.Helper()
	var pid int
	nettest.Eventually(t, "the grandchild's pid is written", func() bool {
		b, err := os.ReadFile(path)
		pid, _ = strconv.Atoi(string(b))
		return err == nil && pid > 0
	})
	return pid
}

func TestProcessRoutesRolesToReadyReplicas(t *testing.T) {
	t.Parallel()
	limit := int64(1 << 30)
	v2 := childSpec(t, 1, map[string]string{"CHILD_BURN": "300ms"})
	v2.MemoryLimitBytes = &limit
	h := newHarness(t, map[string]v1alpha1.ProcessSpec{"v1": childSpec(t, 2, nil), "v2": v2}, nil)

	must(t, h.p.Promote(context.Background(), ref("v1")))
	if got := h.p.Observe(context.Background()).StableVersion; got != "v1" {
		t.Fatalf("a first stable takes the role at once; StableVersion = %q", got)
	}
	stable := h.waitReady("v1", 2)
	nettest.Eventually(t, "the stable role has both replicas", func() bool {
		return slices.Equal(urlStrings(h.ep.get(RoleStable).urls), replicaURLs(stable))
	})
	for _, u := range replicaURLs(stable) {
		if got := get(t, u); got != "v1" {
			t.Errorf("GET %s = %q, want v1 (from the templated env)", u, got)
		}
	}

	must(t, h.p.DeployCanary(context.Background(), ref("v2")))
	canary := h.waitReady("v2", 1)
	nettest.Eventually(t, "the canary role has the canary", func() bool {
		r := h.ep.get(RoleCanary)
		return r.version == "v2" && slices.Equal(urlStrings(r.urls), replicaURLs(canary))
	})
	if got := get(t, canary[0].URL.String()); got != "v2" {
		t.Errorf("canary answers %q", got)
	}
	o := h.p.Observe(context.Background())
	if o.CanaryVersion != "v2" || o.CanaryHealth != rollout.HealthUp || o.StableVersion != "v1" {
		t.Errorf("Observe = %+v", o)
	}

	cpu, mem, ok := h.p.Usage("v2")
	if !ok || cpu <= 0 || mem <= 0 || mem >= 100 {
		t.Errorf("Usage(v2) = %.2f%% CPU, %.4f%% of 1GiB, %v; want CPU > 0 after a 300ms spin, 0 < memory < 100%%", cpu, mem, ok)
	}
	if _, mem, ok := h.p.Usage("v1"); !ok || mem < 1<<20 {
		t.Errorf("Usage(v1) memory = %.0f bytes, %v; want the resident bytes of two processes", mem, ok)
	}
	if _, _, ok := h.p.Usage("v9"); ok {
		t.Error("Usage of a version that does not run is ok")
	}

	log, err := os.ReadFile(h.p.LogFile("v1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range stable {
		want := "[" + strconv.Itoa(r.Index) + "] version v1 listening on port " + r.URL.Port() + "\n"
		if !strings.Contains(string(log), want) {
			t.Errorf("log of v1 lacks %q:\n%s", want, log)
		}
	}
}

func TestReadinessDecidesTraffic(t *testing.T) {
	t.Parallel()
	readyFile := filepath.Join(t.TempDir(), "ready")
	clock := fakeclock.New(time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC))
	h := newHarness(t, map[string]v1alpha1.ProcessSpec{
		"v1": childSpec(t, 1, nil),
		"v2": childSpec(t, 1, map[string]string{"CHILD_READY_FILE": readyFile}),
	}, fakeClock(clock))
	must(t, h.p.Promote(context.Background(), ref("v1")))
	must(t, h.p.DeployCanary(context.Background(), ref("v2")))
	drive(t, clock, probePeriod, "v1 is ready and v2 answers its probes", func() bool {
		return h.allReady("v1", 1) && strings.Contains(h.notReadyReason("v2"), "503")
	})
	// Four more probe periods, each waited out: the loop and both
	// readiness probes wait again once it has passed.
	for range 4 {
		tick(t, clock, probePeriod, 3)
	}
	if r := h.ep.get(RoleCanary); r.version != "v2" || len(r.urls) != 0 {
		t.Fatalf("canary role after failing probes = %+v, want v2 with no replica", r)
	}
	if o := h.p.Observe(context.Background()); o.CanaryHealth != rollout.HealthUnknown {
		t.Fatalf("a starting canary is %v, want unknown", o.CanaryHealth)
	}

	must(t, os.WriteFile(readyFile, nil, 0o600))
	tick(t, clock, probePeriod, 3)
	nettest.Eventually(t, "the ready canary gets traffic", func() bool { return len(h.ep.get(RoleCanary).urls) == 1 })
	if o := h.p.Observe(context.Background()); o.CanaryHealth != rollout.HealthUp {
		t.Fatalf("ready canary is %v", o.CanaryHealth)
	}

	must(t, os.Remove(readyFile))
	tick(t, clock, probePeriod, 3) // one failure: still ready
	if r := h.p.Replicas("v2")[0]; !r.Ready {
		t.Fatal("one failed probe made the canary unready; the threshold is two")
	}
	tick(t, clock, probePeriod, 3)
	nettest.Eventually(t, "the unready canary loses traffic", func() bool { return len(h.ep.get(RoleCanary).urls) == 0 })
	o := h.p.Observe(context.Background())
	if want := "no ready replica: readiness probe failed: GET /health: 503 Service Unavailable"; o.CanaryHealth != rollout.HealthDown || o.CanaryReason != want {
		t.Fatalf("Observe = %v %q, want down %q", o.CanaryHealth, o.CanaryReason, want)
	}
}

// TestCrashedReplicaRestartsWithBackoff: after each exit the replica waits
// its backoff on the clock, doubling up to the cap: not restarted a
// nanosecond before it ends, restarted at its end.
func TestCrashedReplicaRestartsWithBackoff(t *testing.T) {
	t.Parallel()
	clock := fakeclock.New(time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC))
	h := newHarness(t, map[string]v1alpha1.ProcessSpec{
		"v1": childSpec(t, 1, map[string]string{"CHILD_EXIT_AFTER": "50ms"}),
	}, func(c *ProcessConfig) {
		c.RestartBackoff, c.MaxRestartBackoff, c.CrashLoopRestarts = 100*time.Millisecond, 400*time.Millisecond, 100
		c.Clock = clock
	})
	must(t, h.p.Promote(context.Background(), ref("v1")))
	for i, backoff := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 400 * time.Millisecond} {
		exits := i + 1
		nettest.Eventually(t, "exit "+strconv.Itoa(exits), func() bool { return h.p.Replicas("v1")[0].Restarts == exits })
		// The loop's timer and the backoff's.
		if !clock.WaitForTimers(2, 10*time.Second) {
			t.Fatalf("after exit %d the target waits on %d timers, want 2", exits, clock.Timers())
		}
		clock.Advance(backoff - time.Nanosecond)
		if r := h.p.Replicas("v1")[0]; r.PID != 0 || r.Restarts != exits {
			t.Fatalf("a nanosecond before the backoff of %v ended: %+v, want no new start", backoff, r)
		}
		clock.Advance(time.Nanosecond)
		nettest.Eventually(t, "the restart after exit "+strconv.Itoa(exits), func() bool {
			r := h.p.Replicas("v1")[0]
			return r.PID != 0 || r.Restarts > exits
		})
	}
	rs := h.p.Replicas("v1")
	if rs[0].LastExit != "exit status 1" {
		t.Errorf("replica = %+v, want restarts after exit status 1", rs[0])
	}
	b, _ := os.ReadFile(h.p.LogFile("v1"))
	if got := strings.Count(string(b), "[0] crashing on purpose\n"); got < 4 {
		t.Errorf("log has %d crash lines:\n%s", got, b)
	}
}

func TestCrashLoopMakesTheCanaryDown(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		spec       func(*testing.T) v1alpha1.ProcessSpec
		wantReason string
	}{
		"exits": {
			spec: func(t *testing.T) v1alpha1.ProcessSpec {
				return childSpec(t, 1, map[string]string{"CHILD_EXIT_AFTER": "0s"})
			},
			wantReason: "crash loop: exited 3 times in 1m: exit status 1",
		},
		"cannot start": {
			spec:       func(*testing.T) v1alpha1.ProcessSpec { return v1alpha1.ProcessSpec{Command: "/nonexistent/server"} },
			wantReason: "crash loop: exited 3 times in 1m: starting: fork/exec /nonexistent/server: no such file or directory",
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, map[string]v1alpha1.ProcessSpec{"v2": tc.spec(t)}, func(c *ProcessConfig) { c.RestartBackoff = 10 * time.Millisecond })
			must(t, h.p.DeployCanary(context.Background(), ref("v2")))
			var o rollout.Observed
			nettest.Eventually(t, "the canary is down", func() bool {
				o = h.p.Observe(context.Background())
				return o.CanaryHealth == rollout.HealthDown
			})
			if o.CanaryVersion != "v2" || o.CanaryReason != tc.wantReason || !o.CanaryFailed {
				t.Errorf("Observe = %+v, want reason %q", o, tc.wantReason)
			}
		})
	}
}

func TestLivenessFailureRestartsTheReplica(t *testing.T) {
	t.Parallel()
	marker := filepath.Join(t.TempDir(), "failed-once")
	spec := childSpec(t, 1, map[string]string{"CHILD_LIVE_FAIL_ONCE": marker})
	spec.Liveness = &v1alpha1.ProbeSpec{Path: "/live", Period: ms(50), FailureThreshold: 2}
	clock := fakeclock.New(time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC))
	h := newHarness(t, map[string]v1alpha1.ProcessSpec{"v1": spec}, fakeClock(clock))
	must(t, h.p.Promote(context.Background(), ref("v1")))
	nettest.Eventually(t, "the first process runs", func() bool { rs := h.p.Replicas("v1"); return len(rs) == 1 && rs[0].PID != 0 })
	first := h.p.Replicas("v1")[0].PID
	var r ReplicaStatus
	drive(t, clock, probePeriod, "the replica was restarted and is ready", func() bool {
		r = h.p.Replicas("v1")[0]
		return r.Restarts == 1 && r.Ready
	})
	if r.PID == first || alive(first) {
		t.Errorf("pid %d after restart, first pid %d alive=%v", r.PID, first, alive(first))
	}
	if want := "liveness probe failed: GET /live: 500 Internal Server Error"; r.LastExit != want {
		t.Errorf("LastExit = %q, want %q", r.LastExit, want)
	}
	// The healthy replacement is left alone: six liveness periods later,
	// three times the failure threshold, each probe waited out (the loop,
	// the readiness and the liveness probe wait again), it still runs.
	for range 6 {
		tick(t, clock, probePeriod, 3)
	}
	if r := h.p.Replicas("v1")[0]; r.Restarts != 1 || r.PID == 0 {
		t.Errorf("replacement restarted too: %+v", r)
	}
}

// promoted runs v1 as stable and v2 as canary, then promotes v2 the way
// the engine does: Promote, then RetireCanary of the promoted version. The
// target runs on clock, or the wall clock when it is nil.
func promoted(t *testing.T, window time.Duration, clock *fakeclock.Clock) (h *harness, v1, v2 ReplicaStatus) {
	t.Helper()
	h = newHarness(t, map[string]v1alpha1.ProcessSpec{"v1": childSpec(t, 1, nil), "v2": childSpec(t, 1, nil)},
		func(c *ProcessConfig) {
			c.UndoWindow = window
			if clock != nil {
				c.Clock = clock
			}
		})
	must(t, h.p.Promote(context.Background(), ref("v1")))
	must(t, h.p.DeployCanary(context.Background(), ref("v2")))
	if clock != nil {
		drive(t, clock, probePeriod, "both versions are ready", func() bool { return h.allReady("v1", 1) && h.allReady("v2", 1) })
	}
	v1, v2 = h.waitReady("v1", 1)[0], h.waitReady("v2", 1)[0]
	must(t, h.p.Promote(context.Background(), ref("v2")))
	if o := h.p.Observe(context.Background()); o.StableVersion != "v2" {
		t.Fatalf("a ready canary is stable at once; StableVersion = %q", o.StableVersion)
	}
	if r := h.ep.get(RoleStable); r.version != "v2" || urlStrings(r.urls)[0] != v2.URL.String() {
		t.Fatalf("stable role = %+v, want v2 at %s", r, v2.URL)
	}
	must(t, h.p.RetireCanary(context.Background(), ref("v2")))
	if r := h.ep.get(RoleCanary); r.version != "" || r.urls != nil {
		t.Fatalf("canary role after retiring the promoted canary = %+v", r)
	}
	if !alive(v2.PID) {
		t.Fatal("retiring the promoted canary stopped the stable")
	}
	return h, v1, v2
}

// TestPromoteKeepsTheOldStableWarmThenDrainsIt: the old stable runs to the
// last nanosecond of the rollback window, and is drained when it ends.
func TestPromoteKeepsTheOldStableWarmThenDrainsIt(t *testing.T) {
	t.Parallel()
	const window = 600 * time.Millisecond
	clock := fakeclock.New(time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC))
	h, v1, v2 := promoted(t, window, clock)
	prev, until, ok := h.p.UndoUntil()
	if !ok || prev.Version != "v1" || !until.Equal(clock.Now().Add(window)) {
		t.Fatalf("UndoUntil = %v %v %v, want v1 until %v", prev, until, ok, clock.Now().Add(window))
	}
	// The loop's timer and both versions' readiness probes.
	tick(t, clock, window-time.Nanosecond, 3)
	if _, _, ok := h.p.UndoUntil(); !ok || !alive(v1.PID) {
		t.Fatalf("a nanosecond before the window ends: undo possible %v, old stable alive %v; want both", ok, alive(v1.PID))
	}
	clock.Advance(time.Nanosecond)
	nettest.Eventually(t, "the old stable is drained after the window", func() bool { return !alive(v1.PID) })
	if _, err := h.p.Undo(context.Background()); !errors.Is(err, ErrNoUndo) {
		t.Errorf("Undo after the window = %v, want ErrNoUndo", err)
	}
	b, _ := os.ReadFile(h.p.LogFile("v1"))
	if !strings.Contains(string(b), "[0] got SIGTERM, shutting down\n") {
		t.Errorf("the old stable was not stopped with SIGTERM; its log:\n%s", b)
	}
	if !alive(v2.PID) || h.p.Observe(context.Background()).StableVersion != "v2" {
		t.Error("the new stable does not run")
	}
}

func TestUndoInsideTheWindowSwitchesBackAtOnce(t *testing.T) {
	t.Parallel()
	// The engine undoes by promoting the previous stable; Undo does the
	// same for a caller outside the engine.
	for name, undo := range map[string]func(*Process) error{
		"Undo": func(p *Process) error {
			restored, err := p.Undo(context.Background())
			if err == nil && restored.Version != "v1" {
				err = errors.New("restored " + restored.Version)
			}
			return err
		},
		"Promote": func(p *Process) error { return p.Promote(context.Background(), ref("v1")) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h, v1, v2 := promoted(t, time.Minute, nil)
			must(t, undo(h.p))
			if r := h.ep.get(RoleStable); r.version != "v1" || urlStrings(r.urls)[0] != v1.URL.String() {
				t.Fatalf("stable role after undo = %+v, want the warm v1 at %s", r, v1.URL)
			}
			if o := h.p.Observe(context.Background()); o.StableVersion != "v1" {
				t.Errorf("StableVersion = %q", o.StableVersion)
			}
			if r := h.p.Replicas("v1")[0]; r.PID != v1.PID || r.Restarts != 0 {
				t.Errorf("v1 was restarted: %+v, before %+v", r, v1)
			}
			nettest.Eventually(t, "the undone version is drained", func() bool { return !alive(v2.PID) })
			if _, _, ok := h.p.UndoUntil(); ok {
				t.Error("the undone version is kept warm")
			}
			if _, err := h.p.Undo(context.Background()); !errors.Is(err, ErrNoUndo) {
				t.Errorf("a second Undo = %v, want ErrNoUndo", err)
			}
		})
	}
}

// TestProcessPromoteOfTheStableAgainChangesNothing: the engine promotes the
// stable again when it re-applies an ended rollout, after a promotion as
// after an undo; neither restarts a replica nor ends the undo window.
func TestProcessPromoteOfTheStableAgainChangesNothing(t *testing.T) {
	t.Parallel()
	h, v1, v2 := promoted(t, time.Minute, nil)
	must(t, h.p.Promote(context.Background(), ref("v2")))
	if r := h.p.Replicas("v2")[0]; r.PID != v2.PID || r.Restarts != 0 {
		t.Errorf("v2 was restarted: %+v, before %+v", r, v2)
	}
	if prev, _, ok := h.p.UndoUntil(); !ok || prev.Version != "v1" || !alive(v1.PID) {
		t.Fatalf("after promoting v2 again: undo to %v possible %v, v1 alive %v", prev, ok, alive(v1.PID))
	}
	must(t, h.p.Promote(context.Background(), ref("v1"))) // the undo
	must(t, h.p.Promote(context.Background(), ref("v1"))) // re-applied
	if r := h.ep.get(RoleStable); r.version != "v1" || urlStrings(r.urls)[0] != v1.URL.String() {
		t.Fatalf("stable role after the undo re-applied = %+v, want v1 at %s", r, v1.URL)
	}
	if r := h.p.Replicas("v1")[0]; r.PID != v1.PID || r.Restarts != 0 {
		t.Errorf("v1 was restarted: %+v, before %+v", r, v1)
	}
	nettest.Eventually(t, "the undone version is drained", func() bool { return !alive(v2.PID) })
}

func TestPromoteKeepsTheOldStableWhileTheProxyCannotBeTold(t *testing.T) {
	t.Parallel()
	clock := fakeclock.New(time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC))
	h := newHarness(t, map[string]v1alpha1.ProcessSpec{"v1": childSpec(t, 1, nil), "v2": childSpec(t, 1, nil)}, fakeClock(clock))
	must(t, h.p.Promote(context.Background(), ref("v1")))
	must(t, h.p.DeployCanary(context.Background(), ref("v2")))
	drive(t, clock, probePeriod, "both versions are ready", func() bool { return h.allReady("v1", 1) && h.allReady("v2", 1) })
	v1 := h.p.Replicas("v1")[0]
	h.ep.setFail(errors.New("proxy unavailable"))
	if err := h.p.Promote(context.Background(), ref("v2")); err == nil {
		t.Fatal("Promote succeeded while the proxy refused the change")
	}
	// Three retries fail; each retry period ends with the loop's retry
	// (and both readiness probes) done and waiting again.
	for range 3 {
		tick(t, clock, retryPeriod, 3)
	}
	if o := h.p.Observe(context.Background()); o.StableVersion != "v1" || !alive(v1.PID) {
		t.Fatalf("StableVersion = %q, v1 alive = %v: the old stable must keep serving", o.StableVersion, alive(v1.PID))
	}
	// The last retry was at the clock's now: the next comes one retry
	// period later, not a nanosecond before.
	h.ep.setFail(nil)
	tick(t, clock, retryPeriod-time.Nanosecond, 3)
	if o := h.p.Observe(context.Background()); o.StableVersion != "v1" {
		t.Fatalf("StableVersion = %q a nanosecond before the next retry, want v1", o.StableVersion)
	}
	tick(t, clock, time.Nanosecond, 3)
	if o := h.p.Observe(context.Background()); o.StableVersion != "v2" || h.ep.get(RoleStable).version != "v2" {
		t.Fatalf("StableVersion = %q, stable role %q once the retry came, want v2", o.StableVersion, h.ep.get(RoleStable).version)
	}
	nettest.Eventually(t, "the old stable is drained", func() bool { return !alive(v1.PID) })
}

func TestRetireCanaryKillsAfterTheGracePeriod(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "grandchild")
	spec := childSpec(t, 1, map[string]string{"CHILD_IGNORE_TERM": "1", "CHILD_GRANDCHILD_PIDFILE": pidFile})
	spec.StopGracePeriod = ms(200)
	h := newHarness(t, map[string]v1alpha1.ProcessSpec{"v1": childSpec(t, 1, nil), "v2": spec}, nil)
	must(t, h.p.Promote(context.Background(), ref("v1")))
	must(t, h.p.DeployCanary(context.Background(), ref("v2")))
	v2 := h.waitReady("v2", 1)[0]
	grandchild := readPidFile(t, pidFile)
	must(t, h.p.RetireCanary(context.Background(), ref("v2")))
	if r := h.ep.get(RoleCanary); r.version != "" {
		t.Fatalf("canary role after retire = %+v", r)
	}
	nettest.Eventually(t, "the canary and its child are gone", func() bool { return !alive(v2.PID) && !alive(grandchild) })
	b, _ := os.ReadFile(h.p.LogFile("v2"))
	if !strings.Contains(string(b), "[0] ignoring SIGTERM\n") {
		t.Errorf("the canary never got SIGTERM; its log:\n%s", b)
	}
	if o := h.p.Observe(context.Background()); o.CanaryVersion != "" {
		t.Errorf("Observe still reports canary %q", o.CanaryVersion)
	}
}

func TestShutdownLeavesNoProcessBehind(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	stubborn := childSpec(t, 1, map[string]string{"CHILD_IGNORE_TERM": "1", "CHILD_GRANDCHILD_PIDFILE": filepath.Join(dir, "g-{{ .Port }}")})
	stubborn.StopGracePeriod = &metav1.Duration{Duration: time.Minute}
	h := newHarness(t, map[string]v1alpha1.ProcessSpec{
		"v1": childSpec(t, 2, map[string]string{"CHILD_GRANDCHILD_PIDFILE": filepath.Join(dir, "g-{{ .Port }}")}),
		"v2": stubborn,
	}, nil)
	must(t, h.p.Promote(context.Background(), ref("v1")))
	must(t, h.p.DeployCanary(context.Background(), ref("v2")))
	var pids []int
	for _, r := range append(h.waitReady("v1", 2), h.waitReady("v2", 1)...) {
		pids = append(pids, r.PID, readPidFile(t, filepath.Join(dir, "g-"+r.URL.Port())))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	must(t, h.p.Shutdown(ctx))
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("pid %d survived Shutdown", pid)
		}
	}
	var left stateRecord
	b, err := os.ReadFile(filepath.Join(h.dir, stateFileName))
	if err != nil || json.Unmarshal(b, &left) != nil || len(left.Processes) != 0 {
		t.Errorf("state file after Shutdown: %s, %v", b, err)
	}
	if err := h.p.Promote(context.Background(), ref("v1")); !errors.Is(err, ErrProcessClosed) {
		t.Errorf("Promote after Shutdown = %v", err)
	}
}

// TestRestartStopsLeftovers kills -9 a daemon running processes, then
// starts a new target on its directory: the leftovers must be stopped,
// and a stranger that reused a recorded pid must not.
func TestRestartStopsLeftovers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	exe, _ := os.Executable()
	daemon := exec.Command(exe)
	daemon.Env = append(os.Environ(), daemonEnv+"="+dir)
	out, err := daemon.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	daemon.Stderr = os.Stderr
	must(t, daemon.Start())
	t.Cleanup(func() { _ = daemon.Process.Kill(); _ = daemon.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("daemon said %q: %v", line, err)
	}
	var pids []int
	must(t, json.Unmarshal([]byte(line), &pids))
	grandchildren, _ := filepath.Glob(filepath.Join(dir, "grandchild-*"))
	for _, g := range grandchildren {
		pids = append(pids, readPidFile(t, g))
	}
	if len(pids) != 4 {
		t.Fatalf("pids %v, want 2 replicas and 2 grandchildren", pids)
	}

	must(t, daemon.Process.Signal(syscall.SIGKILL))
	_ = daemon.Wait()
	for _, pid := range pids {
		if !alive(pid) {
			t.Fatalf("pid %d died with the daemon; the test cannot show a cleanup", pid)
		}
	}

	// A process the state file names with another start time is a
	// stranger that reused the pid.
	stranger := exec.Command(exe)
	stranger.Env = append(os.Environ(), sleeperEnv+"=1")
	stranger.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	must(t, stranger.Start())
	t.Cleanup(func() { _ = stranger.Process.Kill(); _ = stranger.Wait() })
	statePath := filepath.Join(dir, stateFileName)
	b, err := os.ReadFile(statePath)
	must(t, err)
	var rec stateRecord
	must(t, json.Unmarshal(b, &rec))
	rec.Processes = append(rec.Processes, stateEntry{PID: stranger.Process.Pid, StartTicks: 1, Version: "v0"})
	// As pipit wrote it before the hand-over: the list alone.
	b, _ = json.Marshal(rec.Processes)
	must(t, os.WriteFile(statePath, b, 0o600))

	p, err := NewProcess(context.Background(), ProcessConfig{
		Dir: dir, Endpoints: &fakeEndpoints{},
		Specs: func(string) (v1alpha1.ProcessSpec, bool) { return v1alpha1.ProcessSpec{}, false },
	})
	must(t, err)
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("leftover pid %d still runs", pid)
		}
	}
	if !alive(stranger.Process.Pid) {
		t.Error("the stranger was killed")
	}
}

// TestHeldStopsWaitForTheGate: with HoldStops, a retired canary leaves
// the routes at once but its process runs on until the gate opens (a
// daemon that took over waits for the old one to drain), then stops.
func TestHeldStopsWaitForTheGate(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	h := newHarness(t, map[string]v1alpha1.ProcessSpec{"v1": childSpec(t, 1, nil), "v2": childSpec(t, 1, nil)},
		func(c *ProcessConfig) { c.HoldStops = gate })
	must(t, h.p.Promote(context.Background(), ref("v1")))
	must(t, h.p.DeployCanary(context.Background(), ref("v2")))
	v2 := h.waitReady("v2", 1)[0]
	must(t, h.p.RetireCanary(context.Background(), ref("v2")))
	if r := h.ep.get(RoleCanary); r.version != "" {
		t.Fatalf("canary role after retire = %+v", r)
	}
	time.Sleep(300 * time.Millisecond)
	if !alive(v2.PID) {
		t.Fatal("the retired canary stopped before the gate opened")
	}
	close(gate)
	nettest.Eventually(t, "the canary is gone once the gate opened", func() bool { return !alive(v2.PID) })
}
