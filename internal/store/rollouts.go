package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// Record is one rollout as stored.
type Record struct {
	// Name identifies the rollout.
	Name string
	// Spec is the rollout's YAML or JSON exactly as it was given.
	Spec []byte
	// Status is the last status saved.
	Status v1alpha1.RolloutStatus
	// UpdatedAt is when the status was last saved, in UTC.
	UpdatedAt time.Time
}

// SaveStatus records a rollout's spec and status, appends its events,
// stores the results of the analysis check the status carries when it is
// a new one (see Sample), and marks the commands doneCommandIDs as done,
// all in one transaction: a command is consumed, and a check's samples
// kept, exactly when the status that carries them is saved. It fails, saving nothing, if one of those commands is not pending
// for this rollout. Events are kept in the order given, after earlier ones.
func (s *Store) SaveStatus(ctx context.Context, name string, spec []byte, status v1alpha1.RolloutStatus,
	events []v1alpha1.Event, doneCommandIDs ...int64) error {
	if name == "" {
		return errors.New("save status: empty rollout name")
	}
	statusJSON, err := json.Marshal(status)
	if err != nil {
		return fmt.Errorf("save status of %s: %w", name, err)
	}
	if spec == nil {
		spec = []byte{}
	}
	now := formatTime(s.clock.Now())

	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("save status of %s: %w", name, err)
	}
	defer tx.Rollback()
	checkedAt, checked, err := newCheck(ctx, tx, name, status)
	if err != nil {
		return fmt.Errorf("save status of %s: %w", name, err)
	}
	// An upsert, never INSERT OR REPLACE: a replace deletes the row first,
	// and the delete would cascade to the rollout's events.
	_, err = tx.ExecContext(ctx, `
		INSERT INTO rollouts (name, spec, status, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET
			spec = excluded.spec, status = excluded.status, updated_at = excluded.updated_at`,
		name, spec, string(statusJSON), now)
	if err != nil {
		return fmt.Errorf("save status of %s: %w", name, err)
	}
	if err := insertEvents(ctx, tx, name, events); err != nil {
		return fmt.Errorf("save events of %s: %w", name, err)
	}
	if checked {
		if err := insertSamples(ctx, tx, name, checkedAt, status.Analysis.LastResults); err != nil {
			return fmt.Errorf("save samples of %s: %w", name, err)
		}
	}
	for _, id := range doneCommandIDs {
		if err := markDone(ctx, tx, name, id, now); err != nil {
			return fmt.Errorf("save status of %s: %w", name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("save status of %s: %w", name, err)
	}
	return nil
}

func insertEvents(ctx context.Context, tx *sql.Tx, name string, events []v1alpha1.Event) error {
	if len(events) == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, `
		INSERT INTO events (rollout, at, type, reason, message, phase, step, weight, actor)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, e := range events {
		_, err := stmt.ExecContext(ctx, name, formatTime(e.Time.Time), e.Type, e.Reason, e.Message,
			string(e.Phase), e.Step, int64(e.Weight), e.Actor)
		if err != nil {
			return err
		}
	}
	return nil
}

func markDone(ctx context.Context, tx *sql.Tx, name string, id int64, now string) error {
	res, err := tx.ExecContext(ctx,
		`UPDATE commands SET done_at = ? WHERE id = ? AND rollout = ? AND done_at IS NULL`, now, id, name)
	if err != nil {
		return fmt.Errorf("mark command %d done: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("mark command %d done: %w", id, err)
	}
	if n != 1 {
		return fmt.Errorf("command %d is not pending for rollout %s", id, name)
	}
	return nil
}

// Rollout returns the stored rollout name, or an error wrapping ErrNotFound.
func (s *Store) Rollout(ctx context.Context, name string) (Record, error) {
	row := s.db.QueryRowContext(ctx,
		`SELECT name, spec, status, updated_at FROM rollouts WHERE name = ?`, name)
	r, err := scanRecord(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Record{}, fmt.Errorf("rollout %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return Record{}, fmt.Errorf("read rollout %s: %w", name, err)
	}
	return r, nil
}

// Rollouts returns every stored rollout, sorted by name.
func (s *Store) Rollouts(ctx context.Context) ([]Record, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT name, spec, status, updated_at FROM rollouts ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list rollouts: %w", err)
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, fmt.Errorf("list rollouts: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list rollouts: %w", err)
	}
	return out, nil
}

func scanRecord(row interface{ Scan(...any) error }) (Record, error) {
	var (
		r       Record
		status  string
		updated string
	)
	if err := row.Scan(&r.Name, &r.Spec, &status, &updated); err != nil {
		return Record{}, err
	}
	if err := json.Unmarshal([]byte(status), &r.Status); err != nil {
		return Record{}, fmt.Errorf("stored status of %s: %w", r.Name, err)
	}
	t, err := parseTime(updated)
	if err != nil {
		return Record{}, err
	}
	r.UpdatedAt = t
	return r, nil
}

// Events returns a rollout's events, oldest first. With limit > 0 it
// returns only the most recent limit events, still oldest first. A rollout
// that is not stored has no events.
func (s *Store) Events(ctx context.Context, name string, limit int) ([]v1alpha1.Event, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := s.db.QueryContext(ctx, `
		SELECT at, type, reason, message, phase, step, weight, actor FROM (
			SELECT * FROM events WHERE rollout = ? ORDER BY id DESC LIMIT ?
		) ORDER BY id`, name, limit)
	if err != nil {
		return nil, fmt.Errorf("read events of %s: %w", name, err)
	}
	defer rows.Close()
	var out []v1alpha1.Event
	for rows.Next() {
		var (
			e      v1alpha1.Event
			at     string
			phase  string
			weight int64
		)
		if err := rows.Scan(&at, &e.Type, &e.Reason, &e.Message, &phase, &e.Step, &weight, &e.Actor); err != nil {
			return nil, fmt.Errorf("read events of %s: %w", name, err)
		}
		t, err := parseTime(at)
		if err != nil {
			return nil, fmt.Errorf("read events of %s: %w", name, err)
		}
		e.Time = metav1.NewMicroTime(t)
		e.Phase = v1alpha1.Phase(phase)
		e.Weight = v1alpha1.Percent(weight)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read events of %s: %w", name, err)
	}
	return out, nil
}
