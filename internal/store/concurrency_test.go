package store

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// TestReadersBesideWriters reads while two rollouts are written and
// commands are enqueued from other goroutines. No call may fail (a busy
// database must wait, not error), and what readers see must only grow.
func TestReadersBesideWriters(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	const saves = 60
	rollouts := []string{"web", "api"}
	for _, name := range rollouts {
		if err := s.SaveStatus(ctx, name, nil, v1alpha1.RolloutStatus{}, nil); err != nil {
			t.Fatal(err)
		}
	}

	var writers, readers sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 16)
	report := func(err error) {
		if err != nil {
			errs <- err
		}
	}
	for _, name := range rollouts {
		writers.Go(func() { report(saveStatuses(ctx, s, name, saves)) })
		writers.Go(func() { report(enqueueCommands(ctx, s, name, saves)) })
	}
	for range 3 {
		readers.Go(func() { report(readUntilStopped(ctx, s, rollouts, stop)) })
	}
	writers.Wait()
	close(stop)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	for _, name := range rollouts {
		evs, _ := s.Events(ctx, name, 0)
		cmds, _ := s.PendingCommands(ctx, name)
		smp, _ := s.Samples(ctx, name, "", at(0))
		if len(evs) != saves || len(cmds) != saves || len(smp) != 2*saves {
			t.Errorf("%s: %d events, %d commands, %d samples; want %d, %d, %d",
				name, len(evs), len(cmds), len(smp), saves, saves, 2*saves)
		}
	}
}

// saveStatuses saves the rollout's status n times, save i with generation
// i, one event and the results of a check; it stops at the first error.
func saveStatuses(ctx context.Context, s *Store, name string, n int) error {
	for i := 1; i <= n; i++ {
		st := checked(i, check(float64(i)))
		st.ObservedGeneration = int64(i)
		ev := event(i, fmt.Sprintf("Save%d", i), int32(i))
		if err := s.SaveStatus(ctx, name, nil, st, []v1alpha1.Event{ev}); err != nil {
			return err
		}
	}
	return nil
}

// enqueueCommands enqueues n pause commands for the rollout; it stops at
// the first error.
func enqueueCommands(ctx context.Context, s *Store, name string, n int) error {
	for range n {
		if _, err := s.EnqueueCommand(ctx, Command{Rollout: name, Kind: "pause"}); err != nil {
			return err
		}
	}
	return nil
}

// readUntilStopped reads the rollouts, their events and the list of them
// over and over until stop is closed. It returns the first failed read, or
// the first sign that a rollout went back to an earlier save or that its
// events lag its status.
func readUntilStopped(ctx context.Context, s *Store, rollouts []string, stop <-chan struct{}) error {
	seen := map[string]int64{}
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		for _, name := range rollouts {
			r, err := s.Rollout(ctx, name)
			if err != nil {
				return err
			}
			gen := r.Status.ObservedGeneration
			if gen < seen[name] {
				return fmt.Errorf("%s went back from save %d to %d", name, seen[name], gen)
			}
			seen[name] = gen
			// Read after the status, the events are at least as many.
			evs, err := s.Events(ctx, name, 0)
			if err != nil {
				return err
			}
			if int64(len(evs)) < gen {
				return fmt.Errorf("%s: status of save %d but only %d events", name, gen, len(evs))
			}
		}
		if _, err := s.Rollouts(ctx); err != nil {
			return err
		}
	}
}
