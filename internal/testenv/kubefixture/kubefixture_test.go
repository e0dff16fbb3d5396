package kubefixture

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// fakeEnv is an Env over controller-runtime's fake client, for what needs
// no real API server.
func fakeEnv(t *testing.T) *Env {
	c := fake.NewClientBuilder().WithScheme(scheme).WithStatusSubresource(&v1alpha1.Rollout{}, &v1alpha1.RolloutCommand{}).Build()
	return &Env{T: t, Namespace: "shop", Client: c}
}

func TestRepoPathFindsTheCRD(t *testing.T) {
	path := RepoPath(t, CRDPath)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), "name: rollouts.pipit.dev") {
		t.Errorf("%s is not the Rollout CRD", path)
	}
}

func TestRolloutYAMLParsesStrictly(t *testing.T) {
	r, err := ParseRollout(RolloutYAML("web", `
  strategy:
    steps:
      - setWeight: 5
`))
	if err != nil {
		t.Fatal(err)
	}
	if r.APIVersion != v1alpha1.APIVersion || r.Kind != v1alpha1.KindRollout || r.Name != "web" ||
		r.Spec.TargetRef == nil || r.Spec.TargetRef.Name != "web" {
		t.Errorf("rollout %+v, want Rollout web of Deployment web", r)
	}
	if steps := r.Spec.Strategy.Steps; len(steps) != 1 || steps[0].SetWeight == nil || *steps[0].SetWeight != v1alpha1.PercentOf(5) {
		t.Errorf("steps %+v, want setWeight 5", steps)
	}
	_, err = ParseRollout(RolloutYAML("web", "  stratgy: {}\n"))
	if err == nil || !strings.Contains(err.Error(), "stratgy") {
		t.Errorf("a misspelt field: %v, want an error naming it", err)
	}
}

func TestHistoryOneEventALine(t *testing.T) {
	at := time.Date(2026, 3, 1, 9, 0, 1, 250e6, time.UTC)
	r := &v1alpha1.Rollout{Status: v1alpha1.RolloutStatus{History: []v1alpha1.Event{
		{Time: metav1.NewMicroTime(at), Reason: "Started", Phase: v1alpha1.PhaseProgressing, Message: "v2"},
		{Time: metav1.NewMicroTime(at), Reason: "WeightChanged", Phase: v1alpha1.PhaseProgressing, Weight: v1alpha1.PercentOf(20), Message: "20%"},
	}}}
	got := History(r)
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "Started Progressing") || !strings.HasSuffix(lines[0], ": v2") ||
		!strings.Contains(lines[1], "WeightChanged Progressing 20%: 20%") {
		t.Errorf("History =\n%s", got)
	}
	if !strings.HasPrefix(lines[0], "  "+at.Format("15:04:05.000")) {
		t.Errorf("History %q does not start with the event's time", lines[0])
	}
}

func TestKubeconfigContexts(t *testing.T) {
	path := Kubeconfig(t, "https://127.0.0.1:6443", "team")
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	main, bare := cfg.Contexts["main"], cfg.Contexts["bare"]
	if cfg.CurrentContext != "main" || main == nil || main.Namespace != "team" || bare == nil || bare.Namespace != "" {
		t.Errorf("contexts %v, current %q; want main (team, current) and bare", cfg.Contexts, cfg.CurrentContext)
	}
	if c := cfg.Clusters[main.Cluster]; c == nil || c.Server != "https://127.0.0.1:6443" {
		t.Errorf("cluster of main: %+v", c)
	}
}

func TestUnreachableServer(t *testing.T) {
	server := UnreachableServer(t)
	addr, ok := strings.CutPrefix(server, "https://")
	if !ok {
		t.Fatalf("server %q is no https URL", server)
	}
	if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		conn.Close()
		t.Errorf("something listens at %s", addr)
	}
}

func TestEnvObjects(t *testing.T) {
	e := fakeEnv(t)
	e.CreateDeployment("web", "registry.example/web:v1", 2)
	d := e.Deployment("web")
	if d.Namespace != "shop" || d.Labels["team"] != "shop" || ptr.Deref(d.Spec.Replicas, 0) != 2 ||
		d.Spec.Selector.MatchLabels["app"] != "web" || d.Spec.Template.Labels["app"] != "web" {
		t.Errorf("the user's Deployment: %+v", d)
	}
	e.SetImage("web", "registry.example/web:v2")
	if img := e.Deployment("web").Spec.Template.Spec.Containers[0].Image; img != "registry.example/web:v2" {
		t.Errorf("image after SetImage: %s", img)
	}
	e.UpdateDeployment("web", func(d *appsv1.Deployment) { d.Spec.Replicas = ptr.To(int32(5)) })
	if n := ptr.Deref(e.Deployment("web").Spec.Replicas, 0); n != 5 {
		t.Errorf("replicas after UpdateDeployment: %d", n)
	}
	if e.Found("nope", &appsv1.Deployment{}) {
		t.Error("Found a Deployment that does not exist")
	}

	created := e.CreateRollout("web", "  strategy: {steps: [{setWeight: 50}]}\n")
	if created.Namespace != "shop" || e.Rollout("web").Spec.TargetRef.Name != "web" {
		t.Errorf("the Rollout created: %+v", created)
	}
}

func TestEnvWaits(t *testing.T) {
	e := fakeEnv(t)
	e.CreateDeployment("web", "registry.example/web:v1", 1)
	e.CreateRollout("web", "  strategy: {steps: [{setWeight: 50}]}\n")
	// Another writer moves the Rollout on while the test waits.
	go func() {
		time.Sleep(300 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
		defer cancel()
		var r v1alpha1.Rollout
		if err := e.Client.Get(ctx, e.Key("web"), &r); err != nil {
			return
		}
		r.Status.Phase, r.Status.Stable = v1alpha1.PhaseSucceeded, &v1alpha1.VersionRef{Version: "v1"}
		_ = e.Client.Status().Update(ctx, &r)
	}()
	if r := e.WaitInstalled("web"); r.Status.Stable == nil || r.Status.Stable.Version != "v1" {
		t.Errorf("WaitInstalled returned a Rollout with stable %+v", r.Status.Stable)
	}
	if r := e.WaitPhase("web", v1alpha1.PhaseSucceeded); r.Status.Phase != v1alpha1.PhaseSucceeded {
		t.Errorf("WaitPhase returned a Rollout in %s", r.Status.Phase)
	}
	d := e.WaitDeployment("web", "one replica", func(d *appsv1.Deployment) bool { return ptr.Deref(d.Spec.Replicas, 0) == 1 })
	if d.Name != "web" {
		t.Errorf("WaitDeployment returned %s", d.Name)
	}
	looks := 0
	e.Eventually("the third look", func(context.Context) error {
		if looks++; looks < 3 {
			return context.DeadlineExceeded
		}
		return nil
	})
	if looks != 3 {
		t.Errorf("Eventually looked %d times, want until the condition held", looks)
	}
}

func TestFakeControllerAnswers(t *testing.T) {
	e := fakeEnv(t)
	e.Create(&v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "web"}})
	ctl := &FakeController{Client: e.Client, Key: e.Key("web"),
		Decide: func(st *v1alpha1.RolloutStatus, cmd *v1alpha1.RolloutCommand) string {
			if cmd.Spec.Verb != "pause" {
				return "no " + string(cmd.Spec.Verb)
			}
			st.Phase = v1alpha1.PhasePaused
			return ""
		}}
	ctl.Run(t)

	ask := func(name, rollout string, verb v1alpha1.CommandVerb) {
		t.Helper()
		e.Create(&v1alpha1.RolloutCommand{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: v1alpha1.RolloutCommandSpec{Rollout: rollout, Verb: verb, RequestedBy: "alice"}})
	}
	ask("c1", "web", "pause")
	ask("c2", "web", "abort")
	ask("other", "api", "pause")
	e.Eventually("two answers", func(context.Context) error {
		if n := len(ctl.Commands()); n != 2 {
			return fmt.Errorf("%d answered", n)
		}
		return nil
	})
	if got := Get(e, "c1", &v1alpha1.RolloutCommand{}).Status; !got.Consumed || got.Result != v1alpha1.CommandApplied || got.ConsumedAt == nil {
		t.Errorf("c1's status %+v, want Applied", got)
	}
	if got := Get(e, "c2", &v1alpha1.RolloutCommand{}).Status; got.Result != v1alpha1.CommandRefused || got.Message != "no abort" {
		t.Errorf("c2's status %+v, want Refused with the reason", got)
	}
	if got := Get(e, "other", &v1alpha1.RolloutCommand{}).Status; got.Consumed {
		t.Errorf("a command to another rollout was answered: %+v", got)
	}
	if phase := e.Rollout("web").Status.Phase; phase != v1alpha1.PhasePaused {
		t.Errorf("phase %s after the pause, want Paused", phase)
	}
}
