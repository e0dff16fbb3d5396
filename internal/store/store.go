// Package store keeps the standalone daemon's durable state in SQLite: the
// rollouts and their status, their events, the operators' queued commands
// and the metric samples.
//
// The daemon writes state before it acts on it, so every write that goes
// with an action is one transaction (SaveStatus upserts the status, appends
// its events and consumes the commands it carried out, or does none of it).
// A kill -9 at any moment therefore leaves a database that is consistent
// and holds everything the daemon acted on.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	// The pure-Go SQLite driver, registered as "sqlite".
	_ "modernc.org/sqlite"

	"github.com/pipit-dev/pipit/internal/rollout"
)

// File names inside the state directory.
const (
	dbFile   = "pipit.db"
	lockFile = "pipit.lock"
)

// busyTimeout is how long a connection waits for another one's write lock
// before it gives up with SQLITE_BUSY. Writes are short, but a starved
// machine with synchronous fsyncs stretched them past 5s in tests, and a
// failed write costs more than a slow one: state is written before it is
// acted on.
const busyTimeout = 30 * time.Second

var (
	// ErrNotFound is returned when a rollout is not in the store.
	ErrNotFound = errors.New("not found")
	// ErrLocked is returned by Open when another process holds the state
	// directory.
	ErrLocked = errors.New("state directory is locked")
	// ErrSchemaTooNew is returned by Open when the database was written by
	// a newer pipit whose schema this one does not know.
	ErrSchemaTooNew = errors.New("database schema is newer than this pipit")
)

// Store is the daemon's durable state in one state directory. It is safe
// for concurrent use.
type Store struct {
	db    *sql.DB
	lock  *dirLock
	clock rollout.Clock // dates what is stored
}

// Options are what a Store takes from the runtime that opens it.
type Options struct {
	// Clock dates the commands and statuses stored; nil is the wall clock.
	Clock rollout.Clock
	// Log receives the schema migrations applied; nil discards them.
	Log *slog.Logger
}

// Open opens the state in dir, creating dir (mode 0700) and the database if
// they are missing and bringing the schema up to date. It takes an
// exclusive lock on dir that lasts until Close, so two daemons never share
// one state directory.
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	db, err := openDB(ctx, filepath.Join(dir, dbFile), log)
	if err != nil {
		lock.release()
		return nil, err
	}
	return &Store{db: db, lock: lock, clock: rollout.ClockOrSystem(opts.Clock)}, nil
}

// Close closes the database and releases the state directory's lock.
func (s *Store) Close() error {
	err := s.db.Close()
	if lerr := s.lock.release(); err == nil {
		err = lerr
	}
	return err
}

// dsn builds the data source name. The pragmas are DSN parameters rather
// than statements run once because database/sql pools connections: the
// driver runs them on every new connection. Transactions begin IMMEDIATE,
// taking the write lock up front, so two writers queue on busy_timeout
// instead of one failing when it upgrades a read lock.
func dsn(path string) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	return path + "?" + q.Encode()
}

func openDB(ctx context.Context, path string, log *slog.Logger) (*sql.DB, error) {
	// The driver cuts the DSN at the first '?', so such a path would
	// silently name another file.
	if strings.Contains(path, "?") {
		return nil, fmt.Errorf("state directory %q: a path with '?' is not supported", filepath.Dir(path))
	}
	db, err := sql.Open("sqlite", dsn(path))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := checkWAL(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := migrate(ctx, db, log); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return db, nil
}

// checkWAL makes sure the database really is in WAL mode: SQLite falls back
// to another journal mode without an error where WAL is impossible, and the
// readers-beside-a-writer guarantees depend on it.
func checkWAL(ctx context.Context, db *sql.DB) error {
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return err
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal mode is %q, want WAL (is the state directory on a local file system?)", mode)
	}
	return nil
}

// migrate applies the migrations the database lacks, each in its own
// transaction together with the user_version that records it.
func migrate(ctx context.Context, db *sql.DB, log *slog.Logger) error {
	version, err := userVersion(ctx, db)
	if err != nil {
		return err
	}
	if version > len(migrations) {
		return fmt.Errorf("%w: it has schema version %d, this pipit knows up to %d; run a newer pipit",
			ErrSchemaTooNew, version, len(migrations))
	}
	for v := version; v < len(migrations); v++ {
		if err := applyMigration(ctx, db, v+1, migrations[v]); err != nil {
			return fmt.Errorf("migrate schema to version %d: %w", v+1, err)
		}
		log.DebugContext(ctx, "applied schema migration", "version", v+1)
	}
	return nil
}

func userVersion(ctx context.Context, db *sql.DB) (int, error) {
	var v int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

func applyMigration(ctx context.Context, db *sql.DB, version int, stmts string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, stmts); err != nil {
		return err
	}
	// PRAGMA takes no bound parameters; version is an int we made.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", version)); err != nil {
		return err
	}
	return tx.Commit()
}

// timeLayout is fixed-width so that stored times sort as text in time
// order; times are stored in UTC with nanoseconds.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("stored time %q: %w", s, err)
	}
	return t, nil
}
