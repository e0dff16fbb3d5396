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

	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
// with the status subresource the CRD declares.
func fakeKube(t *testing.T, funcs *interceptor.Funcs, objs ...ctrlclient.Object) (*Kube, ctrlclient.Client) {
	t.Helper()
	s, err := kubeScheme()
	if err != nil {
		t.Fatal(err)
	}
	b := fake.NewClientBuilder().WithScheme(s).WithStatusSubresource(&v1alpha1.Rollout{}).WithObjects(objs...)
	if funcs != nil {
		b = b.WithInterceptorFuncs(*funcs)
	}
	c := b.Build()
	return &Kube{c: c, namespace: testNamespace, server: "https://fake", clock: rollout.SystemClock{}, log: slog.New(slog.DiscardHandler)}, c
}

func getRollout(t *testing.T, c ctrlclient.Client, name string) *v1alpha1.Rollout {
	t.Helper()
	r := &v1alpha1.Rollout{}
	if err := c.Get(context.Background(), ctrlclient.ObjectKey{Namespace: testNamespace, Name: name}, r); err != nil {
		t.Fatal(err)
	}
	return r
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

// TestKubeSamplesNotAvailable: a cluster keeps no samples; asking says so
// and where the last check's results are, without a call to the cluster.
func TestKubeSamplesNotAvailable(t *testing.T) {
	k, _ := fakeKube(t, nil, kubeRollout("web", v1alpha1.PhaseProgressing))
	_, err := k.Samples(context.Background(), "web", "", time.Time{})
	if !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), "not available on Kubernetes") ||
		!strings.Contains(err.Error(), "lastResults") {
		t.Fatalf("err = %v, want ErrUnsupported saying samples are not available on Kubernetes", err)
	}
}

func TestKubeSubmitRefusals(t *testing.T) {
	full := kubeRollout("full", v1alpha1.PhaseProgressing)
	for range maxWaitingCommands {
		full.Status.Commands = append(full.Status.Commands, v1alpha1.CommandRequest{ID: "x", Kind: "pause"})
	}
	k, c := fakeKube(t, nil, kubeRollout("web", v1alpha1.PhaseProgressing), full)
	for _, tc := range []struct {
		name string
		cmd  rollout.Command
		want string
	}{
		{"web", rollout.Command{Kind: rollout.CommandDeploy, Canary: &v1alpha1.VersionRef{Version: "v3"}}, "kubectl set image deployment/web"},
		{"web", rollout.Command{Kind: rollout.CommandResume}, "cannot resume a rollout that is Progressing"},
		{"web", rollout.Command{Kind: rollout.CommandApprove}, "cannot approve a rollout that is Progressing"},
		{"full", rollout.Command{Kind: rollout.CommandPause}, "100 commands already wait for the controller"},
	} {
		start := time.Now()
		_, err := k.Submit(context.Background(), tc.name, tc.cmd)
		var refused *controlapi.RefusedError
		if !errors.As(err, &refused) || !strings.Contains(refused.Reason, tc.want) {
			t.Errorf("%s %s: error %v, want a refusal saying %q", tc.cmd.Kind, tc.name, err, tc.want)
		}
		if d := time.Since(start); d > answerPoll {
			t.Errorf("%s %s: refused after %v, want at once", tc.cmd.Kind, tc.name, d)
		}
	}
	if n := len(getRollout(t, c, "web").Status.Commands); n != 0 {
		t.Errorf("a refused command was queued: %d commands", n)
	}
	if _, err := k.Submit(context.Background(), "nope", rollout.Command{Kind: rollout.CommandPause}); !errors.Is(err, controlapi.ErrNotFound) {
		t.Errorf("Submit to a missing rollout: %v, want ErrNotFound", err)
	}
}

func TestKubeSubmitAnswered(t *testing.T) {
	k, c := fakeKube(t, nil, kubeRollout("web", v1alpha1.PhaseProgressing))
	ctl := &kubefixture.FakeController{Client: c, Key: ctrlclient.ObjectKey{Namespace: testNamespace, Name: "web"},
		Decide: func(st *v1alpha1.RolloutStatus, req v1alpha1.CommandRequest) string {
			if req.Kind == string(rollout.CommandPause) {
				st.Phase, st.Message = v1alpha1.PhasePaused, "paused by "+req.Actor
				return ""
			}
			return "the engine says no"
		}}
	ctl.Run(t)

	v, err := k.Submit(context.Background(), "web", rollout.Command{Kind: rollout.CommandPause, Actor: "ana", Reason: "db migration"})
	if err != nil {
		t.Fatal(err)
	}
	if v.Name != "web" || v.Status.Phase != v1alpha1.PhasePaused || v.Status.Message != "paused by ana" || len(v.Steps) != 2 {
		t.Errorf("view after pause: %+v, want the rollout as the controller left it", v)
	}
	reqs := ctl.Requests()
	if len(reqs) != 1 || reqs[0].Kind != "pause" || reqs[0].Actor != "ana" || reqs[0].Reason != "db migration" || len(reqs[0].ID) < 16 {
		t.Errorf("requests seen by the controller: %+v", reqs)
	}

	// The controller refuses the next one, answering in a later write: its
	// reason comes back.
	ctl.SetAnswerDelay(3 * answerPoll)
	_, err = k.Submit(context.Background(), "web", rollout.Command{Kind: rollout.CommandAbort})
	var refused *controlapi.RefusedError
	if !errors.As(err, &refused) || refused.Reason != "the engine says no" {
		t.Errorf("abort refused by the controller: %v, want its reason", err)
	}
	if reqs := ctl.Requests(); len(reqs) != 2 || reqs[1].ID == reqs[0].ID {
		t.Errorf("requests %+v, want two with distinct IDs", reqs)
	}
}

// TestKubeSubmitAnswerDropped: once the controller took a command, the
// client waits answerGrace for its answer and gives up at the first look
// after that, on its clock: still waiting at answerGrace, gone one look
// later.
func TestKubeSubmitAnswerDropped(t *testing.T) {
	k, c := fakeKube(t, nil, kubeRollout("web", v1alpha1.PhaseProgressing))
	clock := fakeclock.New(time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC))
	k.clock = clock
	ctl := &kubefixture.FakeController{Client: c, Key: ctrlclient.ObjectKey{Namespace: testNamespace, Name: "web"}, DropResults: true,
		Decide: func(*v1alpha1.RolloutStatus, v1alpha1.CommandRequest) string { return "" }}
	errc := make(chan error, 1)
	go func() {
		_, err := k.Submit(context.Background(), "web", rollout.Command{Kind: rollout.CommandPause})
		errc <- err
	}()
	// look moves the clock to the next look and waits until it is done:
	// the client waits on its answer timeout and its next look again.
	look := func() {
		t.Helper()
		clock.Advance(answerPoll)
		if !clock.WaitForTimers(2, 10*time.Second) {
			t.Fatalf("the client waits on %d timers after a look, want 2", clock.Timers())
		}
	}
	if !clock.WaitForTimers(2, 10*time.Second) {
		t.Fatal("the client does not wait for the answer")
	}
	ctl.Once(context.Background()) // takes the command, never answers
	look()                         // sees it taken
	for range answerGrace / answerPoll {
		look()
	}
	select {
	case err := <-errc:
		t.Fatalf("gave up %v after the command was taken, want after more than %v: %v", answerGrace, answerGrace, err)
	default:
	}
	clock.Advance(answerPoll)
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), "did not appear in status.commandResults") {
			t.Errorf("error %v, want one saying the answer is missing", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("still waiting %v after the command was taken", answerGrace+answerPoll)
	}
}

func TestKubeSubmitRetriesOnConflict(t *testing.T) {
	var patches, conflicts int
	funcs := &interceptor.Funcs{
		SubResourcePatch: func(ctx context.Context, c ctrlclient.Client, sub string, obj ctrlclient.Object, patch ctrlclient.Patch, opts ...ctrlclient.SubResourcePatchOption) error {
			patches++
			if patches == 1 {
				// The controller writes the status between the CLI's read
				// and its write.
				r := &v1alpha1.Rollout{}
				if err := c.Get(ctx, ctrlclient.ObjectKeyFromObject(obj), r); err != nil {
					return err
				}
				r.Status.Message = "moved on"
				if err := c.Status().Update(ctx, r); err != nil {
					return err
				}
			}
			err := c.SubResource(sub).Patch(ctx, obj, patch, opts...)
			if apierrors.IsConflict(err) {
				conflicts++
			}
			return err
		},
	}
	k, c := fakeKube(t, funcs, kubeRollout("web", v1alpha1.PhaseProgressing))
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := k.Submit(ctx, "web", rollout.Command{Kind: rollout.CommandPause})
	if err == nil || !strings.Contains(err.Error(), "did not answer") {
		t.Fatalf("error %v, want the controller's silence", err)
	}
	// Queued on the second try, then taken back since nobody answered.
	if patches != 3 || conflicts != 1 {
		t.Errorf("%d status writes with %d conflicts, want 3 with 1", patches, conflicts)
	}
	// The concurrent write stands.
	r := getRollout(t, c, "web")
	if r.Status.Message != "moved on" || len(r.Status.Commands) != 0 {
		t.Errorf("status message %q, %d commands; want the concurrent write kept and the command taken back",
			r.Status.Message, len(r.Status.Commands))
	}
}

func TestKubeSubmitNoController(t *testing.T) {
	queued := v1alpha1.CommandRequest{ID: "someone-else", Kind: "promote"}
	r := kubeRollout("web", v1alpha1.PhaseProgressing)
	r.Status.Commands = []v1alpha1.CommandRequest{queued}
	var patches int
	funcs := &interceptor.Funcs{
		SubResourcePatch: func(ctx context.Context, c ctrlclient.Client, sub string, obj ctrlclient.Object, patch ctrlclient.Patch, opts ...ctrlclient.SubResourcePatchOption) error {
			patches++
			if patches == 1 {
				// The command sits in the status while nobody answers.
				if n := len(obj.(*v1alpha1.Rollout).Status.Commands); n != 2 {
					t.Errorf("the queued status holds %d commands, want the waiting one and ours", n)
				}
			}
			return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
		},
	}
	k, c := fakeKube(t, funcs, r)
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := k.Submit(ctx, "web", rollout.Command{Kind: rollout.CommandAbort})
	if err == nil || !strings.Contains(err.Error(), "the controller did not answer within") ||
		!strings.Contains(err.Error(), "is pipit controller running?") || !strings.Contains(err.Error(), "abort command was taken back") {
		t.Fatalf("error %v, want the controller's silence explained", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("gave up after %v, want about the context's 700ms", d)
	}
	if patches != 2 {
		t.Errorf("%d status writes, want the command queued then taken back", patches)
	}
	got := getRollout(t, c, "web").Status.Commands
	if len(got) != 1 || got[0] != queued {
		t.Errorf("commands after giving up: %+v, want only the other client's", got)
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
