package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migration is one step of the schema. Version N is reached by applying
// migrations[0..N-1] in order; the table schema_version records how far a
// database has come. Never edit a released migration: append a new one.
type migration struct {
	name string
	sql  string
}

// migrations is the schema history, the same tables and rules as the
// SQLite store's so that one conformance suite holds both. Times are Unix
// nanoseconds (UTC) in BIGINT, as there: timestamptz keeps microseconds,
// and a binding or record read back must equal what was written.
var migrations = []migration{
	{name: "users, terminals, contacts, bindings, call records", sql: `
CREATE TABLE users (
	im_id      TEXT PRIMARY KEY,
	display    TEXT NOT NULL DEFAULT '',
	realm      TEXT NOT NULL DEFAULT '',
	ha1_md5    TEXT NOT NULL DEFAULT '',
	ha1_sha256 TEXT NOT NULL DEFAULT '',
	created    BIGINT NOT NULL
);

-- An identity column never hands a removed terminal's ID out again.
CREATE TABLE terminals (
	id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	im_id        TEXT NOT NULL REFERENCES users(im_id) ON DELETE CASCADE,
	mobile_type  TEXT NOT NULL CHECK (mobile_type IN ('imsi', 'mac', 'msisdn')),
	mobile_value TEXT NOT NULL,
	kind         TEXT NOT NULL CHECK (kind IN ('legacy', 'smart')),
	caps         SMALLINT NOT NULL CHECK (caps BETWEEN 1 AND 15),
	active       BOOLEAN NOT NULL DEFAULT false,
	created      BIGINT NOT NULL,
	UNIQUE (mobile_type, mobile_value)
);
CREATE INDEX terminals_im_id ON terminals(im_id);
-- "At most one active terminal per IM ID", held by the database for every
-- node writing to it.
CREATE UNIQUE INDEX terminals_one_active ON terminals(im_id) WHERE active;

CREATE TABLE contacts (
	id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	owner        TEXT NOT NULL REFERENCES users(im_id) ON DELETE CASCADE,
	im_id        TEXT NOT NULL,
	domain       TEXT NOT NULL DEFAULT '',
	mobile_type  TEXT NOT NULL DEFAULT '',
	mobile_value TEXT NOT NULL DEFAULT '',
	display      TEXT NOT NULL DEFAULT '',
	created      BIGINT NOT NULL,
	UNIQUE (owner, im_id, domain, mobile_type, mobile_value)
);

-- Bindings keyed by +sip.instance, else the Contact (RFC 5626 §6).
CREATE TABLE bindings (
	im_id       TEXT NOT NULL REFERENCES users(im_id) ON DELETE CASCADE,
	binding_key TEXT NOT NULL,
	contact     TEXT NOT NULL,
	terminal_id BIGINT REFERENCES terminals(id) ON DELETE CASCADE,
	instance    TEXT NOT NULL DEFAULT '',
	source      TEXT NOT NULL DEFAULT '',
	transport   TEXT NOT NULL DEFAULT '',
	expires     BIGINT NOT NULL,
	updated     BIGINT NOT NULL,
	PRIMARY KEY (im_id, binding_key),
	UNIQUE (im_id, contact)
);
CREATE INDEX bindings_terminal ON bindings(terminal_id);

-- No foreign keys: a call record is history and outlives what it names.
CREATE TABLE call_records (
	id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	call_id     TEXT NOT NULL,
	caller      TEXT NOT NULL DEFAULT '',
	callee      TEXT NOT NULL DEFAULT '',
	terminal_id BIGINT,
	scp_outcome TEXT NOT NULL DEFAULT '',
	started     BIGINT NOT NULL,
	answered    BIGINT,
	ended       BIGINT,
	end_cause   TEXT NOT NULL DEFAULT '',
	stats       TEXT NOT NULL DEFAULT '',
	sip_status  INTEGER NOT NULL DEFAULT 0,
	q850_cause  INTEGER NOT NULL DEFAULT 0,
	node        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX call_records_started ON call_records(started);
CREATE INDEX call_records_callee ON call_records(callee);
CREATE INDEX call_records_call_id ON call_records(call_id);
`},
	{name: "media, pending messages", sql: `
-- Keyed by SHA-256 of the link token; the token is never stored.
CREATE TABLE media (
	token_hash   BYTEA PRIMARY KEY CHECK (length(token_hash) = 32),
	owner        TEXT NOT NULL,
	sender       TEXT NOT NULL DEFAULT '',
	content_type TEXT NOT NULL,
	size         BIGINT NOT NULL CHECK (size >= 0),
	sha256       BYTEA NOT NULL CHECK (length(sha256) = 32),
	created      BIGINT NOT NULL,
	expires      BIGINT NOT NULL,
	data         BYTEA,
	path         TEXT NOT NULL DEFAULT ''
);
CREATE INDEX media_expires ON media(expires);

CREATE TABLE pending_messages (
	id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	recipient       TEXT NOT NULL,
	sender          TEXT NOT NULL DEFAULT '',
	sender_display  TEXT NOT NULL DEFAULT '',
	content_type    TEXT NOT NULL,
	body            BYTEA NOT NULL,
	reply_uri       TEXT NOT NULL DEFAULT '',
	reply_dest      TEXT NOT NULL DEFAULT '',
	reply_transport TEXT NOT NULL DEFAULT '',
	created         BIGINT NOT NULL,
	expires         BIGINT NOT NULL,
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_attempt    BIGINT NOT NULL
);
CREATE INDEX pending_due ON pending_messages(next_attempt);
CREATE INDEX pending_recipient ON pending_messages(recipient);
`},
	{name: "trunks, DIDs", sql: `
CREATE TABLE trunks (
	name         TEXT PRIMARY KEY,
	country_code TEXT NOT NULL DEFAULT '',
	identity     TEXT NOT NULL CHECK (identity IN ('pai', 'from')),
	created      BIGINT NOT NULL
);
CREATE TABLE trunk_cidrs (
	cidr  TEXT PRIMARY KEY,
	trunk TEXT NOT NULL REFERENCES trunks(name) ON DELETE CASCADE
);
CREATE INDEX trunk_cidrs_trunk ON trunk_cidrs(trunk);

-- A number belongs to one user: the primary key holds the rule, whichever
-- node writes the row.
CREATE TABLE dids (
	number   TEXT PRIMARY KEY CHECK (number ~ '^\+[1-9][0-9]*$'),
	im_id    TEXT NOT NULL REFERENCES users(im_id) ON DELETE CASCADE,
	fallback TEXT NOT NULL DEFAULT 'none' CHECK (fallback IN ('none', 'terminal')),
	created  BIGINT NOT NULL
);
CREATE INDEX dids_im_id ON dids(im_id);
`},
	{name: "dialog snapshots, leases", sql: `
CREATE TABLE dialog_snapshots (
	node    TEXT NOT NULL,
	key     TEXT NOT NULL,
	call_id TEXT NOT NULL,
	started BIGINT NOT NULL,
	legs    TEXT NOT NULL,
	PRIMARY KEY (node, key)
);

-- One row per job that must run on one node of the cluster at a time.
-- epoch grows each time the lease changes hands, so a node can tell that
-- it lost the lease in between.
CREATE TABLE leases (
	name    TEXT PRIMARY KEY,
	owner   TEXT NOT NULL,
	epoch   BIGINT NOT NULL,
	expires BIGINT NOT NULL
);
`},
	{name: "change notices for the lookup cache", sql: `
-- Every committed change of a user or terminal tells the nodes' caches
-- which IM ID to drop (NOTIFY is delivered at commit, never before).
CREATE FUNCTION registry_notify_active() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP <> 'INSERT' THEN
		PERFORM pg_notify('registry_active', OLD.im_id);
	END IF;
	IF TG_OP <> 'DELETE' THEN
		PERFORM pg_notify('registry_active', NEW.im_id);
	END IF;
	RETURN NULL;
END $$;
CREATE TRIGGER terminals_notify AFTER INSERT OR UPDATE OR DELETE ON terminals
	FOR EACH ROW EXECUTE FUNCTION registry_notify_active();
CREATE TRIGGER users_notify AFTER INSERT OR DELETE ON users
	FOR EACH ROW EXECUTE FUNCTION registry_notify_active();
`},
	{name: "call ringing time", sql: `
-- When the first 180 or 183 reached the caller: the post-dial delay is
-- ringing - started (ITU-T E.431). NULL: the call never rang.
ALTER TABLE call_records ADD COLUMN ringing BIGINT;
`},
}

// migrationLock is the advisory lock key that serialises migrations: two
// nodes starting together against a new database apply each step once.
const migrationLock = 0x62326275612d7267 // "b2bua-rg"

// migrate brings the database up to len(migs) and returns the version.
func migrate(ctx context.Context, pool *pgxpool.Pool, migs []migration) (int, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", unavailable(err))
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(migrationLock)); err != nil {
		return 0, fmt.Errorf("migrate: lock: %w", err)
	}
	defer conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, int64(migrationLock)) //nolint:errcheck // the session ends the lock anyway
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	var v int
	switch err := conn.QueryRow(ctx, `SELECT version FROM schema_version`).Scan(&v); err {
	case nil:
	case pgx.ErrNoRows:
		if _, err := conn.Exec(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
			return 0, fmt.Errorf("migrate: %w", err)
		}
	default:
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	if v > len(migs) {
		return v, fmt.Errorf("database schema version %d is newer than this program knows (%d): use a newer b2bua", v, len(migs))
	}
	for ; v < len(migs); v++ {
		m := migs[v]
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `UPDATE schema_version SET version = $1`, v+1)
			return err
		})
		if err != nil {
			return v, fmt.Errorf("migration %d (%s): %w", v+1, m.name, err)
		}
	}
	return v, nil
}
