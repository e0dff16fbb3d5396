package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/controlapi"
	"github.com/pipit-dev/pipit/internal/sampleapp"
)

// daemon is a `pipit up` process.
type daemon struct {
	t        testing.TB
	cmd      *exec.Cmd
	stateDir string
	file     string
	name     string // the rollout the helpers below look at
	log      string // the file its standard output and error go to
}

func startUp(t testing.TB, file, stateDir string) *daemon {
	t.Helper()
	return startUpFiles(t, stateDir, file)
}

// startUpFiles starts `pipit up` with a -f for each file and waits until
// its control API is up.
func startUpFiles(t testing.TB, stateDir string, files ...string) *daemon {
	t.Helper()
	return startDaemon(t, pipitBin, stateDir, nil, true, files...)
}

// startDaemon starts `bin up` with env added to its environment and a -f
// for each file and, when wait is set, waits until its control API is up:
// until it wrote the API's address, which it does once it serves. Without
// wait, the address a running daemon wrote stays for the CLI to find.
func startDaemon(t testing.TB, bin, stateDir string, env []string, wait bool, files ...string) *daemon {
	t.Helper()
	args := []string{"up", "--state-dir", stateDir, "--api", "127.0.0.1:0", "-v"}
	for _, f := range files {
		args = append(args, "-f", f)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	return startCmd(t, cmd, stateDir, files[0], wait)
}

// startCmd starts cmd, a `pipit up` of stateDir run with file (first),
// as startDaemon does.
func startCmd(t testing.TB, cmd *exec.Cmd, stateDir, file string, wait bool) *daemon {
	t.Helper()
	if wait {
		os.Remove(filepath.Join(stateDir, controlapi.AddressFile))
	}
	d := runDaemon(t, cmd, stateDir, file)
	t.Cleanup(func() { d.cmd.Process.Kill(); d.cmd.Wait() })
	deadline := time.Now().Add(30 * time.Second)
	for wait {
		if _, err := os.Stat(filepath.Join(stateDir, controlapi.AddressFile)); err == nil {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("pipit up did not start:\n%s", d.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return d
}

// runDaemon starts cmd, a daemon of stateDir run with file, its output
// going to a log file of the test's.
func runDaemon(t testing.TB, cmd *exec.Cmd, stateDir, file string) *daemon {
	t.Helper()
	log, err := os.Create(filepath.Join(t.TempDir(), "up.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return &daemon{t: t, cmd: cmd, stateDir: stateDir, file: file, name: "web", log: log.Name()}
}

// output is what the daemon printed so far.
func (d *daemon) output() string {
	b, _ := os.ReadFile(d.log)
	return string(b)
}

// awaitExit waits for the daemon to exit and returns its exit code, -1
// when a signal killed it.
func (d *daemon) awaitExit(limit time.Duration) int {
	d.t.Helper()
	done := make(chan struct{})
	go func() { d.cmd.Wait(); close(done) }()
	select {
	case <-done:
		return d.cmd.ProcessState.ExitCode()
	case <-time.After(limit):
		d.t.Fatalf("pipit up did not exit within %s:\n%s", limit, d.output())
		return 0
	}
}

// waitAnswers waits until the proxy on addr answers 200.
func waitAnswers(t testing.TB, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	client := &http.Client{Timeout: 5 * time.Second}
	for {
		resp, err := client.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the proxy on %s does not answer 200: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill9 kills the daemon with SIGKILL: no shutdown code runs.
func (d *daemon) kill9() {
	d.t.Helper()
	if err := d.cmd.Process.Kill(); err != nil {
		d.t.Fatal(err)
	}
	d.cmd.Wait()
}

func (d *daemon) status() controlapi.RolloutView {
	d.t.Helper()
	r := pipit(d.t, 10*time.Second, "status", d.name, "-o", "json", "--state-dir", d.stateDir)
	if r.code != 0 {
		d.t.Fatalf("pipit status: exit %d: %s", r.code, r.stderr)
	}
	var v controlapi.RolloutView
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		d.t.Fatalf("pipit status -o json: %v\n%s", err, r.stdout)
	}
	return v
}

func (d *daemon) waitFor(limit time.Duration, what string, cond func(v1alpha1.RolloutStatus) bool) v1alpha1.RolloutStatus {
	d.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		v := d.status()
		if cond(v.Status) {
			return v.Status
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("%s not reached in %s: %s at %s (%s)", what, limit, v.Status.Phase, v.Status.CanaryWeight, v.Status.Message)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (d *daemon) history() []v1alpha1.Event {
	d.t.Helper()
	r := pipit(d.t, 10*time.Second, "history", d.name, "-o", "json", "--state-dir", d.stateDir)
	if r.code != 0 {
		d.t.Fatalf("pipit history: exit %d: %s", r.code, r.stderr)
	}
	var events []v1alpha1.Event
	if err := json.Unmarshal([]byte(r.stdout), &events); err != nil {
		d.t.Fatalf("pipit history -o json: %v\n%s", err, r.stdout)
	}
	return events
}

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func writeRollout(t testing.TB, listen, stableURL, longPause string) string {
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
  strategy:
    steps:
    - setWeight: 5
    - pause: {duration: 1s}
    - setWeight: 25
    - pause: {duration: %s}
    - setWeight: 50
    - pause: {duration: 1s}
  analysis:
    interval: 500ms
`, listen, stableURL, longPause)
	path := filepath.Join(t.TempDir(), "rollout.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func countReason(events []v1alpha1.Event, reason string) int {
	n := 0
	for _, e := range events {
		if e.Reason == reason {
			n++
		}
	}
	return n
}

// TestKill9MidRolloutResumesWhereItWas is the acceptance scenario: a
// rollout started with `pipit deploy`, the daemon killed with SIGKILL
// during a pause, `pipit up` again: same step, same weight, same pause
// start, and the rollout finishes, promoted exactly once.
func TestKill9MidRolloutResumesWhereItWas(t *testing.T) {
	stable := httptest.NewServer(sampleapp.Handler(sampleapp.Config{Version: "v1"}))
	defer stable.Close()
	canary := httptest.NewServer(sampleapp.Handler(sampleapp.Config{Version: "v2"}))
	defer canary.Close()
	file := writeRollout(t, freePort(t), stable.URL, "4s")
	state := t.TempDir()

	d := startUp(t, file, state)
	if r := pipit(t, 10*time.Second, "deploy", "web", "--canary", canary.URL, "--version", "v2", "--state-dir", state); r.code != 0 {
		t.Fatalf("pipit deploy: exit %d: %s", r.code, r.stderr)
	}
	before := d.waitFor(10*time.Second, "25%", func(st v1alpha1.RolloutStatus) bool {
		return st.CanaryWeight == v1alpha1.PercentOf(25) && st.CurrentStep == 3
	})
	d.kill9()

	d = startUp(t, file, state)
	after := d.status().Status
	if after.CurrentStep != before.CurrentStep || after.CanaryWeight != before.CanaryWeight ||
		!after.StepStartedAt.Equal(before.StepStartedAt) {
		t.Fatalf("after kill -9 and restart: step %d weight %s pause started %v; before: step %d weight %s started %v",
			after.CurrentStep, after.CanaryWeight, after.StepStartedAt, before.CurrentStep, before.CanaryWeight, before.StepStartedAt)
	}
	st := d.waitFor(30*time.Second, "Succeeded", func(st v1alpha1.RolloutStatus) bool { return st.Phase == v1alpha1.PhaseSucceeded })
	if st.Stable.Version != "v2" {
		t.Errorf("stable after the rollout: %s", st.Stable.Version)
	}
	events := d.history()
	if n := countReason(events, "Promoted"); n != 1 {
		t.Errorf("promoted %d times", n)
	}
	if n := countReason(events, "Started"); n != 1 {
		t.Errorf("started %d times", n)
	}
}

// TestKill9AtRandomMomentsNeverLosesOrRepeatsAStep kills the daemon again
// and again at random moments of a rollout; each restart goes on from the
// saved state, and the rollout ends promoted once, having passed through
// each weight in order.
func TestKill9AtRandomMomentsNeverLosesOrRepeatsAStep(t *testing.T) {
	stable := httptest.NewServer(sampleapp.Handler(sampleapp.Config{Version: "v1"}))
	defer stable.Close()
	canary := httptest.NewServer(sampleapp.Handler(sampleapp.Config{Version: "v2"}))
	defer canary.Close()
	file := writeRollout(t, freePort(t), stable.URL, "1s")
	state := t.TempDir()
	d := startUp(t, file, state)
	if r := pipit(t, 10*time.Second, "deploy", "web", "--canary", canary.URL, "--version", "v2", "--state-dir", state); r.code != 0 {
		t.Fatalf("pipit deploy: exit %d: %s", r.code, r.stderr)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for range 4 {
		time.Sleep(time.Duration(200+rng.IntN(700)) * time.Millisecond)
		d.kill9()
		d = startUp(t, file, state)
	}
	d.waitFor(30*time.Second, "Succeeded", func(st v1alpha1.RolloutStatus) bool { return st.Phase == v1alpha1.PhaseSucceeded })
	events := d.history()
	var weights []string
	for _, e := range events {
		if e.Reason == "WeightChanged" {
			weights = append(weights, e.Weight.String())
		}
	}
	if got := strings.Join(weights, " "); got != "5% 25% 50%" {
		t.Errorf("weights %q, want each once in order", got)
	}
	if n := countReason(events, "Promoted"); n != 1 {
		t.Errorf("promoted %d times", n)
	}
}
