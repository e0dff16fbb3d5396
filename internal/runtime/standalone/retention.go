package standalone

import (
	"context"
	"fmt"
	"time"

	"github.com/pipit-dev/pipit/internal/rollout"
)

// Retention defaults, as pipit up applies them: a month of history, and at
// most that many rows of each kind per rollout, so a rollout checked every
// few seconds does not grow the state without bound within the month.
const (
	DefaultRetentionAge  = 30 * 24 * time.Hour
	DefaultRetentionKeep = 10000
	// DefaultPruneInterval is the time between two prunes of the history.
	DefaultPruneInterval = time.Hour
)

// Retention bounds the history the daemon keeps in its state: the events,
// the analysis samples and the commands already carried out. Rollouts,
// their status and pending commands are never pruned. The zero value keeps
// everything.
type Retention struct {
	// MaxAge is how long history is kept; 0 keeps it whatever its age.
	MaxAge time.Duration
	// KeepPerRollout is how many of the most recent events, samples and
	// done commands each rollout keeps, each kind counted apart; 0 keeps
	// them whatever their number.
	KeepPerRollout int
	// Interval is the time between two prunes; 0 is DefaultPruneInterval.
	Interval time.Duration
}

// validate refuses bounds that mean nothing, naming the field.
func (r Retention) validate() error {
	switch {
	case r.MaxAge < 0:
		return fmt.Errorf("retention: MaxAge %s is negative: want 0 (keep whatever the age) or more", r.MaxAge)
	case r.KeepPerRollout < 0:
		return fmt.Errorf("retention: KeepPerRollout %d is negative: want 0 (keep whatever the number) or more", r.KeepPerRollout)
	case r.Interval < 0:
		return fmt.Errorf("retention: Interval %s is negative: want 0 (the default, %s) or more", r.Interval, DefaultPruneInterval)
	}
	return nil
}

func (r Retention) enabled() bool { return r.MaxAge > 0 || r.KeepPerRollout > 0 }

// pruneHistory prunes the history at once, then every retention interval
// on the daemon's clock, until ctx ends. A failed prune is logged and
// tried again at the next interval: the history only grows meanwhile.
func (d *Daemon) pruneHistory(ctx context.Context) {
	every := d.retention.Interval
	if every == 0 {
		every = DefaultPruneInterval
	}
	for {
		d.prune(ctx)
		if rollout.Sleep(ctx, d.clock, every) != nil {
			return
		}
	}
}

// prune deletes the history beyond the retention once.
func (d *Daemon) prune(ctx context.Context) {
	var before time.Time
	if d.retention.MaxAge > 0 {
		before = d.clock.Now().Add(-d.retention.MaxAge)
	}
	n, err := d.db.Prune(ctx, d.retention.KeepPerRollout, before)
	switch {
	case err != nil && ctx.Err() == nil:
		d.log.Warn("pruning the history failed; it is tried again later", "err", err)
	case n > 0:
		d.log.Info("pruned the history", "rows", n, "before", before, "keepPerRollout", d.retention.KeepPerRollout)
	}
}
