package standalone

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/store"
)

// rolloutStore is one rollout's view of the SQLite store, as the runner
// needs it.
type rolloutStore struct {
	db   *store.Store
	name string
	spec []byte
}

// commandArgs is how a command's arguments are kept in the queue.
type commandArgs struct {
	Canary *v1alpha1.VersionRef `json:"canary,omitempty"`
	Weight *v1alpha1.Percent    `json:"weight,omitempty"`
	Reason string               `json:"reason,omitempty"`
}

func (s rolloutStore) Save(ctx context.Context, st v1alpha1.RolloutStatus, events []v1alpha1.Event, consumed []int64) error {
	return s.db.SaveStatus(ctx, s.name, s.spec, st, events, consumed...)
}

func (s rolloutStore) Pending(ctx context.Context) ([]rollout.PendingCommand, error) {
	cmds, err := s.db.PendingCommands(ctx, s.name)
	if err != nil {
		return nil, err
	}
	out := make([]rollout.PendingCommand, 0, len(cmds))
	for _, c := range cmds {
		var args commandArgs
		if len(c.Args) > 0 {
			if err := json.Unmarshal(c.Args, &args); err != nil {
				return nil, fmt.Errorf("command %d: %w", c.ID, err)
			}
		}
		out = append(out, rollout.PendingCommand{ID: c.ID, Command: rollout.Command{
			Kind: rollout.CommandKind(c.Kind), Canary: args.Canary, Weight: args.Weight, Actor: c.Actor, Reason: args.Reason,
		}})
	}
	return out, nil
}

// enqueue stores a command durably before it is acted on.
func (s rolloutStore) enqueue(ctx context.Context, c rollout.Command) (int64, error) {
	args, err := json.Marshal(commandArgs{Canary: c.Canary, Weight: c.Weight, Reason: c.Reason})
	if err != nil {
		return 0, err
	}
	return s.db.EnqueueCommand(ctx, store.Command{Rollout: s.name, Kind: string(c.Kind), Args: args, Actor: c.Actor})
}
