// Package postgres is the cluster registry: the registry's Store,
// SignalStore, MediaStore, NumberStore and CallStore kept in PostgreSQL
// through pgx, shared by every b2bua node of a site. The database holds the
// rules (one active terminal per IM ID, one owner per number) for all nodes
// at once; each node caches active-terminal lookups and drops entries on
// the database's change notices (LISTEN/NOTIFY), with a bound on staleness
// for a notice that is lost; row leases make work that must happen once per
// cluster happen on one node. Only registry/stores links it.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/imcall/b2bua/registry"
)

// Config configures Open.
type Config struct {
	// DSN is a PostgreSQL connection URI or keyword/value string, e.g.
	// postgres://b2bua@db1/b2bua?sslmode=verify-full.
	DSN string
	// ConnectTimeout bounds dialling the server, so that a call arriving
	// while the database is down is answered (503) at once rather than
	// after the operating system's TCP timeout. Zero means 2s.
	ConnectTimeout time.Duration
	// StatementTimeout is the server's statement_timeout for the store's
	// sessions, so that a lock queue or an overloaded server cannot hold a
	// call. Zero means 5s.
	StatementTimeout time.Duration
	// MaxStale bounds how long a cached active-terminal answer is used
	// without the database being asked again, should a change notice be
	// lost. Zero means 2s.
	MaxStale time.Duration
	// MaxConns bounds the pool; zero means pgx's default (4 per CPU, at
	// least 4).
	MaxConns int32
	// Logger receives migration, cache and connection messages; nil
	// discards them.
	Logger *slog.Logger
	// Now is the clock of the cache; nil means time.Now.
	Now func() time.Time
	// Tracer, if set, sees every query of the pool (pgx's hook: for
	// query logs or counts); nil means none.
	Tracer pgx.QueryTracer
}

// Store is the cluster registry on one PostgreSQL database. It is safe for
// concurrent use, and any number of nodes may share the database.
type Store struct {
	pool  *pgxpool.Pool
	log   *slog.Logger
	cache *activeCache
}

// Open connects to cfg.DSN, brings the schema up to date and starts the
// cache's listener. The database must exist; a server that cannot be
// reached is an error naming it.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	return openWith(ctx, cfg, migrations)
}

func openWith(ctx context.Context, cfg Config, migs []migration) (*Store, error) {
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 2 * time.Second
	}
	if cfg.StatementTimeout <= 0 {
		cfg.StatementTimeout = 5 * time.Second
	}
	if cfg.MaxStale <= 0 {
		cfg.MaxStale = 2 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pc, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		// pgx's message may quote the DSN, password included.
		return nil, errors.New("registry: postgres: the spec is not a valid connection URI")
	}
	pc.ConnConfig.ConnectTimeout = cfg.ConnectTimeout
	pc.ConnConfig.Tracer = cfg.Tracer
	pc.ConnConfig.RuntimeParams["statement_timeout"] = fmt.Sprint(cfg.StatementTimeout.Milliseconds())
	pc.ConnConfig.RuntimeParams["application_name"] = "b2bua"
	if cfg.MaxConns > 0 {
		pc.MaxConns = cfg.MaxConns
	}
	// A broken connection is found at its next use and dropped; checking
	// one taken from the pool after a pause costs a round trip only then.
	pc.HealthCheckPeriod = 5 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("registry: postgres: %w", err)
	}
	s := &Store{pool: pool, log: log}
	target := pc.ConnConfig.Host + "/" + pc.ConnConfig.Database
	v, err := migrate(ctx, pool, migs)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("registry: postgres %s: %w", target, err)
	}
	log.Debug("registry opened", "postgres", target, "schema_version", v)
	s.cache = newActiveCache(s, pc.ConnConfig, cfg.MaxStale, cfg.Now, log)
	return s, nil
}

// Close stops the cache's listener and closes the pool. The store must not
// be used afterwards.
func (s *Store) Close() error {
	if s.cache != nil {
		s.cache.close()
	}
	s.pool.Close()
	return nil
}

// Ping asks the server once, for readiness: an error says it cannot be
// reached now.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("registry: %w", unavailable(err))
	}
	return nil
}

// maxTxAttempts bounds the retries of a transaction that lost a
// serialisation conflict or a deadlock.
const maxTxAttempts = 5

// withTx runs f in a transaction and commits it; a serialisation failure
// or a deadlock (SQLSTATE 40001, 40P01), whose transaction PostgreSQL
// rolled back whole, is run again from the start.
func (s *Store) withTx(ctx context.Context, f func(tx pgx.Tx) error) error {
	var err error
	for attempt := 1; ; attempt++ {
		err = pgx.BeginFunc(ctx, s.pool, f)
		if !retryable(err) || attempt == maxTxAttempts || ctx.Err() != nil {
			return err
		}
		s.log.Debug("registry transaction retried", "attempt", attempt, "err", err)
	}
}

// sendBatch sends b as one pipeline, which PostgreSQL runs as one implicit
// transaction: one round trip and one commit for all its statements,
// where BEGIN and COMMIT would add two round trips. A serialisation
// failure or a deadlock sends it again.
func (s *Store) sendBatch(ctx context.Context, b *pgx.Batch) error {
	if b.Len() == 0 {
		return nil
	}
	for attempt := 1; ; attempt++ {
		err := s.pool.SendBatch(ctx, b).Close()
		if !retryable(err) || attempt == maxTxAttempts || ctx.Err() != nil {
			return err
		}
		s.log.Debug("registry batch retried", "attempt", attempt, "err", err)
	}
}

func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

func pgCode(err error) (code, constraint string) {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code, pe.ConstraintName
	}
	return "", ""
}

func isUnique(err error) bool     { c, _ := pgCode(err); return c == "23505" }
func isForeignKey(err error) bool { c, _ := pgCode(err); return c == "23503" }

// unavailable marks an error that is not the server's answer (no
// connection, a connection lost, a statement timed out) with
// registry.ErrUnavailable, so that the call path answers 503 and the API
// 503 rather than a failure of the request itself. nil stays nil.
func unavailable(err error) error {
	if err == nil || errors.Is(err, registry.ErrUnavailable) {
		return err
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// 57014: statement_timeout; 08: connection exception; 53: out
		// of resources; 57P0x: the server is shutting down or starting.
		if pe.Code == "57014" || pe.Code[:2] == "08" || pe.Code[:2] == "53" || pe.Code[:4] == "57P0" {
			return fmt.Errorf("%w: %w", registry.ErrUnavailable, err)
		}
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, pgx.ErrNoRows) || errors.Is(err, pgx.ErrTxClosed) {
		return err
	}
	var ve *registry.ValidationError
	if errors.As(err, &ve) || errors.Is(err, registry.ErrNotFound) || errors.Is(err, registry.ErrExists) || errors.Is(err, registry.ErrNoActiveTerminal) {
		return err
	}
	return fmt.Errorf("%w: %w", registry.ErrUnavailable, err)
}

// wrapf wraps err as fmt.Errorf(what+": %w") after marking it unavailable
// where it is.
func wrapf(err error, format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, unavailable(err))...)
}

func nanos(t time.Time) int64 { return t.UnixNano() }

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

func nullNanos(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	n := t.UnixNano()
	return &n
}

func fromNullNanos(n *int64) time.Time {
	if n == nil {
		return time.Time{}
	}
	return fromNanos(*n)
}

func nullID(id int64) *int64 {
	if id == 0 {
		return nil
	}
	return &id
}

func derefID(id *int64) int64 {
	if id == nil {
		return 0
	}
	return *id
}

// now is the creation time stored for new rows; UTC() drops the monotonic
// reading, so what a caller gets back equals what a read returns.
func now() time.Time { return time.Now().UTC() }

// affectedOne turns "no row matched" into ErrNotFound for what.
func affectedOne(tag pgconn.CommandTag, err error, what string) error {
	if err != nil {
		return wrapf(err, "%s", what)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%s: %w", what, registry.ErrNotFound)
	}
	return nil
}

// invalid is the ValidationError a write path returns for a malformed row.
func invalid(field, rule string) error { return &registry.ValidationError{Field: field, Rule: rule} }

// userExists reports whether imID names a user.
func (s *Store) userExists(ctx context.Context, id string) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE im_id = $1)`, id).Scan(&ok)
	return ok, err
}
