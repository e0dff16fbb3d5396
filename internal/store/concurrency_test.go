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
	for _, name := range rollouts {
		writers.Go(func() {
			for i := 1; i <= saves; i++ {
				st := checked(i, check(float64(i)))
				st.ObservedGeneration = int64(i)
				ev := event(i, fmt.Sprintf("Save%d", i), int32(i))
				if err := s.SaveStatus(ctx, name, nil, st, []v1alpha1.Event{ev}); err != nil {
					errs <- err
					return
				}
			}
		})
		writers.Go(func() {
			for range saves {
				if _, err := s.EnqueueCommand(ctx, Command{Rollout: name, Kind: "pause"}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for range 3 {
		readers.Go(func() {
			seen := map[string]int64{}
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, name := range rollouts {
					r, err := s.Rollout(ctx, name)
					if err != nil {
						errs <- err
						return
					}
					gen := r.Status.ObservedGeneration
					if gen < seen[name] {
						errs <- fmt.Errorf("%s went back from save %d to %d", name, seen[name], gen)
						return
					}
					seen[name] = gen
					// Read after the status, the events are at least as many.
					evs, err := s.Events(ctx, name, 0)
					if err != nil {
						errs <- err
						return
					}
					if int64(len(evs)) < gen {
						errs <- fmt.Errorf("%s: status of save %d but only %d events", name, gen, len(evs))
						return
					}
				}
				if _, err := s.Rollouts(ctx); err != nil {
					errs <- err
					return
				}
			}
		})
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
