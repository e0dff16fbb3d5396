package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// Sample is one metric's result at one analysis check. SaveStatus records
// them: a status that carries a new check (Analysis.LastCheckAt) has its
// Analysis.LastResults stored as samples taken at that time, to the
// microsecond as the status keeps it.
type Sample struct {
	// At is when the check ran, in UTC, to the microsecond.
	At time.Time
	// MetricResult is the metric's name, values and verdict.
	v1alpha1.MetricResult
}

// newCheck returns the time of the analysis check that status carries
// when it is not the check already saved for the rollout, so that each
// check's results are recorded once however often its status is saved.
// It runs in tx, before the status is upserted.
func newCheck(ctx context.Context, tx *sql.Tx, name string, status v1alpha1.RolloutStatus) (time.Time, bool, error) {
	if status.Analysis.LastCheckAt == nil || len(status.Analysis.LastResults) == 0 {
		return time.Time{}, false, nil
	}
	// The saved status keeps microseconds (metav1.MicroTime's JSON): the
	// samples keep the same time, so they compare with it.
	checked := status.Analysis.LastCheckAt.Truncate(time.Microsecond)
	var saved string
	err := tx.QueryRowContext(ctx, `SELECT status FROM rollouts WHERE name = ?`, name).Scan(&saved)
	if errors.Is(err, sql.ErrNoRows) {
		return checked, true, nil
	}
	if err != nil {
		return time.Time{}, false, err
	}
	var prev v1alpha1.RolloutStatus
	if err := json.Unmarshal([]byte(saved), &prev); err != nil {
		return time.Time{}, false, fmt.Errorf("stored status of %s: %w", name, err)
	}
	if last := prev.Analysis.LastCheckAt; last != nil && last.Time.Equal(checked) {
		return time.Time{}, false, nil
	}
	return checked, true, nil
}

// insertSamples stores the results of one check of a rollout made at at.
func insertSamples(ctx context.Context, tx *sql.Tx, rollout string, at time.Time, results []v1alpha1.MetricResult) error {
	stmt, err := tx.PrepareContext(ctx, `
		INSERT INTO samples (rollout, metric, at, canary, stable, verdict, message, dry_run)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	when := formatTime(at)
	for _, r := range results {
		_, err := stmt.ExecContext(ctx, rollout, r.Name, when, nullFloat(r.Canary), nullFloat(r.Stable),
			string(r.Verdict), r.Message, r.DryRun)
		if err != nil {
			return err
		}
	}
	return nil
}

// Samples returns a rollout's samples of metric taken at or after since,
// oldest first; an empty metric means every metric.
func (s *Store) Samples(ctx context.Context, rollout, metric string, since time.Time) ([]Sample, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT at, metric, canary, stable, verdict, message, dry_run FROM samples
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
		if err := rows.Scan(&at, &smp.Name, &canary, &stable, &verdict, &smp.Message, &smp.DryRun); err != nil {
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
