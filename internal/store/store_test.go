package store

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

func TestOpenCreatesPrivateDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "nested")
	openStore(t, dir)
	info, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o700 {
		t.Errorf("state directory mode = %04o, want 0700", perm)
	}
	if _, err := os.Stat(filepath.Join(dir, dbFile)); err != nil {
		t.Errorf("database file: %v", err)
	}
}

func TestEveryConnectionGetsThePragmas(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	// Hold several connections at once so the pool has to open new ones.
	var conns []*sql.Conn
	for range 4 {
		c, err := s.db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for i, c := range conns {
		var journal string
		var sync, fk, busy int
		for q, dst := range map[string]any{
			"PRAGMA journal_mode": &journal, "PRAGMA synchronous": &sync,
			"PRAGMA foreign_keys": &fk, "PRAGMA busy_timeout": &busy,
		} {
			if err := c.QueryRowContext(ctx, q).Scan(dst); err != nil {
				t.Fatalf("conn %d: %s: %v", i, q, err)
			}
		}
		if journal != "wal" || sync != 2 || fk != 1 || busy != int(busyTimeout.Milliseconds()) {
			t.Errorf("conn %d: journal_mode=%s synchronous=%d foreign_keys=%d busy_timeout=%d, want wal 2 1 %d",
				i, journal, sync, fk, busy, busyTimeout.Milliseconds())
		}
		c.Close()
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	status := checked(2, []v1alpha1.MetricResult{{Name: "error-rate", Verdict: v1alpha1.VerdictNoData}})
	status.Phase, status.CurrentStep = v1alpha1.PhaseAwaitingDecision, 3
	if err := s.SaveStatus(ctx, "web", []byte("spec: 1"), status, []v1alpha1.Event{event(1, "Started", 0)}); err != nil {
		t.Fatal(err)
	}
	id, err := s.EnqueueCommand(ctx, Command{Rollout: "web", Kind: "promote", Actor: "ana"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStore(t, dir)
	r, err := s.Rollout(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Spec) != "spec: 1" || r.Status.Phase != v1alpha1.PhaseAwaitingDecision || r.Status.CurrentStep != 3 {
		t.Errorf("rollout after reopen = %+v", r)
	}
	evs, err := s.Events(ctx, "web", 0)
	if err != nil || len(evs) != 1 || evs[0].Reason != "Started" {
		t.Errorf("events after reopen = %+v, %v", evs, err)
	}
	cmds, err := s.PendingCommands(ctx, "web")
	if err != nil || len(cmds) != 1 || cmds[0].ID != id {
		t.Errorf("pending commands after reopen = %+v, %v", cmds, err)
	}
	smp, err := s.Samples(ctx, "web", "", at(0))
	if err != nil || len(smp) != 1 {
		t.Errorf("samples after reopen = %+v, %v", smp, err)
	}
}

func TestSecondOpenOfOneDirectoryFails(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	first, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(ctx, dir, Options{})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: err = %v, want ErrLocked", err)
	}
	if want := "pid " + strconv.Itoa(os.Getpid()); !strings.Contains(err.Error(), want) {
		t.Errorf("lock error %q does not name the holder (%s)", err, want)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	// Close released the lock.
	openStore(t, dir)
}

func TestMigrationsFromEmptyDatabase(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	// An empty database file, as left by a tool that only touched it.
	raw, err := sql.Open("sqlite", filepath.Join(dir, dbFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.ExecContext(ctx, "PRAGMA user_version"); err != nil {
		t.Fatal(err)
	}
	raw.Close()

	s := openStore(t, dir)
	v, err := userVersion(ctx, s.db)
	if err != nil {
		t.Fatal(err)
	}
	if v != len(migrations) {
		t.Errorf("user_version = %d, want %d", v, len(migrations))
	}
	for _, table := range []string{"rollouts", "events", "commands", "samples"} {
		var n int
		err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?", table).Scan(&n)
		if err != nil || n != 1 {
			t.Errorf("table %s: count %d, %v", table, n, err)
		}
	}
	// Opening again applies nothing twice (a second CREATE TABLE would fail).
	s.Close()
	openStore(t, dir)
}

// TestMigrationKeepsVersionOneSamples: a database of schema 1 (before
// samples said whether they were a dry run) opens with its samples, each
// read as no dry run.
func TestMigrationKeepsVersionOneSamples(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	raw, err := sql.Open("sqlite", filepath.Join(dir, dbFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := applyMigration(ctx, raw, 1, migrations[0]); err != nil {
		t.Fatal(err)
	}
	_, err = raw.ExecContext(ctx, `
		INSERT INTO rollouts (name, spec, status, updated_at) VALUES ('web', '', '{}', ?);
		INSERT INTO samples (rollout, metric, at, canary, verdict, message) VALUES ('web', 'error-rate', ?, 1.5, 'Successful', 'ok');`,
		formatTime(at(1)), formatTime(at(1)))
	raw.Close()
	if err != nil {
		t.Fatal(err)
	}

	s := openStore(t, dir)
	got, err := s.Samples(ctx, "web", "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Name != "error-rate" || *got[0].Canary != 1.5 || got[0].DryRun {
		t.Errorf("version 1 samples after migrating: %+v", got)
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	future := len(migrations) + 1
	if _, err := s.db.ExecContext(ctx, "PRAGMA user_version = "+strconv.Itoa(future)); err != nil {
		t.Fatal(err)
	}
	s.Close()

	_, err = Open(ctx, dir, Options{})
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open of a future schema: err = %v, want ErrSchemaTooNew", err)
	}
	if !strings.Contains(err.Error(), strconv.Itoa(future)) {
		t.Errorf("error %q does not say which version it found", err)
	}
	// The refused Open released its lock: the directory is not left held.
	lock, err := lockDir(dir)
	if err != nil {
		t.Fatalf("lock after refused Open: %v", err)
	}
	lock.release()
}
