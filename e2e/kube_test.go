package e2e

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/utils/ptr"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/runtime/kube"
	"github.com/pipit-dev/pipit/internal/testenv/kubefixture"
)

// kubeEnv is one Kubernetes test: the shared cluster with pipit's CRD, a
// namespace of its own and a client.
type kubeEnv struct {
	*kubefixture.Env
}

// newKubeEnv starts a test with the user's Deployment web, replicas of v1,
// and the Rollout web of it with spec.
func newKubeEnv(t *testing.T, replicas int32, spec string) *kubeEnv {
	t.Helper()
	e := &kubeEnv{kubefixture.New(t)}
	e.CreateWebRollout(replicas, spec)
	return e
}

// controllerProc is a `pipit controller` process.
type controllerProc struct {
	t       *testing.T
	cmd     *exec.Cmd
	metrics string
	mu      sync.Mutex
	logs    bytes.Buffer
	done    chan struct{}
}

// startController runs the real binary against the test's namespace,
// with more flags if given. With leaderElect, it competes for a Lease
// with short timings.
func (e *kubeEnv) startController(leaderElect bool, flags ...string) *controllerProc {
	e.T.Helper()
	metrics := freePort(e.T)
	args := []string{"controller", "--kubeconfig", e.Cluster.Kubeconfig, "--namespace", e.Namespace,
		"--metrics-bind-address", metrics, "--health-probe-bind-address", "", "--log-level", "debug"}
	args = append(args, flags...)
	if leaderElect {
		args = append(args, "--leader-elect", "--leader-election-namespace", e.Namespace,
			"--leader-election-lease-duration", "4s", "--leader-election-renew-deadline", "3s",
			"--leader-election-retry-period", "500ms")
	}
	p := &controllerProc{t: e.T, cmd: exec.Command(pipitBin, args...), metrics: metrics, done: make(chan struct{})}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		e.T.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		e.T.Fatal(err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.logs.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
		_ = p.cmd.Wait()
	}()
	e.T.Cleanup(func() {
		p.kill9()
		if e.T.Failed() {
			e.T.Logf("controller %d logs:\n%s", p.cmd.Process.Pid, lastLines(p.log(), 60))
		}
	})
	return p
}

// kill9 kills the process with SIGKILL: no clean shutdown, no lease
// released.
func (p *controllerProc) kill9() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

func (p *controllerProc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// reconciles is how many reconciles the process' controller ran, read
// from its /metrics; a replica that is not the leader runs none.
func (p *controllerProc) reconciles() (int, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + p.metrics + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	total := 0
	re := regexp.MustCompile(`(?m)^controller_runtime_reconcile_total\{controller="rollout",result="[a-z_]+"\} (\d+)`)
	for _, m := range re.FindAllStringSubmatch(string(body), -1) {
		n, _ := strconv.Atoi(m[1])
		total += n
	}
	return total, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// kubectl runs a CLI verb against the test's namespace with --kube.
func (e *kubeEnv) kubectlVerb(args ...string) result {
	e.T.Helper()
	return pipit(e.T, time.Minute, append(args, "--kube", "--kubeconfig", e.Cluster.Kubeconfig, "-n", e.Namespace)...)
}

// manualSpec stops at every kind of gate: an approval, an indefinite
// pause and a long one.
const manualSpec = `
  strategy:
    steps:
      - setWeight: 20
      - approval: {message: "QA must sign off"}
      - setWeight: 50
      - pause: {}
      - setWeight: 80
      - pause: {duration: 1h}
`

// TestKubeOperatorVerbs drives a rollout through its gates with the CLI's
// verbs against the cluster: approve an approval step, promote past an
// indefinite pause, set the weight by hand, abort; status and history read
// the same rollout.
func TestKubeOperatorVerbs(t *testing.T) {
	t.Parallel()
	e := newKubeEnv(t, 2, manualSpec)
	e.startController(false)
	e.WaitInstalled("web")

	if res := e.kubectlVerb("approve", "web"); res.code != 1 || !strings.Contains(res.stderr, "refused") {
		t.Errorf("approve with nothing to approve: exit %d, %s; want exit 1, refused", res.code, res.stderr)
	}
	e.SetImage("web", "registry.example/web:v2")
	e.WaitRollout("web", "the approval gate", func(r *v1alpha1.Rollout) bool {
		return r.Status.Phase == v1alpha1.PhaseAwaitingDecision && r.Status.Gate != nil && r.Status.Gate.Kind == v1alpha1.GateApproval
	})
	if res := e.kubectlVerb("status", "web"); res.code != 0 || !strings.Contains(res.stdout, "AwaitingDecision") {
		t.Fatalf("pipit status --kube: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if res := e.kubectlVerb("approve", "web", "--reason", "QA signed off"); res.code != 0 {
		t.Fatalf("pipit approve --kube: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	e.WaitRollout("web", "the indefinite pause at 50%", func(r *v1alpha1.Rollout) bool {
		return r.Status.CurrentStep == 3 && r.Status.CanaryWeight == v1alpha1.PercentOf(50)
	})
	if res := e.kubectlVerb("promote", "web"); res.code != 0 {
		t.Fatalf("pipit promote --kube: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	e.WaitRollout("web", "the long pause at 80%", func(r *v1alpha1.Rollout) bool {
		return r.Status.CurrentStep == 5 && r.Status.CanaryWeight == v1alpha1.PercentOf(80)
	})
	if res := e.kubectlVerb("set-weight", "web", "30", "--reason", "fewer users while we look"); res.code != 0 {
		t.Fatalf("pipit set-weight --kube: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	e.WaitRollout("web", "the operator's 30%", func(r *v1alpha1.Rollout) bool {
		return r.Status.CurrentStep == 5 && r.Status.CanaryWeight == v1alpha1.PercentOf(30)
	})
	if res := e.kubectlVerb("abort", "web", "--reason", "saw errors"); res.code != 0 {
		t.Fatalf("pipit abort --kube: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	r := e.WaitRollout("web", "aborted", func(r *v1alpha1.Rollout) bool { return r.Status.Phase == v1alpha1.PhaseAborted })
	if r.Status.CanaryWeight != 0 {
		t.Errorf("weight %s after abort", r.Status.CanaryWeight)
	}
	res := e.kubectlVerb("history", "web")
	for _, want := range []string{"approved by", "QA signed off", "Weight set to 30%", "fewer users while we look", "saw errors"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("pipit history --kube lacks %q:\n%s%s", want, res.stdout, res.stderr)
		}
	}
	if res := e.kubectlVerb("resume", "nosuch"); res.code == 0 || !strings.Contains(res.stderr, "not found") {
		t.Errorf("a verb on a missing rollout: exit %d, %s", res.code, res.stderr)
	}
}

// TestKubeControllerKill9ResumesAtTheSameStep kills the controller with
// SIGKILL during a pause; a new one resumes at the same step, weight and
// pause start, repeats nothing, and acts on the next command.
func TestKubeControllerKill9ResumesAtTheSameStep(t *testing.T) {
	t.Parallel()
	e := newKubeEnv(t, 2, `
  strategy:
    steps:
      - setWeight: 20
      - pause: {duration: 1s}
      - setWeight: 40
      - pause: {duration: 6s}
      - setWeight: 60
      - pause: {}
`)
	first := e.startController(false)
	e.WaitInstalled("web")
	e.SetImage("web", "registry.example/web:v2")
	before := e.WaitRollout("web", "the 6s pause at 40%", func(r *v1alpha1.Rollout) bool {
		return r.Status.CurrentStep == 3 && r.Status.Phase == v1alpha1.PhaseProgressing
	})
	first.kill9()
	time.Sleep(time.Second)
	if now := e.Rollout("web"); now.Status.CurrentStep != 3 || now.Status.CanaryWeight != v1alpha1.PercentOf(40) {
		t.Fatalf("the status moved while no controller ran: step %d weight %s", now.Status.CurrentStep, now.Status.CanaryWeight)
	}
	e.startController(false)
	after := e.WaitRollout("web", "the indefinite pause at 60%", func(r *v1alpha1.Rollout) bool {
		return r.Status.CurrentStep == 5 && r.Status.Phase == v1alpha1.PhaseAwaitingDecision
	})
	if !after.Status.StartedAt.Equal(before.Status.StartedAt) {
		t.Errorf("the rollout restarted: startedAt %v, was %v", after.Status.StartedAt, before.Status.StartedAt)
	}
	weights := map[v1alpha1.Percent]int{}
	for _, ev := range after.Status.History {
		if ev.Reason == "WeightChanged" {
			weights[ev.Weight]++
		}
	}
	for _, w := range []float64{20, 40, 60} {
		if weights[v1alpha1.PercentOf(w)] != 1 {
			t.Errorf("weight %v%% set %d times, want once:\n%s", w, weights[v1alpha1.PercentOf(w)], kubefixture.History(after))
		}
	}
	if res := e.kubectlVerb("promote", "web"); res.code != 0 {
		t.Fatalf("pipit promote --kube after the restart: exit %d\n%s", res.code, res.stderr)
	}
	e.WaitRollout("web", "promoted", func(r *v1alpha1.Rollout) bool { return r.Status.Phase == v1alpha1.PhaseSucceeded })
}

// TestKubeOnlyTheLeaderActs runs two replicas with leader election: one
// holds the Lease and reconciles, the other runs no reconcile; when the
// leader is killed, the other takes over and finishes the rollout.
func TestKubeOnlyTheLeaderActs(t *testing.T) {
	t.Parallel()
	e := newKubeEnv(t, 1, `
  strategy:
    steps:
      - setWeight: 50
      - pause: {duration: 1s}
`)
	a, b := e.startController(true), e.startController(true)
	e.WaitInstalled("web")

	var lease coordinationv1.Lease
	if err := e.Client.Get(e.Ctx(), e.Key(kube.LeaderElectionID), &lease); err != nil {
		t.Fatalf("no Lease %s: %v", kube.LeaderElectionID, err)
	}
	ra, errA := a.reconciles()
	rb, errB := b.reconciles()
	if errA != nil || errB != nil {
		t.Fatalf("reading /metrics: %v, %v", errA, errB)
	}
	leader, follower := a, b
	if rb > 0 {
		leader, follower = b, a
	}
	if (ra > 0) == (rb > 0) {
		t.Fatalf("reconciles: replica A %d, replica B %d; want exactly one replica acting", ra, rb)
	}
	if holder := ptr.Deref(lease.Spec.HolderIdentity, ""); holder == "" {
		t.Errorf("the Lease names no holder")
	}

	leader.kill9()
	e.SetImage("web", "registry.example/web:v2")
	e.WaitRollout("web", "promoted by the new leader", func(r *v1alpha1.Rollout) bool {
		return r.Status.Phase == v1alpha1.PhaseSucceeded && r.Status.Stable != nil && strings.Contains(r.Status.Stable.Version, "web:v2")
	})
	if n, err := follower.reconciles(); err != nil || n == 0 {
		t.Errorf("the remaining replica ran %d reconciles (%v): it did not take over", n, err)
	}
}

// TestKubeWatchGatesCI is a CI job on Kubernetes: a watch started before
// the new image follows the rollout that image starts and exits 0 once
// it is promoted; a watch on a rollout that is then aborted exits 1.
func TestKubeWatchGatesCI(t *testing.T) {
	t.Parallel()
	e := newKubeEnv(t, 2, `
  strategy:
    steps:
      - setWeight: 50
      - pause: {}
`)
	e.startController(false)
	e.WaitInstalled("web")
	watch := func() <-chan result {
		done := make(chan result, 1)
		go func() { done <- e.kubectlVerb("get", "web", "--watch", "--interval", "200ms", "--timeout", "50s") }()
		return done
	}
	paused := func(r *v1alpha1.Rollout) bool { return r.Status.Phase == v1alpha1.PhaseAwaitingDecision }

	idle := watch()
	time.Sleep(2 * time.Second) // the watch's first look finds nothing in flight
	e.SetImage("web", "registry.example/web:v2")
	e.WaitRollout("web", "the pause at 50%", paused)
	if res := e.kubectlVerb("promote", "web"); res.code != 0 {
		t.Fatalf("pipit promote --kube: exit %d\n%s", res.code, res.stderr)
	}
	if res := <-idle; res.code != 0 || !strings.Contains(res.stderr, "no rollout in flight") || !strings.Contains(res.stdout, "web  Succeeded") {
		t.Fatalf("get --watch --kube on a promotion: exit %d\nstdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
	}

	e.SetImage("web", "registry.example/web:v3")
	e.WaitRollout("web", "the pause at 50%", paused)
	inFlight := watch()
	time.Sleep(2 * time.Second) // the watch's first look finds the rollout in flight
	if res := e.kubectlVerb("abort", "web"); res.code != 0 {
		t.Fatalf("pipit abort --kube: exit %d\n%s", res.code, res.stderr)
	}
	if res := <-inFlight; res.code != 1 || !strings.Contains(res.stderr, "rollout web ended Aborted") {
		t.Fatalf("get --watch --kube on an abort: exit %d\nstdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
	}
}
