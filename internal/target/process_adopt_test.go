package target

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/testenv/nettest"
)

// adopted builds a second harness on h's directory whose Process adopts
// the processes of pipes, with specs (h's when nil).
func (h *harness) adopted(pipes map[string]*os.File, specs map[string]v1alpha1.ProcessSpec, tweak func(*ProcessConfig)) *harness {
	h.t.Helper()
	if specs == nil {
		specs = h.specs
	}
	a := &harness{t: h.t, ep: &fakeEndpoints{}, dir: h.dir, specs: specs}
	a.p = a.open(func(c *ProcessConfig) {
		c.Adopt = pipes
		if tweak != nil {
			tweak(c)
		}
	})
	return a
}

// detach detaches h's Process and checks that it hands over want pipes.
func (h *harness) detach(want int) map[string]*os.File {
	h.t.Helper()
	pipes, err := h.p.Detach(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	if len(pipes) != want {
		h.t.Fatalf("Detach handed over %d pipes, want %d: %v", len(pipes), want, slices.Sorted(maps.Keys(pipes)))
	}
	return pipes
}

func pidsOf(rs []ReplicaStatus) []int {
	var pids []int
	for _, r := range rs {
		pids = append(pids, r.PID)
	}
	return pids
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

// handedOver runs v1 (kept warm for undo), v2 (stable, two replicas, ready
// while readyFile exists) and v3 (canary), then detaches. Every start of a
// replica appends a line to starts.
func handedOver(t *testing.T, readyFile, starts string) (h *harness, before map[string][]ReplicaStatus, pipes map[string]*os.File) {
	t.Helper()
	env := map[string]string{"CHILD_START_LOG": starts}
	must(t, os.WriteFile(readyFile, nil, 0o600))
	h = newHarness(t, map[string]v1alpha1.ProcessSpec{
		"v1": childSpec(t, 1, env),
		"v2": childSpec(t, 2, map[string]string{"CHILD_START_LOG": starts, "CHILD_READY_FILE": readyFile}),
		"v3": childSpec(t, 1, env),
	}, func(c *ProcessConfig) { c.UndoWindow = time.Minute })
	ctx := context.Background()
	must(t, h.p.Promote(ctx, ref("v1")))
	must(t, h.p.DeployCanary(ctx, ref("v2")))
	h.waitReady("v1", 1)
	h.waitReady("v2", 2)
	must(t, h.p.Promote(ctx, ref("v2")))
	must(t, h.p.RetireCanary(ctx, ref("v2")))
	must(t, h.p.DeployCanary(ctx, ref("v3")))
	before = map[string][]ReplicaStatus{"v1": h.waitReady("v1", 1), "v2": h.waitReady("v2", 2), "v3": h.waitReady("v3", 1)}
	nettest.Eventually(t, "the canary role routes to v3", func() bool { return len(h.ep.get(RoleCanary).urls) == 1 })
	pipes = h.detach(4)
	if err := h.p.Promote(ctx, ref("v2")); !errors.Is(err, ErrProcessClosed) {
		t.Fatalf("Promote after Detach = %v, want ErrProcessClosed", err)
	}
	must(t, h.p.Shutdown(ctx)) // a no-op now
	for _, rs := range before {
		for _, r := range rs {
			if !alive(r.PID) {
				t.Fatalf("pid %d of %+v did not survive Detach", r.PID, r)
			}
		}
	}
	return h, before, pipes
}

func TestAdoptionKeepsProcessesRoutesAndUndo(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	readyFile, starts := filepath.Join(tmp, "ready"), filepath.Join(tmp, "starts")
	h, before, pipes := handedOver(t, readyFile, starts)
	// From now on v2 fails its readiness probes: only the hand-over can
	// make it ready.
	must(t, os.Remove(readyFile))
	a := h.adopted(pipes, nil, func(c *ProcessConfig) { c.UndoWindow = time.Minute })
	if r := a.ep.get(RoleStable); r.version != "v2" || !slices.Equal(urlStrings(r.urls), replicaURLs(before["v2"])) {
		t.Fatalf("stable role once NewProcess returned = %+v, want v2 at %v", r, replicaURLs(before["v2"]))
	}
	if r := a.ep.get(RoleCanary); r.version != "v3" || !slices.Equal(urlStrings(r.urls), replicaURLs(before["v3"])) {
		t.Fatalf("canary role once NewProcess returned = %+v, want v3 at %v", r, replicaURLs(before["v3"]))
	}
	for v, rs := range before {
		if got := a.p.Replicas(v); !slices.Equal(pidsOf(got), pidsOf(rs)) || !slices.Equal(replicaURLs(got), replicaURLs(rs)) {
			t.Errorf("%s adopted as %+v, want %+v", v, got, rs)
		}
	}
	// The engine re-applies its decisions: nothing restarts.
	must(t, a.p.Promote(context.Background(), ref("v2")))
	must(t, a.p.DeployCanary(context.Background(), ref("v3")))
	if o := a.p.Observe(context.Background()); o.StableVersion != "v2" || o.CanaryVersion != "v3" || o.CanaryHealth != rollout.HealthUp {
		t.Errorf("Observe after the adoption = %+v", o)
	}
	// v2 is probed as usual, and loses its traffic.
	nettest.Eventually(t, "v2 fails its probes", func() bool { r := a.ep.get(RoleStable); return r.version == "v2" && len(r.urls) == 0 })

	restored, err := a.p.Undo(context.Background())
	if err != nil || restored.Version != "v1" {
		t.Fatalf("Undo inside the handed-over window = %v, %v", restored, err)
	}
	if r := a.ep.get(RoleStable); r.version != "v1" || urlStrings(r.urls)[0] != before["v1"][0].URL.String() {
		t.Fatalf("stable role after undo = %+v, want the warm v1", r)
	}
	nettest.Eventually(t, "the undone v2 is drained", func() bool { return !alive(before["v2"][0].PID) && !alive(before["v2"][1].PID) })
	// Output the adopted replicas wrote lands in the log.
	b, _ := os.ReadFile(a.p.LogFile("v2"))
	for _, want := range []string{"[0] got SIGTERM, shutting down\n", "[1] got SIGTERM, shutting down\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("log of v2 lacks %q:\n%s", want, b)
		}
	}
	if n := countLines(t, starts); n != 4 {
		t.Errorf("%d starts, want 4: one per replica, none after the adoption", n)
	}
}

func TestAdoptedReplicaThatExitsIsRestarted(t *testing.T) {
	t.Parallel()
	h := newHarness(t, map[string]v1alpha1.ProcessSpec{"v1": childSpec(t, 2, nil), "v2": childSpec(t, 1, nil)}, nil)
	must(t, h.p.Promote(context.Background(), ref("v1")))
	must(t, h.p.DeployCanary(context.Background(), ref("v2")))
	v1, v2 := h.waitReady("v1", 2), h.waitReady("v2", 1)
	a := h.adopted(h.detach(3), nil, nil)
	for _, pid := range []int{v1[0].PID, v2[0].PID} {
		must(t, syscall.Kill(pid, syscall.SIGKILL))
	}
	var rs []ReplicaStatus
	nettest.Eventually(t, "the killed replicas run again", func() bool {
		rs = append(a.p.Replicas("v1"), a.p.Replicas("v2")...)
		return rs[0].Restarts == 1 && rs[0].Ready && rs[2].Restarts == 1 && rs[2].Ready
	})
	for _, i := range []int{0, 2} {
		if rs[i].PID == v1[0].PID || rs[i].PID == v2[0].PID || !strings.Contains(rs[i].LastExit, "exit status unknown") {
			t.Errorf("restarted replica = %+v, want a new pid and an unknown exit status", rs[i])
		}
	}
	if rs[1].PID != v1[1].PID || rs[1].Restarts != 0 {
		t.Errorf("the replica left alone = %+v, want pid %d", rs[1], v1[1].PID)
	}
	if o := a.p.Observe(context.Background()); o.CanaryVersion != "v2" || o.CanaryHealth != rollout.HealthUp {
		t.Errorf("Observe = %+v, want the restarted canary up", o)
	}
	nettest.Eventually(t, "the stable role has the restarted replica", func() bool {
		return slices.Equal(urlStrings(a.ep.get(RoleStable).urls), replicaURLs(rs[:2]))
	})
}

func TestShutdownStopsAdoptedReplicas(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "grandchild")
	spec := childSpec(t, 1, map[string]string{"CHILD_IGNORE_TERM": "1", "CHILD_GRANDCHILD_PIDFILE": pidFile})
	spec.StopGracePeriod = ms(300)
	h := newHarness(t, map[string]v1alpha1.ProcessSpec{"v1": spec}, nil)
	must(t, h.p.Promote(context.Background(), ref("v1")))
	pids := []int{h.waitReady("v1", 1)[0].PID, readPidFile(t, pidFile)}
	a := h.adopted(h.detach(1), nil, nil)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	must(t, a.p.Shutdown(ctx))
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("Shutdown took %v, less than the grace period", took)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("pid %d survived Shutdown", pid)
		}
	}
	if rs := a.p.Replicas("v1"); rs != nil {
		t.Errorf("v1 still has replicas: %+v", rs)
	}
	b, _ := os.ReadFile(a.p.LogFile("v1"))
	if !strings.Contains(string(b), "[0] ignoring SIGTERM\n") {
		t.Errorf("the adopted replica never got SIGTERM; its log:\n%s", b)
	}
	var rec stateRecord
	b, err := os.ReadFile(filepath.Join(h.dir, stateFileName))
	if err != nil || json.Unmarshal(b, &rec) != nil || len(rec.Processes) != 0 || rec.Handover != nil {
		t.Errorf("state file after Shutdown: %s, %v", b, err)
	}
}

func TestAdoptStopsWhatItCannotAdopt(t *testing.T) {
	t.Parallel()
	h := newHarness(t, map[string]v1alpha1.ProcessSpec{"v1": childSpec(t, 2, nil), "v2": childSpec(t, 1, nil)}, nil)
	must(t, h.p.Promote(context.Background(), ref("v1")))
	must(t, h.p.DeployCanary(context.Background(), ref("v2")))
	v1, v2 := h.waitReady("v1", 2), h.waitReady("v2", 1)
	pipes := h.detach(3)
	must(t, pipes[PipeName(v1[0].PID)].Close())
	delete(pipes, PipeName(v1[0].PID))
	// v2 has no spec any more.
	a := h.adopted(pipes, map[string]v1alpha1.ProcessSpec{"v1": h.specs["v1"]}, nil)
	if alive(v1[0].PID) || alive(v2[0].PID) {
		t.Errorf("once NewProcess returned: the replica without its pipe alive %v, the version without a spec alive %v; want both stopped",
			alive(v1[0].PID), alive(v2[0].PID))
	}
	if r := a.ep.get(RoleStable); r.version != "v1" || len(r.urls) != 1 || r.urls[0].String() != v1[1].URL.String() {
		t.Errorf("stable role = %+v, want the adopted replica alone at %s", r, v1[1].URL)
	}
	rs := a.waitReady("v1", 2)
	if rs[0].PID == v1[0].PID || rs[0].Restarts != 0 || rs[1].PID != v1[1].PID {
		t.Errorf("v1 = %+v, want replica 0 started afresh and replica 1 adopted (pid %d)", rs, v1[1].PID)
	}
	if rs := a.p.Replicas("v2"); rs != nil {
		t.Errorf("v2 runs: %+v", rs)
	}
}

// TestAdoptionAcrossDaemons: a daemon (the test binary in another
// process) runs v1, hands its pipes over on a socket and exits; this
// process adopts the replicas, which are no children of it.
func TestAdoptionAcrossDaemons(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pipes := handOverFromDaemon(t, dir)
	h := &harness{t: t, ep: &fakeEndpoints{}, dir: dir, specs: map[string]v1alpha1.ProcessSpec{"v1": daemonSpec(dir)}}
	h.p = h.open(func(c *ProcessConfig) { c.Adopt = pipes })
	r := h.ep.get(RoleStable)
	rs := h.p.Replicas("v1")
	if r.version != "v1" || !slices.Equal(urlStrings(r.urls), replicaURLs(rs)) || len(rs) != 2 {
		t.Fatalf("stable role = %+v, replicas %+v: want both adopted at once", r, rs)
	}
	for _, rep := range rs {
		if _, ok := pipes[PipeName(rep.PID)]; !ok {
			t.Errorf("replica %+v is not a handed-over process", rep)
		}
		if got := get(t, rep.URL.String()); got != "v1" {
			t.Errorf("GET %s = %q", rep.URL, got)
		}
	}
	must(t, syscall.Kill(rs[0].PID, syscall.SIGKILL))
	nettest.Eventually(t, "the killed replica runs again", func() bool {
		r := h.p.Replicas("v1")[0]
		return r.Restarts == 1 && r.Ready && r.PID != rs[0].PID
	})
	if got := h.p.Replicas("v1")[0].LastExit; !strings.Contains(got, "exit status unknown") {
		t.Errorf("LastExit = %q", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	must(t, h.p.Shutdown(ctx))
	if alive(rs[1].PID) {
		t.Error("the adopted replica survived Shutdown")
	}
	b, _ := os.ReadFile(h.p.LogFile("v1"))
	if want := "[1] got SIGTERM, shutting down\n"; !strings.Contains(string(b), want) {
		t.Errorf("log lacks %q, written by the adopted replica:\n%s", want, b)
	}
}

// handOverFromDaemon runs the handoverEnv daemon on dir and returns the
// pipes it sent, once it has exited.
func handOverFromDaemon(t *testing.T, dir string) map[string]*os.File {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	must(t, err)
	ours, theirs := os.NewFile(uintptr(fds[0]), "ours"), os.NewFile(uintptr(fds[1]), "theirs")
	defer ours.Close()
	exe, _ := os.Executable()
	daemon := exec.Command(exe)
	daemon.Env = append(os.Environ(), handoverEnv+"="+dir)
	daemon.ExtraFiles = []*os.File{theirs}
	daemon.Stderr = os.Stderr
	err = daemon.Start()
	_ = theirs.Close()
	must(t, err)
	rc, err := ours.SyscallConn()
	must(t, err)
	var pipes map[string]*os.File
	must(t, errors.Join(rc.Control(func(fd uintptr) { pipes, err = recvFiles(int(fd)) }), err))
	must(t, daemon.Wait())
	var handed []stateEntry
	for name := range pipes {
		pid, _ := strconv.Atoi(strings.TrimPrefix(name, "pid:"))
		if st, err := readProcStat(pid); err == nil {
			handed = append(handed, stateEntry{PID: pid, StartTicks: st.startTicks})
		}
	}
	t.Cleanup(func() { // should the adoption fail
		for _, e := range handed {
			if stillRunning(e) {
				_ = signalGroup(e.PID, syscall.SIGKILL)
			}
		}
	})
	return pipes
}
