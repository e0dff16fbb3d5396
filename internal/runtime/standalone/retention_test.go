package standalone

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/controlapi"
	"github.com/pipit-dev/pipit/internal/sampleapp"
	"github.com/pipit-dev/pipit/internal/store"
	"github.com/pipit-dev/pipit/internal/testenv/fakeclock"
)

const day = 24 * time.Hour

// seedOldRollout stores, as an earlier daemon would have, a rollout that
// the files no longer name: events and checks from 40 days and from a day
// before t0, a command done now and one still pending since long ago.
func seedOldRollout(t *testing.T, dir string, t0 time.Time) {
	t.Helper()
	ctx := context.Background()
	s, err := store.Open(ctx, dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	save := func(at time.Time, reason string, done ...int64) {
		t.Helper()
		when := metav1.NewMicroTime(at)
		st := v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseIdle, Analysis: v1alpha1.AnalysisStatus{
			LastCheckAt: &when, LastResults: []v1alpha1.MetricResult{{Name: "error-rate", Verdict: v1alpha1.VerdictSuccessful}}}}
		ev := v1alpha1.Event{Time: when, Type: v1alpha1.EventNormal, Reason: reason, Phase: st.Phase, Actor: "pipit"}
		if err := s.SaveStatus(ctx, "old-api", nil, st, []v1alpha1.Event{ev}, done...); err != nil {
			t.Fatal(err)
		}
	}
	save(t0.Add(-40*day), "Ancient")
	for i, reason := range []string{"Recent1", "Recent2", "Recent3", "Recent4"} {
		save(t0.Add(-day+time.Duration(i)*time.Minute), reason)
	}
	done, err := s.EnqueueCommand(ctx, store.Command{Rollout: "old-api", Kind: "pause", At: t0.Add(-100 * day)})
	if err != nil {
		t.Fatal(err)
	}
	save(t0.Add(-day+time.Hour), "Paused", done) // done_at: the store's wall clock, now
	if _, err := s.EnqueueCommand(ctx, store.Command{Rollout: "old-api", Kind: "abort", At: t0.Add(-100 * day)}); err != nil {
		t.Fatal(err)
	}
}

// history counts what the state file holds of the old rollout, read
// beside the running daemon as any SQLite reader would.
type history struct {
	events                 []string
	samples, done, pending int
	status                 bool
}

func readHistory(t *testing.T, dir string) history {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dir, "pipit.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var h history
	rows, err := db.Query(`SELECT reason FROM events WHERE rollout = 'old-api' ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			t.Fatal(err)
		}
		h.events = append(h.events, r)
	}
	err = db.QueryRow(`SELECT
		(SELECT count(*) FROM samples WHERE rollout = 'old-api'),
		(SELECT count(*) FROM commands WHERE rollout = 'old-api' AND done_at IS NOT NULL),
		(SELECT count(*) FROM commands WHERE rollout = 'old-api' AND done_at IS NULL),
		(SELECT count(*) FROM rollouts WHERE name = 'old-api')`).Scan(&h.samples, &h.done, &h.pending, &h.status)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// waitHistory polls the state file until cond holds, for 20s at most.
func waitHistory(t *testing.T, dir, what string, cond func(history) bool) history {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		h := readHistory(t, dir)
		if cond(h) {
			return h
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the state still holds %+v", what, h)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRetentionPrunesAtStartAndThenEveryInterval: the daemon prunes the
// history by age and count as it starts, then again each time its clock
// passes the interval; recent history, pending commands and the statuses
// stay.
func TestRetentionPrunesAtStartAndThenEveryInterval(t *testing.T) {
	dir := t.TempDir()
	// The daemon's clock runs 20 days ahead of the wall clock that dates
	// done commands, so a command done now is 20 days old to it.
	t0 := time.Now().Add(20 * day)
	seedOldRollout(t, dir, t0)
	clock := fakeclock.New(t0)
	stable := app(t, sampleapp.Config{Version: "v1"})
	d, err := Start(context.Background(), Config{
		Sources: []Source{{File: "web.yaml", Data: rolloutYAML(stable.URL, "1h")}}, StateDir: dir, APIAddr: "127.0.0.1:0",
		Clock: clock, Retention: Retention{MaxAge: 30 * day, KeepPerRollout: 3, Interval: time.Hour},
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(context.Background()) })

	// At start: the 40-day-old event and check go, and the count bound
	// leaves the 3 most recent events (the done command is the only one).
	h := waitHistory(t, dir, "prune at start", func(h history) bool { return len(h.events) == 3 })
	if want := []string{"Recent3", "Recent4", "Paused"}; !slices.Equal(h.events, want) {
		t.Errorf("events after the prune at start: %v, want %v", h.events, want)
	}
	if h.samples != 3 || h.done != 1 || h.pending != 1 || !h.status {
		t.Errorf("after the prune at start: %+v; want 3 samples, the done and the pending command, the status", h)
	}

	// Half a month on, the command done 20 days before t0 is past the
	// retention; the checks of a day before t0 and the pending command
	// are not.
	if !clock.WaitForTimers(1, 10*time.Second) {
		t.Fatal("the pruner never waited for its next run")
	}
	clock.Advance(15 * day)
	h = waitHistory(t, dir, "periodic prune", func(h history) bool { return h.done == 0 })
	if len(h.events) != 3 || h.samples != 3 || h.pending != 1 || !h.status {
		t.Errorf("after the periodic prune: %+v; want 3 events and samples, the pending command, the status", h)
	}
}

// TestNegativeRetentionStartsNothing: a retention that means nothing is
// refused before the state is opened.
func TestNegativeRetentionStartsNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	for _, r := range []Retention{{MaxAge: -time.Hour}, {KeepPerRollout: -1}, {Interval: -time.Second}} {
		_, err := Start(context.Background(), Config{
			Sources: []Source{{File: "web.yaml", Data: rolloutYAML("http://127.0.0.1:1", "1h")}}, StateDir: dir,
			APIAddr: "127.0.0.1:0", Retention: r, Logger: slog.New(slog.DiscardHandler)})
		var cfgErr *ConfigError
		if !errors.As(err, &cfgErr) {
			t.Errorf("retention %+v: err = %v, want a ConfigError", r, err)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused retention made the state directory: %v", err)
	}
}

// TestChecksAreKeptAsSamples: each analysis check of a running rollout is
// saved as samples with its status, and read back over the control API:
// the check the status last names is there with the same results.
func TestChecksAreKeptAsSamples(t *testing.T) {
	stable := app(t, sampleapp.Config{Version: "v1"})
	canary := app(t, sampleapp.Config{Version: "v2"})
	d, c := startDaemon(t, t.TempDir(), rolloutYAML(stable.URL, "1h"))
	deployV2(t, c, canary.URL)
	// No load: each check finds no data, and is kept all the same.
	var first *metav1.MicroTime
	st := waitFor(t, c, 30*time.Second, "two checks", func(st v1alpha1.RolloutStatus) bool {
		if first == nil {
			first = st.Analysis.LastCheckAt
		}
		return first != nil && st.Analysis.LastCheckAt.After(first.Time)
	})
	ctx := context.Background()
	last := st.Analysis.LastCheckAt.Time
	got, err := c.Samples(ctx, "web", "", last)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 || !got[0].At.Equal(last) || got[0].MetricResult != st.Analysis.LastResults[0] {
		t.Fatalf("samples since the last check (%s): %+v; want first its results %+v", last, got, st.Analysis.LastResults)
	}
	all, err := c.Samples(ctx, "web", "request-success-rate", time.Time{})
	if err != nil || len(all) < 2 || !all[0].At.Before(last) {
		t.Errorf("every check's request-success-rate: %+v, %v; want two or more, the first before %s", all, err, last)
	}
	if _, err := d.Samples(ctx, "nope", "", time.Time{}); !errors.Is(err, controlapi.ErrNotFound) {
		t.Errorf("samples of an unknown rollout: err = %v, want ErrNotFound", err)
	}
}
