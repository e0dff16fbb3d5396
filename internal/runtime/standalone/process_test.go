package standalone

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/loadgen"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/sampleapp"
	"github.com/pipit-dev/pipit/internal/target"
)

// appEnv makes the test binary play the sample app instead of running
// tests: the processes of the process rollouts below are this binary.
const appEnv = "PIPIT_TEST_APP"

func TestMain(m *testing.M) {
	if os.Getenv(appEnv) != "" {
		runApp()
		return
	}
	if os.Getenv(systemdChildEnv) != "" {
		runSystemdChild()
		return
	}
	// Race-enabled binaries sleep a second before exiting; the sample
	// apps (this binary) need not.
	os.Setenv("GORACE", "atexit_sleep_ms=0")
	os.Exit(m.Run())
}

// runApp serves the sample app as `pipit sample-app` does, until SIGTERM.
func runApp() {
	fs := flag.NewFlagSet("app", flag.ExitOnError)
	listen := fs.String("listen", "", "address to listen on")
	version := fs.String("version", "", "version to report")
	_ = fs.Parse(os.Args[1:])
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := sampleapp.Serve(ctx, *listen, sampleapp.Config{Version: *version}, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// appProcess runs replicas of the sample app; extra arguments are added
// to its command line.
func appProcess(t *testing.T, replicas int32, extra ...string) *v1alpha1.ProcessSpec {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	limit := int64(1 << 30)
	return &v1alpha1.ProcessSpec{
		Command: exe, Args: append([]string{"-listen", "127.0.0.1:{{ .Port }}", "-version", "{{ .Version }}"}, extra...),
		Env: map[string]string{appEnv: "1"}, Replicas: replicas, MemoryLimitBytes: &limit,
		Readiness:       &v1alpha1.ProbeSpec{Path: "/health", Period: &metav1.Duration{Duration: 100 * time.Millisecond}},
		StopGracePeriod: &metav1.Duration{Duration: 5 * time.Second},
	}
}

// processRolloutYAML is rolloutYAML with v1 run as two replicas of the
// sample app, the usage metrics checked, and an undo window of 2s.
func processRolloutYAML(t *testing.T, lastPause string) []byte {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return []byte(fmt.Sprintf(`apiVersion: pipit.dev/v1alpha1
kind: Rollout
metadata:
  name: web
spec:
  service:
    listen: 127.0.0.1:0
    stable:
      version: v1
      process:
        command: %q
        args: [-listen, "127.0.0.1:{{ .Port }}", -version, "{{ .Version }}"]
        env: {%s: "1"}
        replicas: 2
        readiness: {path: /health, period: 100ms}
        stopGracePeriod: 5s
        memoryLimitBytes: 1073741824
  strategy:
    steps:
    - setWeight: 5
    - pause: {duration: 1s}
    - setWeight: 50
    - pause: {duration: %s}
  undoWindow: 2s
  analysis:
    interval: 300ms
    failureLimit: 1
    metrics:
    - name: request-success-rate
      thresholdRange: {min: 99}
    - name: cpu-usage
      thresholdRange: {max: 400}
    - name: memory-usage
      thresholdRange: {max: 90}
`, exe, appEnv, lastPause))
}

// deployProcess deploys v2 as processes.
func deployProcess(t *testing.T, d *Daemon, p *v1alpha1.ProcessSpec) {
	t.Helper()
	if _, err := d.Submit(context.Background(), "web", rollout.Command{Kind: rollout.CommandDeploy, Actor: "test",
		Canary: &v1alpha1.VersionRef{Version: "v2", Process: p}}); err != nil {
		t.Fatal(err)
	}
}

// waitServing waits until the proxy answers 200 from version.
func waitServing(t *testing.T, addr, version string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && resp.Header.Get("X-Pipit-Version") == version {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the proxy does not serve %s", version)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pids lists the running replicas' pids of a version.
func pids(p *target.Process, version string) []int {
	var out []int
	for _, r := range p.Replicas(version) {
		if r.PID != 0 {
			out = append(out, r.PID)
		}
	}
	slices.Sort(out)
	return out
}

// alive reports whether pid runs: it exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i >= 0 && len(b) > i+2 && b[i+2] != 'Z' && b[i+2] != 'X'
}

func TestProcessRolloutPromotedUnderLoadThenOldStableDrained(t *testing.T) {
	d, c := startDaemon(t, t.TempDir(), processRolloutYAML(t, "1s"))
	addr, _ := d.ProxyAddr("web")
	p := d.rollouts["web"].process
	waitServing(t, addr, "v1")
	v1 := pids(p, "v1")
	if len(v1) != 2 {
		t.Fatalf("v1 runs as %v, want two replicas", v1)
	}

	stopLoad := startLoad(t, addr, 100)
	deployProcess(t, d, appProcess(t, 2))
	st := waitFor(t, c, 40*time.Second, "Succeeded", phaseIs(v1alpha1.PhaseSucceeded))
	promoted := time.Now()
	// The old stable stays warm for the undo window (2s, plus a margin).
	if warm := pids(p, "v1"); !slices.Equal(warm, v1) {
		t.Errorf("v1 runs as %v right after the promotion, want %v kept warm", warm, v1)
	}
	load := stopLoad()

	if st.Stable.Version != "v2" || st.Stable.Process == nil || st.Canary != nil {
		t.Errorf("after promotion stable %+v canary %+v", st.Stable, st.Canary)
	}
	// Starting the canary, the weights, the promotion and the switch of
	// the stable role may fail no request.
	checkAllAnswered(t, load)
	if seen := versionsServed(t, addr, 40); seen["v2"] != 40 {
		t.Errorf("after promotion the proxy served %v, want only v2", seen)
	}
	if v2 := pids(p, "v2"); len(v2) != 2 {
		t.Errorf("v2 runs as %v, want two replicas", v2)
	}
	// The usage metrics were measured on both versions.
	for _, want := range []string{"cpu-usage", "memory-usage"} {
		i := slices.IndexFunc(st.Analysis.LastResults, func(r v1alpha1.MetricResult) bool { return r.Name == want })
		if i < 0 || st.Analysis.LastResults[i].Canary == nil || st.Analysis.LastResults[i].Stable == nil {
			t.Errorf("%s not measured for both versions: %+v", want, st.Analysis.LastResults)
		}
	}

	// Then it is drained.
	deadline := time.Now().Add(20 * time.Second)
	for len(p.Replicas("v1")) > 0 || alive(v1[0]) || alive(v1[1]) {
		if time.Now().After(deadline) {
			t.Fatalf("v1 (%v) still runs %s after the promotion", v1, time.Since(promoted))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if took := time.Since(promoted); took < 2*time.Second {
		t.Errorf("v1 drained %s after the promotion, inside the undo window", took)
	}
}

// TestFirstRequestWaitsForTheStableProcesses: a daemon that has just
// started (or restarted) its processes holds the first requests until a
// stable replica is ready, instead of answering 503.
func TestFirstRequestWaitsForTheStableProcesses(t *testing.T) {
	d, _ := startDaemon(t, t.TempDir(), processRolloutYAML(t, "1h"))
	addr, _ := d.ProxyAddr("web")
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Pipit-Version") != "v1" {
		t.Errorf("the first request got %d from %q, want 200 from v1", resp.StatusCode, resp.Header.Get("X-Pipit-Version"))
	}
}

func TestCrashingProcessCanaryRolledBackWithTheCrashLoop(t *testing.T) {
	d, c := startDaemon(t, t.TempDir(), processRolloutYAML(t, "1h"))
	addr, _ := d.ProxyAddr("web")
	waitServing(t, addr, "v1")
	// An unknown flag: the process exits at once, every time.
	deployProcess(t, d, appProcess(t, 1, "-no-such-flag"))
	st := waitFor(t, c, 30*time.Second, "RolledBack", phaseIs(v1alpha1.PhaseRolledBack))
	if st.Rollback == nil || !strings.Contains(st.Rollback.Reason, "canary v2 is down: crash loop: exited 3 times") {
		t.Errorf("rollback %+v, want the crash loop named", st.Rollback)
	}
	events, _ := c.Events(context.Background(), "web", 0)
	for _, e := range events {
		if e.Reason == "WeightChanged" {
			t.Errorf("the crashing canary received traffic: %s", e.Message)
		}
	}
	if seen := versionsServed(t, addr, 40); seen["v1"] != 40 {
		t.Errorf("after the rollback the proxy served %v", seen)
	}
	p := d.rollouts["web"].process
	deadline := time.Now().Add(10 * time.Second)
	for len(p.Replicas("v2")) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the rolled-back canary still runs: %+v", p.Replicas("v2"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestUndoInsideTheWindowRestoresTheWarmStableAtOnce(t *testing.T) {
	doc := strings.Replace(string(processRolloutYAML(t, "1s")), "undoWindow: 2s", "undoWindow: 1m", 1)
	d, c := startDaemon(t, t.TempDir(), []byte(doc))
	addr, _ := d.ProxyAddr("web")
	p := d.rollouts["web"].process
	waitServing(t, addr, "v1")
	v1 := pids(p, "v1")
	// Some traffic, so that the checks have data and let it promote.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go loadgen.Run(ctx, loadgen.Config{URL: "http://" + addr + "/", Rate: 50, Duration: 30 * time.Second})
	deployProcess(t, d, appProcess(t, 1))
	waitFor(t, c, 30*time.Second, "Succeeded", phaseIs(v1alpha1.PhaseSucceeded))
	cancel()
	waitServing(t, addr, "v2")
	v2 := pids(p, "v2")

	v, err := c.Submit(context.Background(), "web", rollout.Command{Kind: rollout.CommandUndo, Actor: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	if v.Status.Phase != v1alpha1.PhaseRolledBack || v.Status.Stable.Version != "v1" {
		t.Fatalf("after undo: %s, stable %+v", v.Status.Phase, v.Status.Stable)
	}
	// Back on v1 at once, served by the very processes kept warm: the
	// undo started nothing.
	if seen := versionsServed(t, addr, 40); seen["v1"] != 40 {
		t.Errorf("right after the undo the proxy served %v", seen)
	}
	if got := pids(p, "v1"); !slices.Equal(got, v1) {
		t.Errorf("v1 runs as %v after the undo, want the warm %v", got, v1)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(p.Replicas("v2")) > 0 || alive(v2[0]) {
		if time.Now().After(deadline) {
			t.Fatalf("the undone v2 (%v) still runs", v2)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDeployRefusesACanaryOfTheOtherKind(t *testing.T) {
	d, _ := startDaemon(t, t.TempDir(), processRolloutYAML(t, "1s"))
	_, err := d.Submit(context.Background(), "web", rollout.Command{Kind: rollout.CommandDeploy,
		Canary: &v1alpha1.VersionRef{Version: "v2", URL: "http://127.0.0.1:9"}})
	if err == nil || !strings.Contains(err.Error(), "run as processes") {
		t.Errorf("a URL canary for a process rollout: %v", err)
	}
	noLimit := appProcess(t, 1)
	noLimit.MemoryLimitBytes = nil
	_, err = d.Submit(context.Background(), "web", rollout.Command{Kind: rollout.CommandDeploy,
		Canary: &v1alpha1.VersionRef{Version: "v2", Process: noLimit}})
	if err == nil || !strings.Contains(err.Error(), "states no memoryLimitBytes") {
		t.Errorf("a canary without the memory limit memory-usage needs: %v", err)
	}
}
