package engine

import (
	"reflect"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
)

func TestADeployWithNoStableIsAnInstall(t *testing.T) {
	plan := seedPlan(v1alpha1.DecisionAutomatic, 2)
	v1 := v1alpha1.VersionRef{Version: "v1"}
	res := Step(plan, v1alpha1.RolloutStatus{}, Input{Now: t0, Commands: []rollout.Command{
		{Kind: rollout.CommandDeploy, Canary: &v1, Actor: "pipit"},
	}})
	if res.Consumed[0] != nil {
		t.Fatalf("install refused: %v", res.Consumed[0])
	}
	st := res.Status
	if st.Phase != v1alpha1.PhaseIdle || st.Stable == nil || st.Stable.Version != "v1" || st.Canary != nil || st.CanaryWeight != 0 {
		t.Fatalf("status after install: phase %s stable %v canary %v weight %s", st.Phase, st.Stable, st.Canary, st.CanaryWeight)
	}
	want := []rollout.Action{
		{Kind: rollout.ActionInstall, Version: &v1},
		{Kind: rollout.ActionSetWeight, Weight: 0, CanaryLive: false},
	}
	if !reflect.DeepEqual(res.Actions, want) {
		t.Fatalf("actions %+v, want %+v", res.Actions, want)
	}
	if len(res.Events) != 1 || res.Events[0].Reason != "Installed" || !res.Events[0].Time.Time.Equal(t0) {
		t.Fatalf("events %+v, want one Installed event at the step's time", res.Events)
	}
	// The same version again is the stable one, not a new install.
	again := Step(plan, st, Input{Now: t0, Commands: []rollout.Command{{Kind: rollout.CommandDeploy, Canary: &v1}}})
	if again.Consumed[0] == nil || len(again.Actions) != 0 {
		t.Fatalf("deploying the stable again: consumed %v, actions %+v", again.Consumed[0], again.Actions)
	}
}

func TestWeightChangesSayWhetherTheCanaryIsLive(t *testing.T) {
	plan := seedPlan(v1alpha1.DecisionAutomatic, 1)
	idle := v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseIdle, Stable: &v1alpha1.VersionRef{Version: "v1"}}
	in := Input{Now: t0, Observed: rollout.Observed{StableVersion: "v1"}, Commands: []rollout.Command{
		{Kind: rollout.CommandDeploy, Canary: &v1alpha1.VersionRef{Version: "v2"}},
	}}
	started := Step(plan, idle, in)
	if started.Status.Phase != v1alpha1.PhaseProgressing {
		t.Fatalf("deploy left the rollout %s", started.Status.Phase)
	}
	if len(weightActions(started.Actions)) == 0 {
		t.Fatalf("deploy took no traffic off the new canary: %+v", started.Actions)
	}
	for _, a := range weightActions(started.Actions) {
		if !a.CanaryLive {
			t.Fatalf("a progressing rollout's weight change closes the canary: %+v", started.Actions)
		}
	}
	abort := Step(plan, started.Status, Input{Now: t0.Add(time.Minute), Commands: []rollout.Command{{Kind: rollout.CommandAbort, Actor: "bob"}}})
	closed := weightActions(abort.Actions)
	if len(closed) == 0 || closed[0].CanaryLive || closed[0].Weight != 0 {
		t.Fatalf("an abort's weight change keeps the canary live: %+v", abort.Actions)
	}
}

func weightActions(acts []rollout.Action) []rollout.Action {
	var out []rollout.Action
	for _, a := range acts {
		if a.Kind == rollout.ActionSetWeight {
			out = append(out, a)
		}
	}
	return out
}

func TestReapplyMatchesTheSavedPhase(t *testing.T) {
	v1, v2 := &v1alpha1.VersionRef{Version: "v1"}, &v1alpha1.VersionRef{Version: "v2"}
	for _, tc := range []struct {
		name string
		st   v1alpha1.RolloutStatus
		want []rollout.Action
	}{
		{"nothing installed yet", v1alpha1.RolloutStatus{}, nil},
		{"installed, no rollout yet", v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseIdle, Stable: v1}, []rollout.Action{
			{Kind: rollout.ActionInstall, Version: v1},
			{Kind: rollout.ActionSetWeight},
		}},
		{"progressing", v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseProgressing, Stable: v1, Canary: v2, CanaryWeight: 5000}, []rollout.Action{
			{Kind: rollout.ActionDeployCanary, Version: v2},
			{Kind: rollout.ActionSetWeight, Weight: 5000, CanaryLive: true},
		}},
		{"promoting", v1alpha1.RolloutStatus{Phase: v1alpha1.PhasePromoting, Stable: v1, Canary: v2, CanaryWeight: v1alpha1.FullWeight}, []rollout.Action{
			{Kind: rollout.ActionDeployCanary, Version: v2},
			{Kind: rollout.ActionPromote, Version: v2},
			{Kind: rollout.ActionSetWeight, Weight: v1alpha1.FullWeight, CanaryLive: true},
		}},
		{"rolling back", v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseRollingBack, Stable: v1, Canary: v2}, []rollout.Action{
			{Kind: rollout.ActionDeployCanary, Version: v2},
			{Kind: rollout.ActionSetWeight, CanaryLive: false},
		}},
		{"rolled back", v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseRolledBack, Stable: v1, Canary: v2}, []rollout.Action{
			{Kind: rollout.ActionRetireCanary, Version: v2},
			{Kind: rollout.ActionPromote, Version: v1},
			{Kind: rollout.ActionSetWeight},
		}},
		{"aborted", v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseAborted, Stable: v1, Canary: v2}, []rollout.Action{
			{Kind: rollout.ActionRetireCanary, Version: v2},
			{Kind: rollout.ActionPromote, Version: v1},
			{Kind: rollout.ActionSetWeight},
		}},
		{"succeeded", v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseSucceeded, Stable: v2, Previous: v1}, []rollout.Action{
			{Kind: rollout.ActionPromote, Version: v2},
			{Kind: rollout.ActionSetWeight},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Reapply(tc.st); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Reapply = %+v, want %+v", got, tc.want)
			}
		})
	}
}
