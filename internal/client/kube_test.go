package client

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/controlapi"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/testenv/fakeclock"
	"github.com/pipit-dev/pipit/internal/testenv/kubefixture"
)

const testNamespace = "team"

// kubeRollout is a Rollout of the Kubernetes runtime with two steps.
func kubeRollout(name string, phase v1alpha1.Phase) *v1alpha1.Rollout {
	w := v1alpha1.PercentOf(10)
	return &v1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNamespace},
		Spec: v1alpha1.RolloutSpec{
			TargetRef: &v1alpha1.TargetRef{Name: name},
			Strategy:  v1alpha1.Strategy{Steps: []v1alpha1.Step{{SetWeight: &w}, {Pause: &v1alpha1.PauseStep{}}}},
		},
		Status: v1alpha1.RolloutStatus{
			Phase:  phase,
			Stable: &v1alpha1.VersionRef{Version: "nginx:1.0", Template: "aaa"},
			Canary: &v1alpha1.VersionRef{Version: "nginx:1.1", Template: "bbb"},
		},
	}
}

// fakeKube is a Kube over controller-runtime's fake client holding objs,
// with the status subresources the CRDs declare, as the user alice.
func fakeKube(t *testing.T, funcs *interceptor.Funcs, objs ...ctrlclient.Object) (*Kube, ctrlclient.Client) {
	t.Helper()
	s, err := kubeScheme()
	if err != nil {
		t.Fatal(err)
	}
	b := fake.NewClientBuilder().WithScheme(s).WithStatusSubresource(&v1alpha1.Rollout{}, &v1alpha1.RolloutCommand{}).WithObjects(objs...)
	if funcs != nil {
		b = b.WithInterceptorFuncs(*funcs)
	}
	c := b.Build()
	// The fake client has no authenticator to review: the user is set.
	return &Kube{c: c, namespace: testNamespace, server: "https://fake", clock: rollout.SystemClock{}, log: slog.New(slog.DiscardHandler),
		user: "alice"}, c
}

func TestKubeRolloutsSortedAndRendered(t *testing.T) {
	broken := kubeRollout("api", v1alpha1.PhaseProgressing)
	broken.Spec.Strategy.Steps = []v1alpha1.Step{{}} // no kind: the spec does not resolve
	k, _ := fakeKube(t, nil, kubeRollout("web", v1alpha1.PhasePaused), broken,
		&v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "elsewhere", Namespace: "other"}})

	views, err := k.Rollouts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(views) != 2 || views[0].Name != "api" || views[1].Name != "web" {
		t.Fatalf("views %+v, want api and web of namespace %s, in that order", views, testNamespace)
	}
	if views[0].Status.Phase != v1alpha1.PhaseProgressing || views[0].Steps != nil {
		t.Errorf("unresolvable rollout: phase %q steps %q, want its status and no steps", views[0].Status.Phase, views[0].Steps)
	}
	web := views[1]
	if want := []string{"setWeight 10%", "pause until promoted"}; strings.Join(web.Steps, "|") != strings.Join(want, "|") {
		t.Errorf("steps %q, want %q", web.Steps, want)
	}
	if web.Decision != v1alpha1.DecisionAutomatic || web.Status.Phase != v1alpha1.PhasePaused || web.Status.Canary.Version != "nginx:1.1" {
		t.Errorf("view %+v: want the automatic decision and the stored status", web)
	}
}

func TestKubeRolloutsEmptyNamespace(t *testing.T) {
	k, _ := fakeKube(t, nil)
	views, err := k.Rollouts(context.Background())
	if err != nil || views == nil || len(views) != 0 {
		t.Fatalf("Rollouts = %v, %v; want an empty, non-nil list", views, err)
	}
}

func TestKubeRolloutNotFound(t *testing.T) {
	k, _ := fakeKube(t, nil, kubeRollout("web", v1alpha1.PhasePaused))
	for _, name := range []string{"nope", "", "Not/A Name"} {
		_, err := k.Rollout(context.Background(), name)
		if !errors.Is(err, controlapi.ErrNotFound) || !strings.Contains(err.Error(), "namespace "+testNamespace) {
			t.Errorf("Rollout(%q) error %v, want ErrNotFound naming the namespace", name, err)
		}
	}
	if v, err := k.Rollout(context.Background(), "web"); err != nil || v.Name != "web" {
		t.Errorf("Rollout(web) = %v, %v", v.Name, err)
	}
}

func TestKubeEvents(t *testing.T) {
	r := kubeRollout("web", v1alpha1.PhaseProgressing)
	for _, reason := range []string{"Started", "WeightChanged", "Paused"} {
		r.Status.History = append(r.Status.History, v1alpha1.Event{Reason: reason, Type: v1alpha1.EventNormal})
	}
	k, _ := fakeKube(t, nil, r)
	for _, tc := range []struct {
		limit int
		want  string
	}{{0, "Started WeightChanged Paused"}, {-1, "Started WeightChanged Paused"}, {2, "WeightChanged Paused"}, {5, "Started WeightChanged Paused"}} {
		evs, err := k.Events(context.Background(), "web", tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range evs {
			got = append(got, e.Reason)
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("limit %d: events %v, want %s", tc.limit, got, tc.want)
		}
	}
	if _, err := k.Events(context.Background(), "nope", 0); !errors.Is(err, controlapi.ErrNotFound) {
		t.Errorf("Events(nope) error %v, want ErrNotFound", err)
	}
}

// TestKubeSamples: the samples are the controller's recent checks in the
// Rollout's status, one per metric a check, filtered by metric and time.
func TestKubeSamples(t *testing.T) {
	r := kubeRollout("web", v1alpha1.PhaseProgressing)
	start := time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)
	for i := range 3 {
		canary, stable := float64(i), 1.0
		r.Status.RecentChecks = append(r.Status.RecentChecks, v1alpha1.AnalysisCheck{
			At: metav1.NewMicroTime(start.Add(time.Duration(i) * time.Minute)),
			Results: []v1alpha1.MetricResult{
				{Name: "latency", Canary: &canary, Stable: &stable, Verdict: v1alpha1.VerdictSuccessful},
				{Name: "errors", Verdict: v1alpha1.VerdictNoData},
			}})
	}
	k, _ := fakeKube(t, nil, r)
	ctx := context.Background()
	all, err := k.Samples(ctx, "web", "", time.Time{})
	if err != nil || len(all) != 6 || all[0].Name != "latency" || all[1].Name != "errors" || !all[5].At.Equal(start.Add(2*time.Minute)) {
		t.Fatalf("every sample = %+v, %v; want both metrics of the 3 checks, oldest first", all, err)
	}
	got, err := k.Samples(ctx, "web", "latency", start.Add(time.Minute))
	if err != nil || len(got) != 2 || *got[0].Canary != 1 || *got[1].Canary != 2 || !got[0].At.Equal(start.Add(time.Minute)) {
		t.Fatalf("latency since the second check = %+v, %v; want its values 1 and 2", got, err)
	}
	if _, err := k.Samples(ctx, "nope", "", time.Time{}); !errors.Is(err, controlapi.ErrNotFound) {
		t.Errorf("Samples of an unknown rollout: err = %v, want ErrNotFound", err)
	}
}

func TestKubeSubmitRefusals(t *testing.T) {
	k, c := fakeKube(t, nil, kubeRollout("web", v1alpha1.PhaseProgressing))
	for _, tc := range []struct {
		cmd  rollout.Command
		want string
	}{
		{rollout.Command{Kind: rollout.CommandDeploy, Canary: &v1alpha1.VersionRef{Version: "v3"}}, "kubectl set image deployment/web"},
		{rollout.Command{Kind: rollout.CommandResume}, "cannot resume a rollout that is Progressing"},
		{rollout.Command{Kind: rollout.CommandApprove}, "cannot approve a rollout that is Progressing"},
	} {
		start := time.Now()
		_, err := k.Submit(context.Background(), "web", tc.cmd)
		var refused *controlapi.RefusedError
		if !errors.As(err, &refused) || !strings.Contains(refused.Reason, tc.want) {
			t.Errorf("%s: error %v, want a refusal saying %q", tc.cmd.Kind, err, tc.want)
		}
		if d := time.Since(start); d > answerPoll {
			t.Errorf("%s: refused after %v, want at once", tc.cmd.Kind, d)
		}
	}
	if cmds := listCommands(t, c); len(cmds) != 0 {
		t.Errorf("a refused command was created: %+v", cmds)
	}
	if _, err := k.Submit(context.Background(), "nope", rollout.Command{Kind: rollout.CommandPause}); !errors.Is(err, controlapi.ErrNotFound) {
		t.Errorf("Submit to a missing rollout: %v, want ErrNotFound", err)
	}
}

func listCommands(t *testing.T, c ctrlclient.Client) []v1alpha1.RolloutCommand {
	t.Helper()
	var list v1alpha1.RolloutCommandList
	if err := c.List(context.Background(), &list, ctrlclient.InNamespace(testNamespace)); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// TestKubeSubmitAnswered: a command is a RolloutCommand owned by the
// Rollout, in the name of the user the API server knows (not the actor
// the caller claims); the controller's answer in its status comes back.
func TestKubeSubmitAnswered(t *testing.T) {
	k, c := fakeKube(t, nil, kubeRollout("web", v1alpha1.PhaseProgressing))
	ctl := &kubefixture.FakeController{Client: c, Key: ctrlclient.ObjectKey{Namespace: testNamespace, Name: "web"},
		Decide: func(st *v1alpha1.RolloutStatus, cmd *v1alpha1.RolloutCommand) string {
			if cmd.Spec.Verb == v1alpha1.CommandVerb(rollout.CommandPause) {
				st.Phase, st.Message = v1alpha1.PhasePaused, "paused by "+cmd.Spec.RequestedBy
				return ""
			}
			return "the engine says no"
		}}
	ctl.Run(t)

	v, err := k.Submit(context.Background(), "web", rollout.Command{Kind: rollout.CommandPause, Actor: "ana", Reason: "db migration"})
	if err != nil {
		t.Fatal(err)
	}
	if v.Name != "web" || v.Status.Phase != v1alpha1.PhasePaused || v.Status.Message != "paused by alice" || len(v.Steps) != 2 {
		t.Errorf("view after pause: %+v, want the rollout as the controller left it", v)
	}
	cmds := ctl.Commands()
	if len(cmds) != 1 || cmds[0].Spec != (v1alpha1.RolloutCommandSpec{Rollout: "web", Verb: "pause", Reason: "db migration", RequestedBy: "alice"}) {
		t.Fatalf("commands seen by the controller: %+v", cmds)
	}
	if owners := cmds[0].OwnerReferences; len(owners) != 1 || owners[0].Kind != v1alpha1.KindRollout || owners[0].Name != "web" {
		t.Errorf("owners %+v, want the Rollout", owners)
	}

	_, err = k.Submit(context.Background(), "web", rollout.Command{Kind: rollout.CommandAbort})
	var refused *controlapi.RefusedError
	if !errors.As(err, &refused) || refused.Reason != "the engine says no" {
		t.Errorf("abort refused by the controller: %v, want its reason", err)
	}
	if cmds := ctl.Commands(); len(cmds) != 2 || cmds[1].Name == cmds[0].Name {
		t.Errorf("commands %+v, want two with distinct names", cmds)
	}
}

// TestKubeSubmitAnsweredWhileTakenBack: the controller answers between
// the client's last look and its deletion: the deletion conflicts, and the
// answer is returned instead of a timeout.
func TestKubeSubmitAnsweredWhileTakenBack(t *testing.T) {
	var deletes int
	funcs := &interceptor.Funcs{
		Delete: func(ctx context.Context, c ctrlclient.WithWatch, obj ctrlclient.Object, opts ...ctrlclient.DeleteOption) error {
			if deletes++; deletes == 1 {
				cmd := &v1alpha1.RolloutCommand{}
				if err := c.Get(ctx, ctrlclient.ObjectKeyFromObject(obj), cmd); err != nil {
					return err
				}
				cmd.Status = v1alpha1.RolloutCommandStatus{Consumed: true, Result: v1alpha1.CommandRefused, Message: "too late"}
				if err := c.Status().Update(ctx, cmd); err != nil {
					return err
				}
			}
			return c.Delete(ctx, obj, opts...)
		},
	}
	k, c := fakeKube(t, funcs, kubeRollout("web", v1alpha1.PhaseProgressing))
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := k.Submit(ctx, "web", rollout.Command{Kind: rollout.CommandPause})
	var refused *controlapi.RefusedError
	if !errors.As(err, &refused) || refused.Reason != "too late" {
		t.Fatalf("error %v, want the answer written during the deletion", err)
	}
	if cmds := listCommands(t, c); deletes != 1 || len(cmds) != 1 {
		t.Errorf("%d deletions, %d commands left; want one failed deletion and the answered command kept", deletes, len(cmds))
	}
}

// TestKubeSubmitNoController: nobody answers within the answer timeout,
// counted on the client's clock; the command is deleted, another
// client's is left alone.
func TestKubeSubmitNoController(t *testing.T) {
	other := &v1alpha1.RolloutCommand{ObjectMeta: metav1.ObjectMeta{Name: "someone-else", Namespace: testNamespace},
		Spec: v1alpha1.RolloutCommandSpec{Rollout: "web", Verb: "promote", RequestedBy: "bob"}}
	k, c := fakeKube(t, nil, kubeRollout("web", v1alpha1.PhaseProgressing), other)
	clock := fakeclock.New(time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC))
	k.clock = clock
	errc := make(chan error, 1)
	go func() {
		_, err := k.Submit(context.Background(), "web", rollout.Command{Kind: rollout.CommandAbort})
		errc <- err
	}()
	if !clock.WaitForTimers(2, 10*time.Second) {
		t.Fatal("the client does not wait for the answer")
	}
	if n := len(listCommands(t, c)); n != 2 {
		t.Errorf("%d commands while waiting, want the other client's and ours", n)
	}
	clock.Advance(answerTimeout)
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), "the controller did not answer within 60s") ||
			!strings.Contains(err.Error(), "is pipit controller running?") || !strings.Contains(err.Error(), "abort command was taken back") {
			t.Fatalf("error %v, want the controller's silence explained", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still waiting after the answer timeout")
	}
	if cmds := listCommands(t, c); len(cmds) != 1 || cmds[0].Name != "someone-else" {
		t.Errorf("commands after giving up: %+v, want only the other client's", cmds)
	}
}

func TestSeconds(t *testing.T) {
	for d, want := range map[time.Duration]string{
		60*time.Second + 3*time.Millisecond:       "60s",
		90 * time.Second:                          "90s",
		700*time.Millisecond + 2*time.Millisecond: "700ms",
		1470 * time.Millisecond:                   "1.5s",
	} {
		if got := seconds(d); got != want {
			t.Errorf("seconds(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestNewKubeNamespace(t *testing.T) {
	path := kubefixture.Kubeconfig(t, "https://127.0.0.1:6443", testNamespace)
	for _, tc := range []struct {
		name string
		opts KubeOptions
		env  string
		want string
	}{
		{"the current context's namespace", KubeOptions{Kubeconfig: path}, "", testNamespace},
		{"--namespace wins", KubeOptions{Kubeconfig: path, Namespace: "ops"}, "", "ops"},
		{"a context without one", KubeOptions{Kubeconfig: path, Context: "bare"}, "", "default"},
		{"KUBECONFIG", KubeOptions{}, path, testNamespace},
		{"KUBECONFIG with --context", KubeOptions{Context: "bare"}, path, "default"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("KUBECONFIG", tc.env)
			k, err := NewKube(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if k.namespace != tc.want || k.server != "https://127.0.0.1:6443" {
				t.Errorf("namespace %q server %q, want %q on the kubeconfig's server", k.namespace, k.server, tc.want)
			}
		})
	}
}

func TestNewKubeBadOptions(t *testing.T) {
	path := kubefixture.Kubeconfig(t, "https://127.0.0.1:6443", testNamespace)
	for _, tc := range []struct {
		opts KubeOptions
		want string
	}{
		{KubeOptions{Kubeconfig: path, Namespace: "Not_A_Label"}, `namespace "Not_A_Label"`},
		{KubeOptions{Kubeconfig: path, Context: "nope"}, `context "nope" does not exist`},
		{KubeOptions{Kubeconfig: filepath.Join(t.TempDir(), "missing")}, "no such file"},
	} {
		if _, err := NewKube(tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewKube(%+v) error %v, want %q", tc.opts, err, tc.want)
		}
	}
	// A set KUBECONFIG replaces ~/.kube/config; this one holds nothing.
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", empty)
	if _, err := NewKube(KubeOptions{}); err == nil || !strings.Contains(err.Error(), "no kubeconfig found") {
		t.Errorf("NewKube without any kubeconfig: %v, want a clear error", err)
	}
}

func TestKubeUnreachable(t *testing.T) {
	server := kubefixture.UnreachableServer(t)
	k, err := NewKube(KubeOptions{Kubeconfig: kubefixture.Kubeconfig(t, server, testNamespace)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = k.Rollouts(context.Background())
	if err == nil || !strings.Contains(err.Error(), "cannot reach the Kubernetes API server at "+server) {
		t.Errorf("error %v, want one saying the API server is out of reach", err)
	}
	_, err = k.Submit(context.Background(), "web", rollout.Command{Kind: rollout.CommandPause})
	if err == nil || !strings.Contains(err.Error(), "cannot reach") || errors.Is(err, controlapi.ErrNotFound) {
		t.Errorf("Submit error %v, want one saying the API server is out of reach", err)
	}
}
