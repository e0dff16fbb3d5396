package kubetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
	if cmds := e.Rollout("web").Status.Commands; len(cmds) != 0 {
		t.Errorf("refused commands were queued: %+v", cmds)
	}
}

func TestKubeSubmitAnsweredByController(t *testing.T) {
	e := progressingWeb(t)
	ctl := &kubefixture.FakeController{Client: e.Client, Key: e.Key("web"), Every: controllerEvery,
		Decide: func(st *v1alpha1.RolloutStatus, req v1alpha1.CommandRequest) string {
			if req.Kind != string(rollout.CommandPause) {
				return "the engine refuses " + req.Kind
			}
			st.Phase, st.Message = v1alpha1.PhasePaused, "paused by "+req.Actor
			return ""
		}}
	ctl.Run(t)
	k := newKube(e)

	v, err := k.Submit(e.Ctx(), "web", rollout.Command{Kind: rollout.CommandPause, Actor: "ana", Reason: "migration"})
	if err != nil {
		t.Fatal(err)
	}
	if v.Name != "web" || v.Status.Phase != v1alpha1.PhasePaused || v.Status.Message != "paused by ana" {
		t.Errorf("view after pause: %s %s %q, want web Paused by ana", v.Name, v.Status.Phase, v.Status.Message)
	}
	reqs := ctl.Requests()
	if len(reqs) != 1 || reqs[0].Kind != "pause" || reqs[0].Actor != "ana" || reqs[0].Reason != "migration" || reqs[0].ID == "" {
		t.Fatalf("the controller saw %+v, want the pause request", reqs)
	}
	r := e.Rollout("web")
	if len(r.Status.Commands) != 0 || len(r.Status.CommandResults) != 1 || r.Status.CommandResults[0].ID != reqs[0].ID {
		t.Errorf("status commands %+v results %+v, want the request answered", r.Status.Commands, r.Status.CommandResults)
	}

	// The engine may still refuse what the CLI let through.
	_, err = k.Submit(e.Ctx(), "web", rollout.Command{Kind: rollout.CommandAbort})
	var refused *controlapi.RefusedError
	if !errors.As(err, &refused) || refused.Reason != "the engine refuses abort" {
		t.Errorf("abort: %v, want the controller's refusal", err)
	}
}

// TestKubeSubmitRacesAWriter queues a command while a busy controller
// writes the status every 20ms: the optimistic writes must lose neither.
func TestKubeSubmitRacesAWriter(t *testing.T) {
	e := progressingWeb(t)
	key := e.Key("web")
	ctl := &kubefixture.FakeController{Client: e.Client, Key: key, Decide: func(*v1alpha1.RolloutStatus, v1alpha1.CommandRequest) string { return "" }}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		writes := 0
		for i := 0; ctx.Err() == nil; i++ {
			r := &v1alpha1.Rollout{}
			if e.Client.Get(ctx, key, r) == nil {
				r.Status.Message = fmt.Sprintf("write %d", i)
				if e.Client.Status().Update(ctx, r) == nil {
					writes++
				}
			}
			ctl.Once(ctx)
			time.Sleep(20 * time.Millisecond)
		}
		done <- writes
	}()
	v, err := newKube(e).Submit(e.Ctx(), "web", rollout.Command{Kind: rollout.CommandPause})
	cancel()
	writes := <-done
	if err != nil {
		t.Fatalf("Submit while the status changes: %v", err)
	}
	if v.Name != "web" || len(ctl.Requests()) != 1 || !strings.HasPrefix(v.Status.Message, "write ") {
		t.Errorf("view %q (message %q), the controller saw %d requests; want one, answered, and the writer's status",
			v.Name, v.Status.Message, len(ctl.Requests()))
	}
	if writes < 2 {
		t.Errorf("only %d concurrent writes: the test did not race", writes)
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
	if cmds := e.Rollout("web").Status.Commands; len(cmds) != 0 {
		t.Errorf("status.commands after giving up: %+v, want the command taken back", cmds)
	}
}
