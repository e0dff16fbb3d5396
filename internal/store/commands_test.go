package store

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/testenv/fakeclock"
)

func TestCommandsQueueInOrder(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	for _, name := range []string{"web", "api"} {
		if err := s.SaveStatus(ctx, name, nil, v1alpha1.RolloutStatus{}, nil); err != nil {
			t.Fatal(err)
		}
	}
	want := []Command{
		{Rollout: "web", Kind: "pause", Actor: "ana", At: at(1)},
		{Rollout: "web", Kind: "deploy", Args: json.RawMessage(`{"canary":"http://127.0.0.1:9002"}`), Actor: "bo", At: at(2)},
		{Rollout: "web", Kind: "promote", Actor: "ana", At: at(3)},
	}
	for i := range want {
		id, err := s.EnqueueCommand(ctx, want[i])
		if err != nil {
			t.Fatal(err)
		}
		want[i].ID = id
		// Another rollout's commands interleave and stay apart.
		if _, err := s.EnqueueCommand(ctx, Command{Rollout: "api", Kind: "abort"}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.PendingCommands(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("got %d pending, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.ID != w.ID || g.Rollout != w.Rollout || g.Kind != w.Kind || string(g.Args) != string(w.Args) ||
			g.Actor != w.Actor || !g.At.Equal(w.At) {
			t.Errorf("command %d = %+v, want %+v", i, g, w)
		}
	}
	if got[0].Args != nil {
		t.Errorf("a command without args came back with %q", got[0].Args)
	}
}

// TestUndatedCommandTakesTheClocksTime: a command enqueued without a time
// is dated by the store's clock, not the wall clock.
func TestUndatedCommandTakesTheClocksTime(t *testing.T) {
	ctx := context.Background()
	clock := fakeclock.New(at(7))
	s := openStoreWith(t, t.TempDir(), Options{Clock: clock})
	if err := s.SaveStatus(ctx, "web", nil, v1alpha1.RolloutStatus{}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EnqueueCommand(ctx, Command{Rollout: "web", Kind: "pause"}); err != nil {
		t.Fatal(err)
	}
	got, err := s.PendingCommands(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !got[0].At.Equal(at(7)) {
		t.Errorf("pending = %+v, want one command at %v", got, at(7))
	}
}

func TestEnqueueRefusals(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	if _, err := s.EnqueueCommand(ctx, Command{Rollout: "ghost", Kind: "promote"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("command for a missing rollout: err = %v, want ErrNotFound", err)
	}
	if err := s.SaveStatus(ctx, "web", nil, v1alpha1.RolloutStatus{}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EnqueueCommand(ctx, Command{Rollout: "web", Kind: "x", Args: json.RawMessage(`{`)}); err == nil {
		t.Error("args that are not JSON were accepted")
	}
	if _, err := s.EnqueueCommand(ctx, Command{Rollout: "web"}); err == nil {
		t.Error("a command without a kind was accepted")
	}
	if cmds, _ := s.PendingCommands(ctx, "web"); len(cmds) != 0 {
		t.Errorf("refused commands were queued: %+v", cmds)
	}
}

func TestCommandConsumedWithStatus(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	if err := s.SaveStatus(ctx, "web", nil, v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseProgressing}, nil); err != nil {
		t.Fatal(err)
	}
	pause, _ := s.EnqueueCommand(ctx, Command{Rollout: "web", Kind: "pause"})
	promote, _ := s.EnqueueCommand(ctx, Command{Rollout: "web", Kind: "promote"})

	paused := v1alpha1.RolloutStatus{Phase: v1alpha1.PhasePaused}
	if err := s.SaveStatus(ctx, "web", nil, paused, []v1alpha1.Event{event(1, "Paused", 0)}, pause); err != nil {
		t.Fatal(err)
	}
	cmds, err := s.PendingCommands(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if len(cmds) != 1 || cmds[0].ID != promote {
		t.Fatalf("pending after consuming pause = %+v, want only promote (%d)", cmds, promote)
	}

	// Consuming a command twice, or one that is not pending, fails and
	// saves nothing at all: not the status, not the events, not the other
	// command.
	bad := v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseSucceeded}
	err = s.SaveStatus(ctx, "web", nil, bad, []v1alpha1.Event{event(2, "Promoted", 1)}, promote, pause)
	if err == nil {
		t.Fatal("consuming an already done command succeeded")
	}
	r, _ := s.Rollout(ctx, "web")
	if r.Status.Phase != v1alpha1.PhasePaused {
		t.Errorf("failed save changed the phase to %s", r.Status.Phase)
	}
	if evs, _ := s.Events(ctx, "web", 0); len(evs) != 1 {
		t.Errorf("failed save appended events: %d, want 1", len(evs))
	}
	if cmds, _ := s.PendingCommands(ctx, "web"); len(cmds) != 1 || cmds[0].ID != promote {
		t.Errorf("failed save consumed promote: pending = %+v", cmds)
	}

	// Another rollout cannot consume web's command.
	if err := s.SaveStatus(ctx, "api", nil, v1alpha1.RolloutStatus{}, nil, promote); err == nil {
		t.Error("a rollout consumed another rollout's command")
	}
	if _, err := s.Rollout(ctx, "api"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the failed save of api created it: %v", err)
	}
}
