// Package sqlite is the embedded registry: the registry's Store,
// SignalStore and MediaStore kept in one SQLite file (WAL mode) through the
// cgo driver, with the schema migrations and the in-memory cache of active
// terminals that the call path reads. Only what opens a store links it (see
// registry/stores); the domain types live in package registry.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"time"

	sqlite3 "github.com/mattn/go-sqlite3"

	"github.com/imcall/b2bua/registry"
)

// Config configures Open.
type Config struct {
	// Path of the database file; it is created if missing, but its
	// directory must exist, so that a mistyped directory is an error
	// rather than a new, empty registry.
	Path string
	// BusyTimeout is how long a statement waits for another connection or
	// process holding the write lock before it fails. Zero means 5s.
	BusyTimeout time.Duration
	// Logger receives migration and cache messages; nil discards them.
	Logger *slog.Logger
}

// Store is the embedded registry: one SQLite file in WAL mode, safe for
// concurrent use by many goroutines and by several processes on one file
// (the daemon and the CLI).
type Store struct {
	path  string
	log   *slog.Logger
	w     *sql.DB // one connection; every transaction is BEGIN IMMEDIATE
	r     *sql.DB // readers; WAL lets them run beside the writer
	cache *activeCache
}

// Open opens (creating the file if needed) the registry at cfg.Path and
// brings its schema up to date.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	return openWith(ctx, cfg, migrations)
}

// openWith is Open with a chosen schema history, so that a test can
// build a file of an older version.
func openWith(ctx context.Context, cfg Config, migs []migration) (*Store, error) {
	if cfg.Path == "" || cfg.Path == ":memory:" {
		return nil, errors.New("registry: SQLite path must name a file")
	}
	if cfg.BusyTimeout <= 0 {
		cfg.BusyTimeout = 5 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	abs, err := filepath.Abs(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	// The directory is never created: an operator who mistypes it must
	// hear so, not find later that the daemon serves a new, empty registry.
	switch fi, err := os.Stat(filepath.Dir(abs)); {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("registry: %s: directory %s does not exist: create it first", cfg.Path, filepath.Dir(abs))
	case err != nil:
		return nil, fmt.Errorf("registry: %s: %w", cfg.Path, err)
	case !fi.IsDir():
		return nil, fmt.Errorf("registry: %s: %s is not a directory", cfg.Path, filepath.Dir(abs))
	}
	// The file holds digest hashes: create it readable by its owner only.
	// SQLite gives its -wal and -shm files the database file's mode.
	if f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("registry: create %s: %w", abs, err)
	}

	// synchronous=NORMAL, not FULL. In WAL mode a commit has been written to
	// the WAL file (in the kernel's page cache) before COMMIT returns, so a
	// transaction reported as committed survives the process being killed,
	// SIGKILL included; only an OS crash or power loss can lose the last
	// commits, and even then the file stays consistent
	// (https://www.sqlite.org/pragma.html#pragma_synchronous). FULL would
	// fsync on every commit, which puts disk latency on the signalling path
	// (a binding per REGISTER refresh, call records per call) to cover a
	// power cut that also takes the calls down.
	params := url.Values{}
	params.Set("_journal_mode", "WAL")
	params.Set("_synchronous", "NORMAL")
	params.Set("_foreign_keys", "on")
	params.Set("_busy_timeout", fmt.Sprint(cfg.BusyTimeout.Milliseconds()))
	base := "file:" + (&url.URL{Path: abs}).EscapedPath()
	readDSN := base + "?" + params.Encode()
	// BEGIN IMMEDIATE takes the write lock when the transaction starts, so
	// two writers (here or in another process) queue on the busy timeout
	// instead of both reading and then one failing to upgrade its lock.
	params.Set("_txlock", "immediate")
	writeDSN := base + "?" + params.Encode()

	w, err := sql.Open("sqlite3", writeDSN)
	if err != nil {
		return nil, fmt.Errorf("registry: open %s: %w", cfg.Path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	s := &Store{path: abs, log: log, w: w}
	v, err := migrateRetry(ctx, w, migs, cfg.BusyTimeout)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("registry: %s: %w", cfg.Path, err)
	}
	log.Debug("registry opened", "path", abs, "schema_version", v)

	r, err := sql.Open("sqlite3", readDSN)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("registry: open %s: %w", cfg.Path, err)
	}
	r.SetMaxIdleConns(4)
	s.r = r
	if s.cache, err = newActiveCache(ctx, readDSN, abs, log); err != nil {
		s.Close()
		return nil, fmt.Errorf("registry: %s: %w", cfg.Path, err)
	}
	return s, nil
}

// migrateRetry runs migrate, retrying while the file is busy. The busy
// timeout covers ordinary lock waits, but while a brand-new file is being
// switched to WAL by another connection SQLite can answer SQLITE_BUSY
// without calling the busy handler (it cannot wait without risking a
// deadlock), so the daemon and the CLI opening a new file together would
// otherwise fail at random.
func migrateRetry(ctx context.Context, db *sql.DB, migs []migration, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for pause := time.Millisecond; ; pause = min(2*pause, 50*time.Millisecond) {
		v, err := migrate(ctx, db, migs)
		var se sqlite3.Error
		if err == nil || !errors.As(err, &se) || se.Code != sqlite3.ErrBusy || time.Now().After(deadline) {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, ctx.Err()
		case <-time.After(pause):
		}
	}
}

// Close releases the connections. The store must not be used afterwards.
func (s *Store) Close() error {
	var errs []error
	if s.cache != nil {
		errs = append(errs, s.cache.close())
	}
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	errs = append(errs, s.w.Close())
	return errors.Join(errs...)
}

// Path is the absolute path of the database file.
func (s *Store) Path() string { return s.path }

// Ping reads the database once, for readiness: an error says the file
// cannot be read now (gone, locked past the busy timeout, corrupt).
func (s *Store) Ping(ctx context.Context) error {
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM users LIMIT 1)`).Scan(&n); err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	return nil
}

// withTx runs f in a write transaction (BEGIN IMMEDIATE) and commits it if f
// returns nil.
func (s *Store) withTx(ctx context.Context, f func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		tx.Rollback() //nolint:errcheck // the error from f is the one to report
		return err
	}
	return tx.Commit()
}

func isConstraint(err error, code sqlite3.ErrNoExtended) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && se.ExtendedCode == code
}

func isUnique(err error) bool {
	return isConstraint(err, sqlite3.ErrConstraintUnique) || isConstraint(err, sqlite3.ErrConstraintPrimaryKey)
}

func isForeignKey(err error) bool { return isConstraint(err, sqlite3.ErrConstraintForeignKey) }

func nanos(t time.Time) int64 { return t.UnixNano() }

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

func nullNanos(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixNano(), Valid: true}
}

func fromNullNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return fromNanos(n.Int64)
}

func nullID(id int64) sql.NullInt64 { return sql.NullInt64{Int64: id, Valid: id != 0} }

// now is the creation time stored for new rows. UTC() also drops the
// monotonic reading, so what a caller gets back equals what a read returns.
func now() time.Time { return time.Now().UTC() }

// ---- users

// AddUser stores a new user. It returns ErrExists if the IM ID is taken.
func (s *Store) AddUser(ctx context.Context, u registry.User) (registry.User, error) {
	u, err := registry.ValidateUser(u)
	if err != nil {
		return registry.User{}, err
	}
	u.CreatedAt = now()
	_, err = s.w.ExecContext(ctx,
		`INSERT INTO users (im_id, display, realm, ha1_md5, ha1_sha256, created) VALUES (?, ?, ?, ?, ?, ?)`,
		u.IMID, u.Display, u.Creds.Realm, u.Creds.HA1MD5, u.Creds.HA1SHA256, nanos(u.CreatedAt))
	if isUnique(err) {
		return registry.User{}, fmt.Errorf("user %s: %w", u.IMID, registry.ErrExists)
	}
	if err != nil {
		return registry.User{}, fmt.Errorf("add user %s: %w", u.IMID, err)
	}
	return u, nil
}

const userCols = `im_id, display, realm, ha1_md5, ha1_sha256, created`

func scanUser(row interface{ Scan(...any) error }) (registry.User, error) {
	var u registry.User
	var created int64
	if err := row.Scan(&u.IMID, &u.Display, &u.Creds.Realm, &u.Creds.HA1MD5, &u.Creds.HA1SHA256, &created); err != nil {
		return registry.User{}, err
	}
	u.CreatedAt = fromNanos(created)
	return u, nil
}

// User returns one user, or ErrNotFound.
func (s *Store) User(ctx context.Context, imID string) (registry.User, error) {
	id, err := registry.ParseIMID(imID)
	if err != nil {
		return registry.User{}, err
	}
	u, err := scanUser(s.r.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE im_id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return registry.User{}, fmt.Errorf("user %s: %w", id, registry.ErrNotFound)
	}
	if err != nil {
		return registry.User{}, fmt.Errorf("user %s: %w", id, err)
	}
	return u, nil
}

// Users lists every user ordered by IM ID.
func (s *Store) Users(ctx context.Context) ([]registry.User, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+userCols+` FROM users ORDER BY im_id`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	out := []registry.User{}
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return out, nil
}

// SetCredentials replaces a user's digest credentials.
func (s *Store) SetCredentials(ctx context.Context, imID string, c registry.Credentials) error {
	id, err := registry.ParseIMID(imID)
	if err != nil {
		return err
	}
	if c, err = registry.ValidateCredentials(c); err != nil {
		return err
	}
	res, err := s.w.ExecContext(ctx, `UPDATE users SET realm = ?, ha1_md5 = ?, ha1_sha256 = ? WHERE im_id = ?`,
		c.Realm, c.HA1MD5, c.HA1SHA256, id)
	return affectedOne(res, err, "user "+id)
}

// RemoveUser deletes a user with its terminals, contacts and bindings.
func (s *Store) RemoveUser(ctx context.Context, imID string) error {
	id, err := registry.ParseIMID(imID)
	if err != nil {
		return err
	}
	res, err := s.w.ExecContext(ctx, `DELETE FROM users WHERE im_id = ?`, id)
	return affectedOne(res, err, "user "+id)
}

// affectedOne turns "no row matched" into ErrNotFound for what.
func affectedOne(res sql.Result, err error, what string) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, registry.ErrNotFound)
	}
	return nil
}

// ---- terminals

const terminalCols = `id, im_id, mobile_type, mobile_value, kind, caps, active, created`

func scanTerminal(row interface{ Scan(...any) error }) (registry.Terminal, error) {
	var t registry.Terminal
	var typ, kind string
	var created int64
	if err := row.Scan(&t.ID, &t.IMID, &typ, &t.MobileID.Value, &kind, &t.Caps, &t.Active, &created); err != nil {
		return registry.Terminal{}, err
	}
	t.MobileID.Type = registry.MobileIDType(typ)
	t.Kind = registry.Kind(kind)
	t.CreatedAt = fromNanos(created)
	return t, nil
}

// AddTerminal stores a new terminal. With t.Active it becomes the user's
// active terminal and the others are deactivated in the same transaction.
// It returns ErrNotFound for an unknown user and ErrExists if the mobile
// identity belongs to a terminal already.
func (s *Store) AddTerminal(ctx context.Context, t registry.NewTerminal) (registry.Terminal, error) {
	t, err := registry.ValidateTerminal(t)
	if err != nil {
		return registry.Terminal{}, err
	}
	var out registry.Terminal
	err = s.withTx(ctx, func(tx *sql.Tx) error {
		if t.Active {
			if _, err := tx.ExecContext(ctx, `UPDATE terminals SET active = 0 WHERE im_id = ? AND active`, t.IMID); err != nil {
				return err
			}
		}
		var err error
		out, err = scanTerminal(tx.QueryRowContext(ctx,
			`INSERT INTO terminals (im_id, mobile_type, mobile_value, kind, caps, active, created)
			 VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING `+terminalCols,
			t.IMID, string(t.MobileID.Type), t.MobileID.Value, string(t.Kind), t.Caps, t.Active, nanos(now())))
		return err
	})
	switch {
	case isUnique(err):
		return registry.Terminal{}, fmt.Errorf("terminal %s: %w", t.MobileID, registry.ErrExists)
	case isForeignKey(err):
		return registry.Terminal{}, fmt.Errorf("user %s: %w", t.IMID, registry.ErrNotFound)
	case err != nil:
		return registry.Terminal{}, fmt.Errorf("add terminal %s: %w", t.MobileID, err)
	}
	return out, nil
}

// Terminal returns one terminal, or ErrNotFound.
func (s *Store) Terminal(ctx context.Context, id int64) (registry.Terminal, error) {
	t, err := scanTerminal(s.r.QueryRowContext(ctx, `SELECT `+terminalCols+` FROM terminals WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return registry.Terminal{}, fmt.Errorf("terminal %d: %w", id, registry.ErrNotFound)
	}
	if err != nil {
		return registry.Terminal{}, fmt.Errorf("terminal %d: %w", id, err)
	}
	return t, nil
}

// Terminals lists the terminals of imID ordered by ID, or all terminals
// when imID is "". An unknown imID gives ErrNotFound.
func (s *Store) Terminals(ctx context.Context, imID string) ([]registry.Terminal, error) {
	q := `SELECT ` + terminalCols + ` FROM terminals ORDER BY id`
	var args []any
	if imID != "" {
		id, err := registry.ParseIMID(imID)
		if err != nil {
			return nil, err
		}
		var n int
		if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM users WHERE im_id = ?`, id).Scan(&n); err != nil {
			return nil, fmt.Errorf("list terminals of %s: %w", id, err)
		}
		if n == 0 {
			return nil, fmt.Errorf("user %s: %w", id, registry.ErrNotFound)
		}
		q = `SELECT ` + terminalCols + ` FROM terminals WHERE im_id = ? ORDER BY id`
		args = append(args, id)
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list terminals: %w", err)
	}
	defer rows.Close()
	out := []registry.Terminal{}
	for rows.Next() {
		t, err := scanTerminal(rows)
		if err != nil {
			return nil, fmt.Errorf("list terminals: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list terminals: %w", err)
	}
	return out, nil
}

// Activate makes id its user's active terminal; the user's other terminals
// are deactivated in the same transaction. Activating the active terminal
// is not an error.
func (s *Store) Activate(ctx context.Context, id int64) (registry.Terminal, error) {
	var out registry.Terminal
	err := s.withTx(ctx, func(tx *sql.Tx) error {
		var imID string
		if err := tx.QueryRowContext(ctx, `SELECT im_id FROM terminals WHERE id = ?`, id).Scan(&imID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE terminals SET active = 0 WHERE im_id = ? AND active AND id <> ?`, imID, id); err != nil {
			return err
		}
		var err error
		out, err = scanTerminal(tx.QueryRowContext(ctx, `UPDATE terminals SET active = 1 WHERE id = ? RETURNING `+terminalCols, id))
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return registry.Terminal{}, fmt.Errorf("terminal %d: %w", id, registry.ErrNotFound)
	}
	if err != nil {
		return registry.Terminal{}, fmt.Errorf("activate terminal %d: %w", id, err)
	}
	return out, nil
}

// Deactivate clears id's active flag, leaving its user with no active
// terminal if it was the one. Deactivating an inactive terminal is not an
// error.
func (s *Store) Deactivate(ctx context.Context, id int64) (registry.Terminal, error) {
	t, err := scanTerminal(s.w.QueryRowContext(ctx, `UPDATE terminals SET active = 0 WHERE id = ? RETURNING `+terminalCols, id))
	if errors.Is(err, sql.ErrNoRows) {
		return registry.Terminal{}, fmt.Errorf("terminal %d: %w", id, registry.ErrNotFound)
	}
	if err != nil {
		return registry.Terminal{}, fmt.Errorf("deactivate terminal %d: %w", id, err)
	}
	return t, nil
}

// RemoveTerminal deletes a terminal and its bindings.
func (s *Store) RemoveTerminal(ctx context.Context, id int64) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM terminals WHERE id = ?`, id)
	return affectedOne(res, err, fmt.Sprintf("terminal %d", id))
}

// ActiveTerminal returns imID's active terminal: ErrNotFound for an unknown
// user, ErrNoActiveTerminal for a user with none. Answers come from a cache
// that every committed write invalidates, whichever process made it.
func (s *Store) ActiveTerminal(ctx context.Context, imID string) (registry.Terminal, error) {
	return s.cache.get(ctx, imID)
}

// ---- contacts

const contactCols = `id, owner, im_id, domain, mobile_type, mobile_value, display, created`

func scanContact(row interface{ Scan(...any) error }) (registry.Contact, error) {
	var c registry.Contact
	var typ string
	var created int64
	if err := row.Scan(&c.ID, &c.Owner, &c.IMID, &c.Domain, &typ, &c.MobileID.Value, &c.Display, &created); err != nil {
		return registry.Contact{}, err
	}
	c.MobileID.Type = registry.MobileIDType(typ)
	c.CreatedAt = fromNanos(created)
	return c, nil
}

// AddContact stores an entry in c.Owner's address book. The same entry
// (owner, IM ID, domain, mobile identity) twice gives ErrExists; an unknown
// owner gives ErrNotFound.
func (s *Store) AddContact(ctx context.Context, c registry.Contact) (registry.Contact, error) {
	c, err := registry.ValidateContact(c)
	if err != nil {
		return registry.Contact{}, err
	}
	out, err := scanContact(s.w.QueryRowContext(ctx,
		`INSERT INTO contacts (owner, im_id, domain, mobile_type, mobile_value, display, created)
		 VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING `+contactCols,
		c.Owner, c.IMID, c.Domain, string(c.MobileID.Type), c.MobileID.Value, c.Display, nanos(now())))
	switch {
	case isUnique(err):
		return registry.Contact{}, fmt.Errorf("contact %s of %s: %w", contactName(c), c.Owner, registry.ErrExists)
	case isForeignKey(err):
		return registry.Contact{}, fmt.Errorf("user %s: %w", c.Owner, registry.ErrNotFound)
	case err != nil:
		return registry.Contact{}, fmt.Errorf("add contact %s of %s: %w", contactName(c), c.Owner, err)
	}
	return out, nil
}

func contactName(c registry.Contact) string {
	n := c.IMID
	if c.Domain != "" {
		n += "@" + c.Domain
	}
	if !c.MobileID.IsZero() {
		n += " (" + c.MobileID.String() + ")"
	}
	return n
}

// Contacts lists owner's address book ordered by ID. An unknown owner gives
// ErrNotFound.
func (s *Store) Contacts(ctx context.Context, owner string) ([]registry.Contact, error) {
	id, err := registry.ParseIMID(owner)
	if err != nil {
		return nil, &registry.ValidationError{Field: "owner", Rule: err.(*registry.ValidationError).Rule}
	}
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM users WHERE im_id = ?`, id).Scan(&n); err != nil {
		return nil, fmt.Errorf("list contacts of %s: %w", id, err)
	}
	if n == 0 {
		return nil, fmt.Errorf("user %s: %w", id, registry.ErrNotFound)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+contactCols+` FROM contacts WHERE owner = ? ORDER BY id`, id)
	if err != nil {
		return nil, fmt.Errorf("list contacts of %s: %w", id, err)
	}
	defer rows.Close()
	out := []registry.Contact{}
	for rows.Next() {
		c, err := scanContact(rows)
		if err != nil {
			return nil, fmt.Errorf("list contacts of %s: %w", id, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list contacts of %s: %w", id, err)
	}
	return out, nil
}

var _ registry.Store = (*Store)(nil)

// invalid is the ValidationError a write path returns for a malformed row.
func invalid(field, rule string) error { return &registry.ValidationError{Field: field, Rule: rule} }
