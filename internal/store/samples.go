package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// Sample is one metric's result at one analysis check.
type Sample struct {
	// At is when the check ran, in UTC.
	At time.Time
	// MetricResult is the metric's name, values and verdict.
	v1alpha1.MetricResult
}

// AddSamples stores the results of one check of a rollout made at at. It
// returns an error wrapping ErrNotFound when the rollout is not stored.
func (s *Store) AddSamples(ctx context.Context, rollout string, at time.Time, results []v1alpha1.MetricResult) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("add samples of %s: %w", rollout, err)
	}
	defer tx.Rollback()
	var one int
	err = tx.QueryRowContext(ctx, `SELECT 1 FROM rollouts WHERE name = ?`, rollout).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("add samples: rollout %s: %w", rollout, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("add samples of %s: %w", rollout, err)
	}
	stmt, err := tx.PrepareContext(ctx, `
		INSERT INTO samples (rollout, metric, at, canary, stable, verdict, message)
		VALUES (?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("add samples of %s: %w", rollout, err)
	}
	defer stmt.Close()
	when := formatTime(at)
	for _, r := range results {
		_, err := stmt.ExecContext(ctx, rollout, r.Name, when, nullFloat(r.Canary), nullFloat(r.Stable),
			string(r.Verdict), r.Message)
		if err != nil {
			return fmt.Errorf("add samples of %s: %w", rollout, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("add samples of %s: %w", rollout, err)
	}
	return nil
}

// Samples returns a rollout's samples of metric taken at or after since,
// oldest first; an empty metric means every metric.
func (s *Store) Samples(ctx context.Context, rollout, metric string, since time.Time) ([]Sample, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT at, metric, canary, stable, verdict, message FROM samples
		WHERE rollout = ? AND (? = '' OR metric = ?) AND at >= ?
		ORDER BY at, id`, rollout, metric, metric, formatTime(since))
	if err != nil {
		return nil, fmt.Errorf("read samples of %s: %w", rollout, err)
	}
	defer rows.Close()
	var out []Sample
	for rows.Next() {
		var (
			smp            Sample
			at, verdict    string
			canary, stable sql.NullFloat64
		)
		if err := rows.Scan(&at, &smp.Name, &canary, &stable, &verdict, &smp.Message); err != nil {
			return nil, fmt.Errorf("read samples of %s: %w", rollout, err)
		}
		if smp.At, err = parseTime(at); err != nil {
			return nil, fmt.Errorf("read samples of %s: %w", rollout, err)
		}
		smp.Canary = floatPtr(canary)
		smp.Stable = floatPtr(stable)
		smp.Verdict = v1alpha1.Verdict(verdict)
		out = append(out, smp)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read samples of %s: %w", rollout, err)
	}
	return out, nil
}

func nullFloat(f *float64) sql.NullFloat64 {
	if f == nil {
		return sql.NullFloat64{}
	}
	return sql.NullFloat64{Float64: *f, Valid: true}
}

func floatPtr(f sql.NullFloat64) *float64 {
	if !f.Valid {
		return nil
	}
	v := f.Float64
	return &v
}
