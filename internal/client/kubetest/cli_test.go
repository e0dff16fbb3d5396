package kubetest

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/cli"
	"github.com/pipit-dev/pipit/internal/controlapi"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/testenv/kubecluster"
	"github.com/pipit-dev/pipit/internal/testenv/kubefixture"
)

// pipit runs the command line as the binary does and returns its exit
// code, stdout and stderr.
func pipit(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := cli.Execute(ctx, args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// kubeconfigWithTeam copies the cluster's kubeconfig (current context
// pipit-test, namespace default) adding a context "team" whose namespace
// is ns; current names the current context of the copy.
func kubeconfigWithTeam(t *testing.T, c *kubecluster.Cluster, ns, current string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	team := cfg.Contexts[cfg.CurrentContext].DeepCopy()
	team.Namespace = ns
	cfg.Contexts["team"] = team
	cfg.CurrentContext = current
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCLIStatusReachesTheNamespace(t *testing.T) {
	e := progressingWeb(t)
	c, ns := e.Cluster, e.Namespace

	code, out, errOut := pipit(t, "status", "--kube", "--kubeconfig", c.Kubeconfig, "-n", ns, "web")
	if code != cli.ExitOK {
		t.Fatalf("status web: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"Name:", "web", "Progressing", "nginx:1.1", "setWeight 10%", "pause until promoted"} {
		if !strings.Contains(out, want) {
			t.Errorf("status web printed no %q:\n%s", want, out)
		}
	}

	code, out, errOut = pipit(t, "status", "--kube", "--kubeconfig", c.Kubeconfig, "--namespace", ns, "-o", "json")
	var views []struct {
		Name   string                 `json:"name"`
		Status v1alpha1.RolloutStatus `json:"status"`
	}
	if code != cli.ExitOK || json.Unmarshal([]byte(out), &views) != nil || len(views) != 1 || views[0].Name != "web" {
		t.Errorf("status -o json: exit %d, %s%s; want the one rollout", code, out, errOut)
	}

	// Without -n, the kubeconfig context's namespace ("default") is used.
	code, _, errOut = pipit(t, "status", "--kube", "--kubeconfig", c.Kubeconfig, "web")
	if code != cli.ExitFailed || !strings.Contains(errOut, `rollout "web" not found in namespace default`) {
		t.Errorf("status web in the default namespace: exit %d: %s; want not found there", code, errOut)
	}
}

func TestCLIContextAndKUBECONFIG(t *testing.T) {
	e := progressingWeb(t)
	c, ns := e.Cluster, e.Namespace

	// --context picks a context, and its namespace.
	path := kubeconfigWithTeam(t, c, ns, "pipit-test")
	if code, out, errOut := pipit(t, "status", "--kube", "--kubeconfig", path, "--context", "team", "web"); code != cli.ExitOK || !strings.Contains(out, "Progressing") {
		t.Errorf("status --context team web: exit %d: %s%s", code, out, errOut)
	}
	// KUBECONFIG is read when --kubeconfig is not given, its current
	// context giving the namespace.
	t.Setenv("KUBECONFIG", kubeconfigWithTeam(t, c, ns, "team"))
	if code, out, errOut := pipit(t, "get", "--kube", "web"); code != cli.ExitOK || !strings.Contains(out, "web  Progressing") {
		t.Errorf("get web with KUBECONFIG: exit %d: %s%s", code, out, errOut)
	}
	if code, _, errOut := pipit(t, "get", "--kube", "--context", "nope", "web"); code != cli.ExitBadInput || !strings.Contains(errOut, `context "nope" does not exist`) {
		t.Errorf("get --context nope: exit %d: %s; want bad input", code, errOut)
	}
}

func TestCLICommandsThroughTheController(t *testing.T) {
	e := kubefixture.New(t)
	c, ns := e.Cluster, e.Namespace
	st := progressing()
	st.History = []v1alpha1.Event{{Time: metav1.NowMicro(), Type: v1alpha1.EventNormal, Reason: "Started",
		Message: "Rollout of canary nginx:1.1 started", Phase: v1alpha1.PhaseProgressing}}
	createRollout(e, ns, "web", st)
	ctl := &kubefixture.FakeController{Client: e.Client, Key: e.Key("web"), Every: controllerEvery,
		Decide: func(st *v1alpha1.RolloutStatus, cmd *v1alpha1.RolloutCommand) string {
			switch rollout.CommandKind(cmd.Spec.Verb) {
			case rollout.CommandPause:
				st.Phase, st.Message = v1alpha1.PhasePaused, "paused by "+cmd.Spec.RequestedBy
			case rollout.CommandAbort:
				st.Phase, st.Message, st.CanaryWeight = v1alpha1.PhaseAborted, "aborted by "+cmd.Spec.RequestedBy, 0
			default:
				return "not in this test"
			}
			st.History = append(st.History, v1alpha1.Event{Time: metav1.NowMicro(), Type: v1alpha1.EventNormal, Reason: string(cmd.Spec.Verb),
				Message: st.Message + ": " + cmd.Spec.Reason, Phase: st.Phase})
			return ""
		}}
	ctl.Run(t)
	// The actor a client claims is not the one recorded: the API server
	// says who the kubeconfig's user is ("admin").
	t.Setenv("PIPIT_ACTOR", "ci-bot")
	kube := []string{"--kube", "--kubeconfig", c.Kubeconfig, "-n", ns}

	code, out, errOut := pipit(t, append([]string{"pause", "web", "--reason", "db migration"}, kube...)...)
	if code != cli.ExitOK || !strings.Contains(out, "web: Paused") || !strings.Contains(out, "paused by admin") {
		t.Errorf("pause: exit %d: %s%s; want web Paused by admin", code, out, errOut)
	}
	// Refused by the rollout's state before anything is queued.
	code, _, errOut = pipit(t, append([]string{"approve", "web"}, kube...)...)
	if code != cli.ExitFailed || !strings.Contains(errOut, "approve web refused: cannot approve a rollout that is Paused") {
		t.Errorf("approve: exit %d: %s; want a refusal", code, errOut)
	}
	code, _, errOut = pipit(t, append([]string{"deploy", "web", "--canary", "http://10.0.0.7:8080"}, kube...)...)
	if code != cli.ExitFailed || !strings.Contains(errOut, "kubectl set image deployment/web") {
		t.Errorf("deploy: exit %d: %s; want a refusal pointing at kubectl set image", code, errOut)
	}
	code, out, errOut = pipit(t, append([]string{"abort", "web"}, kube...)...)
	if code != cli.ExitOK || !strings.Contains(out, "web: Aborted") {
		t.Errorf("abort: exit %d: %s%s", code, out, errOut)
	}
	if cmds := ctl.Commands(); len(cmds) != 2 || cmds[0].Spec.Verb != "pause" || cmds[0].Spec.RequestedBy != "admin" ||
		cmds[0].Spec.Reason != "db migration" || cmds[1].Spec.Verb != "abort" {
		t.Errorf("the controller saw %+v, want pause then abort by admin", cmds)
	}

	code, out, errOut = pipit(t, append([]string{"history", "web", "--limit", "2"}, kube...)...)
	if code != cli.ExitOK || strings.Contains(out, "started") || !strings.Contains(out, "paused by admin: db migration") ||
		!strings.Contains(out, "aborted by admin") {
		t.Errorf("history --limit 2: exit %d:\n%s%s\nwant the last two events", code, out, errOut)
	}
	// get --watch on a rollout that has ended shows it, then waits for
	// the next one (a CI job's watch may start before its rollout does):
	// with none, --timeout ends it with 124.
	code, out, errOut = pipit(t, append([]string{"get", "web", "--watch", "--interval", "100ms", "--timeout", "2s"}, kube...)...)
	if code != cli.ExitTimeout || !strings.Contains(out, "web  Aborted") || !strings.Contains(out+errOut, "waiting for the next one") {
		t.Errorf("get --watch --timeout 2s: exit %d, want %d: %s%s", code, cli.ExitTimeout, out, errOut)
	}
}

// TestCLIKubeFlagErrors needs no cluster: the flags are checked, and the
// kubeconfig read, before anything is sent.
func TestCLIKubeFlagErrors(t *testing.T) {
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "none"))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"status", "-n", "team"}, "--kubeconfig, --context and --namespace go with --kube"},
		{[]string{"pause", "web", "--context", "x"}, "go with --kube"},
		{[]string{"status", "--kube", "--api", "127.0.0.1:1"}, "do not go with --kube"},
		{[]string{"history", "web", "--kube", "--kubeconfig", filepath.Join(t.TempDir(), "missing")}, "no such file"},
		{[]string{"status", "--kube", "-n", "Team_A"}, `namespace "Team_A"`},
		{[]string{"get", "web", "--kube"}, "no kubeconfig found"},
	} {
		code, _, errOut := pipit(t, tc.args...)
		if code != cli.ExitBadInput || !strings.Contains(errOut, tc.want) {
			t.Errorf("pipit %s: exit %d: %s; want exit 2 saying %q", strings.Join(tc.args, " "), code, errOut, tc.want)
		}
	}
}

// TestCLIUnreachableCluster: a cluster out of reach is a failed operation,
// not bad input, and the message names the server.
func TestCLIUnreachableCluster(t *testing.T) {
	server := kubefixture.UnreachableServer(t)
	path := kubefixture.Kubeconfig(t, server, "team")
	code, _, errOut := pipit(t, "status", "--kube", "--kubeconfig", path)
	if code != cli.ExitFailed || !strings.Contains(errOut, "cannot reach the Kubernetes API server at "+server) {
		t.Errorf("status against %s: exit %d: %s; want exit 1 naming the server", server, code, errOut)
	}
}

// TestCLISamplesOfACluster: pipit samples --kube prints the checks the
// controller keeps in the Rollout's status.
func TestCLISamplesOfACluster(t *testing.T) {
	e := kubefixture.New(t)
	st := progressing()
	st.RecentChecks = recentChecks
	createRollout(e, e.Namespace, "web", st)
	code, out, errOut := pipit(t, "samples", "--kube", "--kubeconfig", e.Cluster.Kubeconfig, "-n", e.Namespace, "web", "--metric", "latency", "-o", "json")
	var samples []controlapi.Sample
	if code != cli.ExitOK || json.Unmarshal([]byte(out), &samples) != nil || len(samples) != 2 ||
		*samples[1].Canary != 300 || samples[1].Verdict != v1alpha1.VerdictFailed {
		t.Errorf("samples web --metric latency: exit %d, %s%s; want its 2 checks, the last at 300, Failed", code, out, errOut)
	}
}
