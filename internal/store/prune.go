package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// history is a table that grows with every check or transition and is
// pruned: its time column, and which of its rows may go at all.
type history struct {
	table, timeColumn, prunable string
}

// histories never include pending commands: an accepted command stays
// until it is carried out.
var histories = []history{
	{table: "events", timeColumn: "at", prunable: "TRUE"},
	{table: "samples", timeColumn: "at", prunable: "TRUE"},
	{table: "commands", timeColumn: "done_at", prunable: "done_at IS NOT NULL"},
}

// Prune bounds the history kept: events, samples and done commands dated
// before before, and those beyond the most recent keepPerRollout of each
// kind for each rollout, are deleted. A zero before or a keepPerRollout of
// zero or less leaves that bound off. Rollouts and their status are never
// pruned. It returns how many rows it deleted.
func (s *Store) Prune(ctx context.Context, keepPerRollout int, before time.Time) (int64, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("prune: %w", err)
	}
	defer tx.Rollback()
	var deleted int64
	count := func(res sql.Result) error {
		n, err := res.RowsAffected()
		deleted += n
		return err
	}
	for _, h := range histories {
		if !before.IsZero() {
			q := fmt.Sprintf(`DELETE FROM %s WHERE %s AND %s < ?`, h.table, h.prunable, h.timeColumn)
			res, err := tx.ExecContext(ctx, q, formatTime(before))
			if err == nil {
				err = count(res)
			}
			if err != nil {
				return 0, fmt.Errorf("prune %s by age: %w", h.table, err)
			}
		}
		if keepPerRollout > 0 {
			q := fmt.Sprintf(`
				DELETE FROM %[1]s WHERE id IN (
					SELECT id FROM (
						SELECT id, row_number() OVER (PARTITION BY rollout ORDER BY id DESC) AS n
						FROM %[1]s WHERE %[2]s
					) WHERE n > ?
				)`, h.table, h.prunable)
			res, err := tx.ExecContext(ctx, q, keepPerRollout)
			if err == nil {
				err = count(res)
			}
			if err != nil {
				return 0, fmt.Errorf("prune %s by count: %w", h.table, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("prune: %w", err)
	}
	return deleted, nil
}
