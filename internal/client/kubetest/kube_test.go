package kubetest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/controlapi"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/testenv/kubefixture"
)

func TestKubeReadsRollouts(t *testing.T) {
	e := kubefixture.New(t)
	elsewhere := e.Cluster.Namespace(t)
	st := progressing()
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	for i, reason := range []string{"Started", "WeightChanged", "CheckPassed"} {
		st.History = append(st.History, v1alpha1.Event{Time: metav1.NewMicroTime(at.Add(time.Duration(i) * time.Minute)),
			Type: v1alpha1.EventNormal, Reason: reason, Message: reason, Phase: v1alpha1.PhaseProgressing})
	}
	createRollout(e, e.Namespace, "web", st)
	createRollout(e, e.Namespace, "api", v1alpha1.RolloutStatus{Phase: v1alpha1.PhasePaused})
	createRollout(e, elsewhere, "other", v1alpha1.RolloutStatus{Phase: v1alpha1.PhasePaused})
	k := newKube(e)
	ctx := e.Ctx()

	views, err := k.Rollouts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(views) != 2 || views[0].Name != "api" || views[1].Name != "web" {
		t.Fatalf("Rollouts: %d views %v, want api and web of %s, sorted", len(views), names(views), e.Namespace)
	}
	web := views[1]
	if web.Status.Phase != v1alpha1.PhaseProgressing || web.Status.CanaryWeight != v1alpha1.PercentOf(10) ||
		web.Status.Canary == nil || web.Status.Canary.Template != "7b6c4d" {
		t.Errorf("web's status %+v, want the one written", web.Status)
	}
	if got := strings.Join(web.Steps, ", "); got != "setWeight 10%, pause until promoted" {
		t.Errorf("web's steps %q", got)
	}

	v, err := k.Rollout(ctx, "api")
	if err != nil || v.Status.Phase != v1alpha1.PhasePaused {
		t.Errorf("Rollout(api) = %v, %v; want it Paused", v.Status.Phase, err)
	}
	if _, err := k.Rollout(ctx, "other"); !errors.Is(err, controlapi.ErrNotFound) {
		t.Errorf("Rollout(other) of another namespace: %v, want ErrNotFound", err)
	}

	evs, err := k.Events(ctx, "web", 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].Reason != "WeightChanged" || evs[1].Reason != "CheckPassed" || !evs[1].Time.Time.Equal(at.Add(2*time.Minute)) {
		t.Errorf("Events(web, 2) = %+v, want the last two, oldest first", evs)
	}
	if all, err := k.Events(ctx, "web", 0); err != nil || len(all) != 3 {
		t.Errorf("Events(web, 0) = %d events, %v; want 3", len(all), err)
	}
}

func names(views []controlapi.RolloutView) []string {
	var out []string
	for _, v := range views {
		out = append(out, v.Name)
	}
	return out
}

func TestKubeSubmitRefusedAtOnce(t *testing.T) {
	e := progressingWeb(t)
	k := newKube(e)

	for _, tc := range []struct {
		cmd  rollout.Command
		want string
	}{
		{rollout.Command{Kind: rollout.CommandResume}, "cannot resume a rollout that is Progressing"},
		{rollout.Command{Kind: rollout.CommandUndo}, "cannot undo a rollout that is Progressing"},
		{rollout.Command{Kind: rollout.CommandDeploy, Canary: &v1alpha1.VersionRef{Version: "nginx:1.2"}}, "kubectl set image deployment/web"},
	} {
		start := time.Now()
		_, err := k.Submit(e.Ctx(), "web", tc.cmd)
		var refused *controlapi.RefusedError
		if !errors.As(err, &refused) || !strings.Contains(refused.Reason, tc.want) {
			t.Errorf("%s: %v, want a refusal saying %q", tc.cmd.Kind, err, tc.want)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s refused after %v, want at once", tc.cmd.Kind, d)
		}
	}
	if cmds := commands(e); len(cmds) != 0 {
		t.Errorf("refused commands were created: %+v", cmds)
	}
}

// commands lists the RolloutCommands of the test's namespace.
func commands(e *kubefixture.Env) []v1alpha1.RolloutCommand {
	e.T.Helper()
	var list v1alpha1.RolloutCommandList
	if err := e.Client.List(e.Ctx(), &list, ctrlclient.InNamespace(e.Namespace)); err != nil {
		e.T.Fatal(err)
	}
	return list.Items
}

// TestKubeSubmitAnsweredByController: the command is a RolloutCommand
// in the name of the kubeconfig's user as the API server authenticated
// it (the fixture's "admin"), whatever actor the caller claims.
func TestKubeSubmitAnsweredByController(t *testing.T) {
	e := progressingWeb(t)
	ctl := &kubefixture.FakeController{Client: e.Client, Key: e.Key("web"), Every: controllerEvery,
		Decide: func(st *v1alpha1.RolloutStatus, cmd *v1alpha1.RolloutCommand) string {
			if cmd.Spec.Verb != v1alpha1.CommandVerb(rollout.CommandPause) {
				return "the engine refuses " + string(cmd.Spec.Verb)
			}
			st.Phase, st.Message = v1alpha1.PhasePaused, "paused by "+cmd.Spec.RequestedBy
			return ""
		}}
	ctl.Run(t)
	k := newKube(e)

	v, err := k.Submit(e.Ctx(), "web", rollout.Command{Kind: rollout.CommandPause, Actor: "ana", Reason: "migration"})
	if err != nil {
		t.Fatal(err)
	}
	if v.Name != "web" || v.Status.Phase != v1alpha1.PhasePaused || v.Status.Message != "paused by admin" {
		t.Errorf("view after pause: %s %s %q, want web Paused by admin", v.Name, v.Status.Phase, v.Status.Message)
	}
	cmds := ctl.Commands()
	if len(cmds) != 1 || cmds[0].Spec != (v1alpha1.RolloutCommandSpec{Rollout: "web", Verb: "pause", Reason: "migration", RequestedBy: "admin"}) {
		t.Fatalf("the controller saw %+v, want the pause by admin", cmds)
	}
	got := kubefixture.Get(e, cmds[0].Name, &v1alpha1.RolloutCommand{})
	if !got.Status.Consumed || got.Status.Result != v1alpha1.CommandApplied || len(got.OwnerReferences) != 1 ||
		got.OwnerReferences[0].UID != e.Rollout("web").UID {
		t.Errorf("RolloutCommand %+v, want it answered and owned by the Rollout", got)
	}

	// The engine may still refuse what the CLI let through.
	_, err = k.Submit(e.Ctx(), "web", rollout.Command{Kind: rollout.CommandAbort})
	var refused *controlapi.RefusedError
	if !errors.As(err, &refused) || refused.Reason != "the engine refuses abort" {
		t.Errorf("abort: %v, want the controller's refusal", err)
	}
}

func TestKubeSubmitWithoutController(t *testing.T) {
	e := progressingWeb(t)
	k := newKube(e)

	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := k.Submit(ctx, "web", rollout.Command{Kind: rollout.CommandPromote})
	if err == nil || !strings.Contains(err.Error(), "the controller did not answer within 1.") ||
		!strings.Contains(err.Error(), "s: is pipit controller running?") {
		t.Fatalf("error %v, want the controller's silence explained", err)
	}
	if !strings.Contains(err.Error(), "promote command was taken back") {
		t.Errorf("error %v, want it to say the command was taken back", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("gave up after %v, want about the context's 1.5s", d)
	}
	if cmds := commands(e); len(cmds) != 0 {
		t.Errorf("RolloutCommands after giving up: %+v, want the command taken back", cmds)
	}
}
