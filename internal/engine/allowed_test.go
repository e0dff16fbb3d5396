package engine

import (
	"strings"
	"testing"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
)

// allCommands holds one well-formed command of every kind, in the column
// order of the phase × command table in docs/architecture.md.
var allCommands = []rollout.Command{
	{Kind: rollout.CommandDeploy, Canary: &v1alpha1.VersionRef{Version: "v3"}},
	{Kind: rollout.CommandPause},
	{Kind: rollout.CommandResume},
	{Kind: rollout.CommandPromote},
	{Kind: rollout.CommandPromoteFull},
	{Kind: rollout.CommandApprove},
	{Kind: rollout.CommandReject},
	{Kind: rollout.CommandAbort},
	{Kind: rollout.CommandSetWeight, Weight: pct(10)},
	{Kind: rollout.CommandRetry},
	{Kind: rollout.CommandUndo},
}

// statusIn is a rollout in phase p that has all a command could need: a
// stable version, a canary, and a previous stable version to undo to.
func statusIn(p v1alpha1.Phase) v1alpha1.RolloutStatus {
	return v1alpha1.RolloutStatus{Phase: p, Stable: &v1alpha1.VersionRef{Version: "v1"},
		Canary: &v1alpha1.VersionRef{Version: "v2"}, Previous: &v1alpha1.VersionRef{Version: "v0"}}
}

// TestAllowedPhaseByCommand is the phase × command table: for every phase
// (and the empty one, which is Idle) the commands it allows, in the order
// of allCommands. A command refused for its phase says so.
func TestAllowedPhaseByCommand(t *testing.T) {
	const (
		y = true
		n = false
	)
	table := []struct {
		phase v1alpha1.Phase
		// deploy, pause, resume, promote, promote-full, approve, reject,
		// abort, set-weight, retry, undo
		allowed [11]bool
	}{
		{"", [11]bool{y, n, n, n, n, n, n, n, n, n, n}},
		{v1alpha1.PhaseIdle, [11]bool{y, n, n, n, n, n, n, n, n, n, n}},
		{v1alpha1.PhaseProgressing, [11]bool{y, y, n, y, y, n, n, y, y, n, n}},
		{v1alpha1.PhasePaused, [11]bool{y, n, y, y, y, n, n, y, y, n, n}},
		{v1alpha1.PhaseAwaitingDecision, [11]bool{y, n, n, y, y, y, y, y, y, n, n}},
		{v1alpha1.PhasePromoting, [11]bool{n, n, n, n, n, n, n, n, n, n, n}},
		{v1alpha1.PhaseSucceeded, [11]bool{y, n, n, n, n, n, n, n, n, n, y}},
		{v1alpha1.PhaseRollingBack, [11]bool{n, n, n, n, n, n, n, n, n, n, n}},
		{v1alpha1.PhaseRolledBack, [11]bool{y, n, n, n, n, n, n, n, n, y, n}},
		{v1alpha1.PhaseAborted, [11]bool{y, n, n, n, n, n, n, n, n, y, n}},
		{v1alpha1.PhaseFailed, [11]bool{y, n, n, n, n, n, n, n, n, y, n}},
	}
	for _, row := range table {
		shown := row.phase
		if shown == "" {
			shown = v1alpha1.PhaseIdle
		}
		for i, cmd := range allCommands {
			err := Allowed(statusIn(row.phase), cmd)
			want := "cannot " + string(cmd.Kind) + " a rollout that is " + string(shown)
			if cmd.Kind == rollout.CommandDeploy {
				want = "the rollout is " + string(shown) + "; deploy again when it has finished"
			}
			switch {
			case row.allowed[i] && err != nil:
				t.Errorf("%q × %s refused: %v", row.phase, cmd.Kind, err)
			case !row.allowed[i] && (err == nil || !strings.Contains(err.Error(), want)):
				t.Errorf("%q × %s: got %v, want refused with %q", row.phase, cmd.Kind, err, want)
			}
		}
	}
}

// TestAllowedChecksWhatACommandNeeds covers the refusals of commands in a
// phase that allows them.
func TestAllowedChecksWhatACommandNeeds(t *testing.T) {
	v := func(version string) *v1alpha1.VersionRef { return &v1alpha1.VersionRef{Version: version} }
	noPrevious, noCanary := statusIn(v1alpha1.PhaseSucceeded), statusIn(v1alpha1.PhaseRolledBack)
	noPrevious.Previous, noCanary.Canary = nil, nil
	cases := []struct {
		name string
		st   v1alpha1.RolloutStatus
		cmd  rollout.Command
		want string // a fragment of the refusal; "" when allowed
	}{
		{"deploy of nothing", statusIn(v1alpha1.PhaseIdle), rollout.Command{Kind: rollout.CommandDeploy}, "deploy needs a canary version"},
		{"deploy of no version", statusIn(v1alpha1.PhaseIdle), rollout.Command{Kind: rollout.CommandDeploy, Canary: v("")}, "deploy needs a canary version"},
		{"deploy of nothing while promoting", statusIn(v1alpha1.PhasePromoting), rollout.Command{Kind: rollout.CommandDeploy}, "deploy needs a canary version"},
		{"deploy of the stable version", statusIn(v1alpha1.PhaseSucceeded), rollout.Command{Kind: rollout.CommandDeploy, Canary: v("v1")}, "v1 is already the stable version"},
		{"deploy of the stable version mid-rollout", statusIn(v1alpha1.PhaseProgressing), rollout.Command{Kind: rollout.CommandDeploy, Canary: v("v1")}, ""},
		{"deploy of the canary in flight", statusIn(v1alpha1.PhasePaused), rollout.Command{Kind: rollout.CommandDeploy, Canary: v("v2")}, "v2 is already being rolled out"},
		{"deploy of the canary in flight while rolling back", statusIn(v1alpha1.PhaseRollingBack), rollout.Command{Kind: rollout.CommandDeploy, Canary: v("v2")}, "v2 is already being rolled out"},
		{"deploy of the same label elsewhere", statusIn(v1alpha1.PhaseProgressing), rollout.Command{Kind: rollout.CommandDeploy, Canary: &v1alpha1.VersionRef{Version: "v2", URL: "http://other"}}, ""},
		{"deploy of the rolled-back canary again", statusIn(v1alpha1.PhaseRolledBack), rollout.Command{Kind: rollout.CommandDeploy, Canary: v("v2")}, ""},
		{"set-weight of nothing", statusIn(v1alpha1.PhaseProgressing), rollout.Command{Kind: rollout.CommandSetWeight}, "set-weight needs a weight"},
		{"set-weight of everything", statusIn(v1alpha1.PhaseProgressing), rollout.Command{Kind: rollout.CommandSetWeight, Weight: pct(100)}, "out of range"},
		{"set-weight below zero", statusIn(v1alpha1.PhasePaused), rollout.Command{Kind: rollout.CommandSetWeight, Weight: pct(-1)}, "out of range"},
		{"set-weight of zero", statusIn(v1alpha1.PhaseAwaitingDecision), rollout.Command{Kind: rollout.CommandSetWeight, Weight: pct(0)}, ""},
		{"set-weight of nothing when not allowed", statusIn(v1alpha1.PhaseIdle), rollout.Command{Kind: rollout.CommandSetWeight}, "cannot set-weight a rollout that is Idle"},
		{"undo with the window closed", noPrevious, rollout.Command{Kind: rollout.CommandUndo}, "nothing to undo"},
		{"retry of no canary", noCanary, rollout.Command{Kind: rollout.CommandRetry}, "there is no canary to retry"},
		{"an unknown command", statusIn(v1alpha1.PhaseProgressing), rollout.Command{Kind: "rewind"}, `unknown command "rewind"`},
	}
	for _, tc := range cases {
		err := Allowed(tc.st, tc.cmd)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v, want refused with %q", tc.name, err, tc.want)
		}
	}
}
