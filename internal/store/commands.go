package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Command is an operator's request (promote, abort, pause…) queued for a
// rollout. It is stored when accepted and stays pending until SaveStatus
// saves the status that carries its effect, so an accepted command
// survives a crash of the daemon.
type Command struct {
	// ID orders commands; EnqueueCommand assigns it.
	ID int64
	// Rollout is the name of the rollout the command is for.
	Rollout string
	// Kind names the command, such as "promote".
	Kind string
	// Args are the command's arguments as JSON; nil when it has none.
	Args json.RawMessage
	// Actor is who asked for it.
	Actor string
	// At is when it was asked for; EnqueueCommand sets it when zero.
	At time.Time
}

// EnqueueCommand stores c as pending and returns its ID. It returns an
// error wrapping ErrNotFound when c.Rollout is not stored.
func (s *Store) EnqueueCommand(ctx context.Context, c Command) (int64, error) {
	if c.Rollout == "" || c.Kind == "" {
		return 0, errors.New("enqueue command: rollout and kind are required")
	}
	var args sql.NullString
	if c.Args != nil {
		if !json.Valid(c.Args) {
			return 0, fmt.Errorf("enqueue %s for %s: args are not valid JSON", c.Kind, c.Rollout)
		}
		args = sql.NullString{String: string(c.Args), Valid: true}
	}
	if c.At.IsZero() {
		c.At = s.clock.Now()
	}
	// One statement checks that the rollout exists and inserts, so the
	// check cannot go stale before the insert. It runs in an immediate
	// transaction: an autocommit INSERT … SELECT starts as a reader, and a
	// reader whose snapshot another writer outdated gets SQLITE_BUSY at
	// once instead of waiting its busy_timeout.
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("enqueue %s for %s: %w", c.Kind, c.Rollout, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `
		INSERT INTO commands (rollout, kind, args, actor, at)
		SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM rollouts WHERE name = ?)`,
		c.Rollout, c.Kind, args, c.Actor, formatTime(c.At), c.Rollout)
	if err != nil {
		return 0, fmt.Errorf("enqueue %s for %s: %w", c.Kind, c.Rollout, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return 0, fmt.Errorf("enqueue %s for %s: %w", c.Kind, c.Rollout, err)
	} else if n == 0 {
		return 0, fmt.Errorf("enqueue %s: rollout %s: %w", c.Kind, c.Rollout, ErrNotFound)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("enqueue %s for %s: %w", c.Kind, c.Rollout, err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("enqueue %s for %s: %w", c.Kind, c.Rollout, err)
	}
	return id, nil
}

// PendingCommands returns the rollout's commands not yet done, in the
// order they were enqueued.
func (s *Store) PendingCommands(ctx context.Context, rollout string) ([]Command, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT id, rollout, kind, args, actor, at FROM commands
		WHERE rollout = ? AND done_at IS NULL ORDER BY id`, rollout)
	if err != nil {
		return nil, fmt.Errorf("read commands of %s: %w", rollout, err)
	}
	defer rows.Close()
	var out []Command
	for rows.Next() {
		var (
			c    Command
			args sql.NullString
			at   string
		)
		if err := rows.Scan(&c.ID, &c.Rollout, &c.Kind, &args, &c.Actor, &at); err != nil {
			return nil, fmt.Errorf("read commands of %s: %w", rollout, err)
		}
		if args.Valid {
			c.Args = json.RawMessage(args.String)
		}
		if c.At, err = parseTime(at); err != nil {
			return nil, fmt.Errorf("read commands of %s: %w", rollout, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read commands of %s: %w", rollout, err)
	}
	return out, nil
}
