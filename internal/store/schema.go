package store

// migrations[i] brings the schema from version i to version i+1 (PRAGMA
// user_version). Entries are never edited once released: a change to the
// schema is a new entry at the end.
//
// Times are TEXT in timeLayout (UTC, nanoseconds, fixed width) so that
// they compare in time order. Everything that belongs to a rollout goes
// with it when the rollout is deleted.
var migrations = []string{
	// 1: rollouts, events, commands, samples.
	`
CREATE TABLE rollouts (
	name       TEXT PRIMARY KEY,
	spec       BLOB NOT NULL,
	status     TEXT NOT NULL, -- v1alpha1.RolloutStatus as JSON
	updated_at TEXT NOT NULL
);

CREATE TABLE events (
	id      INTEGER PRIMARY KEY AUTOINCREMENT,
	rollout TEXT NOT NULL REFERENCES rollouts(name) ON DELETE CASCADE,
	at      TEXT NOT NULL,
	type    TEXT NOT NULL,
	reason  TEXT NOT NULL,
	message TEXT NOT NULL,
	phase   TEXT NOT NULL,
	step    INTEGER NOT NULL,
	weight  INTEGER NOT NULL,
	actor   TEXT NOT NULL
);
CREATE INDEX events_by_rollout ON events(rollout, id);

CREATE TABLE commands (
	id      INTEGER PRIMARY KEY AUTOINCREMENT,
	rollout TEXT NOT NULL REFERENCES rollouts(name) ON DELETE CASCADE,
	kind    TEXT NOT NULL,
	args    TEXT,
	actor   TEXT NOT NULL,
	at      TEXT NOT NULL,
	done_at TEXT
);
CREATE INDEX commands_pending ON commands(rollout, id) WHERE done_at IS NULL;

CREATE TABLE samples (
	id      INTEGER PRIMARY KEY AUTOINCREMENT,
	rollout TEXT NOT NULL REFERENCES rollouts(name) ON DELETE CASCADE,
	metric  TEXT NOT NULL,
	at      TEXT NOT NULL,
	canary  REAL,
	stable  REAL,
	verdict TEXT NOT NULL,
	message TEXT NOT NULL
);
CREATE INDEX samples_by_metric ON samples(rollout, metric, at);
CREATE INDEX samples_by_rollout ON samples(rollout, id);
`,
	// 2: a sample says whether its metric was a dry run, which reports
	// without deciding.
	`ALTER TABLE samples ADD COLUMN dry_run INTEGER NOT NULL DEFAULT 0;`,
	// 3: named tokens of the control API, each with a role, kept as the
	// SHA-256 of the secret (the secret itself is shown once).
	`
CREATE TABLE tokens (
	name       TEXT PRIMARY KEY,
	role       TEXT NOT NULL,
	hash       BLOB NOT NULL UNIQUE,
	created_at TEXT NOT NULL
);
`,
}
