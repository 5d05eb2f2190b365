package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// migration is one step of the schema. Version N is reached by applying
// migrations[0..N-1] in order; PRAGMA user_version records how far a file
// has come. Never edit a released migration: append a new one.
type migration struct {
	name string
	sql  string
}

// migrations is the schema history. Times are Unix nanoseconds (UTC);
// mobile identities are stored normalised (see ParseMobileID). Tables are
// STRICT so that a wrong type is an error, not a silent conversion.
var migrations = []migration{
	{name: "users, terminals, contacts", sql: `
CREATE TABLE users (
	im_id      TEXT PRIMARY KEY,
	display    TEXT NOT NULL DEFAULT '',
	realm      TEXT NOT NULL DEFAULT '',
	ha1_md5    TEXT NOT NULL DEFAULT '',
	ha1_sha256 TEXT NOT NULL DEFAULT '',
	created    INTEGER NOT NULL
) STRICT;

-- AUTOINCREMENT: a removed terminal's ID is never handed out again, so an
-- API client holding an old ID cannot act on someone else's terminal.
CREATE TABLE terminals (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	im_id        TEXT NOT NULL REFERENCES users(im_id) ON DELETE CASCADE,
	mobile_type  TEXT NOT NULL CHECK (mobile_type IN ('imsi', 'mac', 'msisdn')),
	mobile_value TEXT NOT NULL,
	kind         TEXT NOT NULL CHECK (kind IN ('legacy', 'smart')),
	caps         INTEGER NOT NULL CHECK (caps BETWEEN 1 AND 15),
	active       INTEGER NOT NULL DEFAULT 0 CHECK (active IN (0, 1)),
	created      INTEGER NOT NULL,
	UNIQUE (mobile_type, mobile_value)
) STRICT;
CREATE INDEX terminals_im_id ON terminals(im_id);
-- The rule "at most one active terminal per IM ID", held by the database
-- itself: no code path, and no second process, can break it.
CREATE UNIQUE INDEX terminals_one_active ON terminals(im_id) WHERE active;

CREATE TABLE contacts (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	owner        TEXT NOT NULL REFERENCES users(im_id) ON DELETE CASCADE,
	im_id        TEXT NOT NULL,
	domain       TEXT NOT NULL DEFAULT '',
	mobile_type  TEXT NOT NULL DEFAULT '',
	mobile_value TEXT NOT NULL DEFAULT '',
	display      TEXT NOT NULL DEFAULT '',
	created      INTEGER NOT NULL,
	UNIQUE (owner, im_id, domain, mobile_type, mobile_value)
) STRICT;
`},
	{name: "bindings, call records", sql: `
CREATE TABLE bindings (
	im_id       TEXT NOT NULL REFERENCES users(im_id) ON DELETE CASCADE,
	contact     TEXT NOT NULL,
	terminal_id INTEGER REFERENCES terminals(id) ON DELETE CASCADE,
	instance    TEXT NOT NULL DEFAULT '',
	source      TEXT NOT NULL DEFAULT '',
	transport   TEXT NOT NULL DEFAULT '',
	expires     INTEGER NOT NULL,
	updated     INTEGER NOT NULL,
	PRIMARY KEY (im_id, contact)
) STRICT;
CREATE INDEX bindings_terminal ON bindings(terminal_id);

-- No foreign keys: a call record is history and outlives the user and the
-- terminal it names.
CREATE TABLE call_records (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	call_id     TEXT NOT NULL,
	caller      TEXT NOT NULL DEFAULT '',
	callee      TEXT NOT NULL DEFAULT '',
	terminal_id INTEGER,
	scp_outcome TEXT NOT NULL DEFAULT '',
	started     INTEGER NOT NULL,
	answered    INTEGER,
	ended       INTEGER,
	end_cause   TEXT NOT NULL DEFAULT '',
	stats       TEXT NOT NULL DEFAULT ''
) STRICT;
`},
	{name: "media, pending messages", sql: `
-- Stored media of store-and-link. The link's token itself is never stored:
-- the key is SHA-256 of the token, so a copy of the database does not give
-- working links and a lookup by key reveals nothing about other tokens.
-- The bytes are inline (data) or in a file (path); after expiry the purge
-- drops the bytes and keeps the row a while as a tombstone, so the link
-- answers 410 Gone rather than 404.
CREATE TABLE media (
	token_hash   BLOB PRIMARY KEY CHECK (length(token_hash) = 32),
	owner        TEXT NOT NULL,
	sender       TEXT NOT NULL DEFAULT '',
	content_type TEXT NOT NULL,
	size         INTEGER NOT NULL CHECK (size >= 0),
	sha256       BLOB NOT NULL CHECK (length(sha256) = 32),
	created      INTEGER NOT NULL,
	expires      INTEGER NOT NULL,
	data         BLOB,
	path         TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX media_expires ON media(expires);

-- MESSAGEs kept for a recipient who was absent or busy, delivered when the
-- terminal is next found online. reply_* is where the delivery notice to
-- the sender goes.
CREATE TABLE pending_messages (
	id              INTEGER PRIMARY KEY AUTOINCREMENT,
	recipient       TEXT NOT NULL,
	sender          TEXT NOT NULL DEFAULT '',
	sender_display  TEXT NOT NULL DEFAULT '',
	content_type    TEXT NOT NULL,
	body            BLOB NOT NULL,
	reply_uri       TEXT NOT NULL DEFAULT '',
	reply_dest      TEXT NOT NULL DEFAULT '',
	reply_transport TEXT NOT NULL DEFAULT '',
	created         INTEGER NOT NULL,
	expires         INTEGER NOT NULL,
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_attempt    INTEGER NOT NULL
) STRICT;
CREATE INDEX pending_due ON pending_messages(next_attempt);
CREATE INDEX pending_recipient ON pending_messages(recipient);
`},
	{name: "trunks, DIDs, bindings keyed by instance", sql: `
-- Trunks: the telephone network's way in, known by their source ranges.
CREATE TABLE trunks (
	name         TEXT PRIMARY KEY,
	country_code TEXT NOT NULL DEFAULT '',
	identity     TEXT NOT NULL CHECK (identity IN ('pai', 'from')),
	created      INTEGER NOT NULL
) STRICT;
-- A range (masked, as registry.ParseCIDR writes it) belongs to one trunk,
-- so that a source address never names two trunks of equal precedence.
CREATE TABLE trunk_cidrs (
	cidr  TEXT PRIMARY KEY,
	trunk TEXT NOT NULL REFERENCES trunks(name) ON DELETE CASCADE
) STRICT;
CREATE INDEX trunk_cidrs_trunk ON trunk_cidrs(trunk);

-- A number belongs to one user: the primary key holds the rule, whoever
-- writes the row.
CREATE TABLE dids (
	number   TEXT PRIMARY KEY CHECK (number GLOB '+[1-9][0-9]*'),
	im_id    TEXT NOT NULL REFERENCES users(im_id) ON DELETE CASCADE,
	fallback TEXT NOT NULL DEFAULT 'none' CHECK (fallback IN ('none', 'terminal')),
	created  INTEGER NOT NULL
) STRICT;
CREATE INDEX dids_im_id ON dids(im_id);

-- Bindings are keyed by the client's +sip.instance when it sent one (RFC
-- 5626 §6): a client that re-registers from a new port replaces its login
-- rather than adding a second. binding_key is the instance, or the Contact
-- for a client without one; a Contact reaches one client, so it is unique
-- too.
CREATE TABLE bindings_v4 (
	im_id       TEXT NOT NULL REFERENCES users(im_id) ON DELETE CASCADE,
	binding_key TEXT NOT NULL,
	contact     TEXT NOT NULL,
	terminal_id INTEGER REFERENCES terminals(id) ON DELETE CASCADE,
	instance    TEXT NOT NULL DEFAULT '',
	source      TEXT NOT NULL DEFAULT '',
	transport   TEXT NOT NULL DEFAULT '',
	expires     INTEGER NOT NULL,
	updated     INTEGER NOT NULL,
	PRIMARY KEY (im_id, binding_key),
	UNIQUE (im_id, contact)
) STRICT;
INSERT INTO bindings_v4 (im_id, binding_key, contact, terminal_id, instance, source, transport, expires, updated)
	SELECT im_id, CASE WHEN instance <> '' THEN instance ELSE contact END, contact, terminal_id, instance, source, transport, expires, updated
	FROM bindings WHERE true ORDER BY updated DESC
	ON CONFLICT DO NOTHING;
DROP TABLE bindings;
ALTER TABLE bindings_v4 RENAME TO bindings;
CREATE INDEX bindings_terminal ON bindings(terminal_id);
`},
	{name: "dialog snapshots", sql: `
-- The confirmed calls each node holds, kept so that a node restarted after
-- a crash can end them with BYE on every leg. legs is JSON: the dialogs are
-- read back only whole, by the node that wrote them.
CREATE TABLE dialog_snapshots (
	node    TEXT NOT NULL,
	key     TEXT NOT NULL,
	call_id TEXT NOT NULL,
	started INTEGER NOT NULL,
	legs    TEXT NOT NULL,
	PRIMARY KEY (node, key)
) STRICT;
`},
	{name: "call record lookups", sql: `
-- calls list reads a time window newest first, or one user's calls.
CREATE INDEX call_records_started ON call_records(started);
CREATE INDEX call_records_callee ON call_records(callee);
-- The failure answer the caller got and its Q.850 cause; 0: none sent.
ALTER TABLE call_records ADD COLUMN sip_status INTEGER NOT NULL DEFAULT 0;
ALTER TABLE call_records ADD COLUMN q850_cause INTEGER NOT NULL DEFAULT 0;
`},
	{name: "leases", sql: `
-- One row per job that must run on one node at a time (see
-- registry.Lease); epoch grows each time the lease changes hands.
CREATE TABLE leases (
	name    TEXT PRIMARY KEY,
	owner   TEXT NOT NULL,
	epoch   INTEGER NOT NULL,
	expires INTEGER NOT NULL
) STRICT;
`},
	{name: "call records name their node", sql: `
-- Nodes sharing a store tell their calls apart; '' for the calls before.
ALTER TABLE call_records ADD COLUMN node TEXT NOT NULL DEFAULT '';
`},
	{name: "call ringing time", sql: `
-- When the first 180 or 183 reached the caller: the post-dial delay is
-- ringing - started (ITU-T E.431). NULL: the call never rang.
ALTER TABLE call_records ADD COLUMN ringing INTEGER;
`},
}

// migrate brings the database on db (whose transactions begin IMMEDIATE)
// up to len(migs). Each step runs in its own transaction and re-reads the
// version inside it, so two processes opening one old file at once apply
// each step exactly once.
func migrate(ctx context.Context, db *sql.DB, migs []migration) (int, error) {
	var v int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	if v > len(migs) {
		return v, fmt.Errorf("database schema version %d is newer than this program knows (%d): use a newer b2bua", v, len(migs))
	}
	for v < len(migs) {
		next, err := migrateOne(ctx, db, migs)
		if err != nil {
			return v, err
		}
		v = next
	}
	return v, nil
}

func migrateOne(ctx context.Context, db *sql.DB, migs []migration) (int, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	var v int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	if v >= len(migs) {
		return v, nil // another process finished the work
	}
	m := migs[v]
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return v, fmt.Errorf("migration %d (%s): %w", v+1, m.name, err)
	}
	// user_version lives in the file header and is written by this
	// transaction, so the step and its version commit together.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
		return v, fmt.Errorf("migration %d (%s): set version: %w", v+1, m.name, err)
	}
	if err := tx.Commit(); err != nil {
		return v, fmt.Errorf("migration %d (%s): commit: %w", v+1, m.name, err)
	}
	return v + 1, nil
}
