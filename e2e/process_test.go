package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// timedSteps is the strategy of writeProcessRollout: done in seconds.
const timedSteps = `    steps:
    - setWeight: 5
    - pause: {duration: 1s}
    - setWeight: 25
    - pause: {duration: 4s}
    - setWeight: 50
    - pause: {duration: 1s}
  undoWindow: 1s
  analysis:
    interval: 500ms
`

// writeProcessRollout writes a rollout whose versions are two replicas of
// `pipit sample-app` each, run by pipit, and the description of v2 for
// `pipit deploy --from`.
func writeProcessRollout(t testing.TB, listen string) (rollout, v2 string) {
	t.Helper()
	return writeProcessRolloutWith(t, listen, timedSteps)
}

// writeProcessRolloutWith is writeProcessRollout with another strategy,
// indented as timedSteps is.
func writeProcessRolloutWith(t testing.TB, listen, strategy string) (rollout, v2 string) {
	t.Helper()
	process := fmt.Sprintf(`command: %q
args: [sample-app, --listen, "127.0.0.1:{{ .Port }}", --version, "{{ .Version }}"]
replicas: 2
readiness: {path: /health, period: 100ms}
stopGracePeriod: 5s
`, pipitBin)
	doc := fmt.Sprintf(`apiVersion: pipit.dev/v1alpha1
kind: Rollout
metadata:
  name: web
spec:
  service:
    listen: %s
    stable:
      version: v1
      process:
%s  strategy:
%s`, listen, indent(process, "        "), strategy)
	dir := t.TempDir()
	rollout, v2 = filepath.Join(dir, "rollout.yaml"), filepath.Join(dir, "v2.yaml")
	for path, data := range map[string]string{rollout: doc, v2: process} {
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return rollout, v2
}

func indent(s, prefix string) string {
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "")
}

// procStat reads the state and parent of pid from /proc; ok is false when
// there is no such process.
func procStat(pid int) (state byte, ppid int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	return f[0][0], ppid, true
}

// alive reports whether pid runs; a zombie has exited.
func alive(pid int) bool {
	state, _, ok := procStat(pid)
	return ok && state != 'Z' && state != 'X'
}

// children lists the live processes whose parent is pid.
func children(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, ppid, ok := procStat(child); ok && ppid == pid && alive(child) {
			out = append(out, child)
		}
	}
	slices.Sort(out)
	return out
}

// stopGracefully ends a daemon as an operator would, with SIGTERM, and
// returns its children that outlived it.
func (d *daemon) stopGracefully(limit time.Duration) []int {
	kids := children(d.cmd.Process.Pid)
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return nil // already gone
	}
	done := make(chan struct{})
	go func() { d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(limit):
		d.t.Errorf("pipit up did not stop within %s of SIGTERM", limit)
		_ = d.cmd.Process.Kill()
		<-done
	}
	return slices.DeleteFunc(kids, func(pid int) bool { return !alive(pid) })
}

// killGroups kills what is left of the process groups led by pids: each
// replica leads its own.
func killGroups(pids []int) {
	for _, pid := range pids {
		if pid > 1 {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
	}
}

// TestProcessRolloutSurvivesKill9WithoutOrphans runs a rollout of
// processes under the real `pipit up`, kills the daemon with SIGKILL in
// the middle, and starts it again: the processes of the first daemon are
// stopped by the second (none is left running), which starts its own
// and finishes the rollout, promoted once.
func TestProcessRolloutSurvivesKill9WithoutOrphans(t *testing.T) {
	rollout, v2 := writeProcessRollout(t, freePort(t))
	state := t.TempDir()
	d := startUp(t, rollout, state)
	var first []int
	t.Cleanup(func() { killGroups(first) })

	if r := pipit(t, 10*time.Second, "deploy", "web", "--version", "v2", "--from", v2, "--state-dir", state); r.code != 0 {
		t.Fatalf("pipit deploy: exit %d: %s", r.code, r.stderr)
	}
	d.waitFor(20*time.Second, "25%", func(st v1alpha1.RolloutStatus) bool {
		return st.CanaryWeight == v1alpha1.PercentOf(25) && st.CurrentStep == 3
	})
	first = children(d.cmd.Process.Pid)
	if len(first) != 4 {
		t.Fatalf("the daemon runs %v, want 2 replicas of v1 and 2 of v2", first)
	}
	d.kill9()
	if !slices.ContainsFunc(first, alive) {
		t.Fatalf("the processes %v died with the daemon; the restart has nothing to clean up", first)
	}

	d = startUp(t, rollout, state)
	t.Cleanup(func() { killGroups(d.stopGracefully(20 * time.Second)) })
	// The new daemon stopped the old processes before it served anything.
	if left := slices.DeleteFunc(slices.Clone(first), func(pid int) bool { return !alive(pid) }); len(left) > 0 {
		t.Errorf("processes of the killed daemon still run after the restart: %v", left)
	}
	st := d.waitFor(30*time.Second, "Succeeded", func(st v1alpha1.RolloutStatus) bool { return st.Phase == v1alpha1.PhaseSucceeded })
	if st.Stable.Version != "v2" {
		t.Errorf("stable after the rollout: %s", st.Stable.Version)
	}
	if n := countReason(d.history(), "Promoted"); n != 1 {
		t.Errorf("promoted %d times", n)
	}
	// Once the undo window closed, the daemon runs v2's two replicas only,
	// none of them from the first run.
	var now []int
	deadline := time.Now().Add(15 * time.Second)
	for now = children(d.cmd.Process.Pid); len(now) != 2; now = children(d.cmd.Process.Pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the daemon runs %v after the promotion, want v2's 2 replicas", now)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, pid := range now {
		if slices.Contains(first, pid) {
			t.Errorf("process %d of the first run is still serving", pid)
		}
	}
	// A graceful stop takes its processes with it.
	if left := d.stopGracefully(20 * time.Second); len(left) > 0 {
		t.Errorf("processes outlived pipit up: %v", left)
	}
}
