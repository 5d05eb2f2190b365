package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	sqlite3 "github.com/mattn/go-sqlite3"

	"github.com/imcall/b2bua/registry"
)

// maxCacheEntries bounds the cache: lookups of IM IDs that do not exist are
// cached too (a caller may dial many), and past this size the cache starts
// over rather than grow without limit.
const maxCacheEntries = 1 << 16

// activeCache answers ActiveTerminal from memory while the database has not
// changed, and drops everything as soon as any connection, in this process
// or another one (the CLI writing while the daemon serves), has committed.
//
// Detecting a commit. PRAGMA data_version on a connection changes whenever
// another connection has committed since its last call
// (https://www.sqlite.org/pragma.html#pragma_data_version), but asking costs
// a read transaction: two fcntl lock calls, measured at 4 to 10 µs here,
// which alone would cap lookups near 100,000/s. So each lookup instead
// compares the WAL-index header in the -shm file (see shmHeader) with the
// copy it saw last: the same signal data_version is derived from, read from
// shared memory in nanoseconds. Once a second the cache also asks
// data_version; if that moved while the header did not, the header is not
// what we think it is, and the cache logs it and falls back to asking
// data_version on every lookup for the rest of its life.
//
// The cache owns one SQLite connection that never writes (data_version
// ignores a connection's own commits). It is a driver connection outside
// database/sql on purpose: the pool's per-call bookkeeping would cost more
// than the lookup.
type activeCache struct {
	log     *slog.Logger
	mu      sync.Mutex
	conn    *sqlite3.SQLiteConn
	version driver.StmtQueryContext // PRAGMA data_version
	lookup  driver.StmtQueryContext // the active terminal of one user
	stmts   []driver.Stmt
	entries map[string]activeEntry
	dest    []driver.Value

	last       int64 // data_version at the last check
	shm        *shmHeader
	hdr        [shmHeaderWords]uint32 // WAL-index header at the last lookup
	hdrMoved   bool                   // the header changed since verifiedAt
	verifiedAt time.Time
	verify     time.Duration // defaultVerifyEvery; tests change it
}

const (
	// shmHeaderWords covers both copies of the 48-byte WAL-index header.
	shmHeaderWords = 24
	shmHeaderBytes = 4 * shmHeaderWords
	// defaultVerifyEvery is how often the header is cross-checked against
	// PRAGMA data_version.
	defaultVerifyEvery = time.Second
)

type activeEntry struct {
	t   registry.Terminal
	err error
}

// The LEFT JOIN tells an unknown user (no row) from a user without an active
// terminal (a row of NULLs) in one query, served by the partial index
// terminals_one_active.
const activeQuery = `SELECT u.im_id, t.id, t.mobile_type, t.mobile_value, t.kind, t.caps, t.created
FROM users u LEFT JOIN terminals t ON t.im_id = u.im_id AND t.active
WHERE u.im_id = ?`

func newActiveCache(ctx context.Context, dsn, path string, log *slog.Logger) (*activeCache, error) {
	dc, err := (&sqlite3.SQLiteDriver{}).Open(dsn)
	if err != nil {
		return nil, fmt.Errorf("open cache connection: %w", err)
	}
	c := &activeCache{log: log, conn: dc.(*sqlite3.SQLiteConn), entries: map[string]activeEntry{},
		dest: make([]driver.Value, 7), verify: defaultVerifyEvery}
	for _, p := range []struct {
		dst *driver.StmtQueryContext
		sql string
	}{{&c.version, "PRAGMA data_version"}, {&c.lookup, activeQuery}} {
		st, err := c.conn.PrepareContext(ctx, p.sql)
		if err != nil {
			c.close()
			return nil, fmt.Errorf("prepare cache statement: %w", err)
		}
		c.stmts = append(c.stmts, st)
		*p.dst = st.(driver.StmtQueryContext)
	}
	// The first read also opens the WAL index, so the -shm file exists
	// and is initialised before it is mapped; while this connection stays
	// open no other connection may truncate or delete it.
	if c.last, err = c.dataVersion(); err != nil {
		c.close()
		return nil, err
	}
	if c.shm, err = openSHMHeader(path); err != nil {
		log.Warn("registry cache: WAL index not readable, checking PRAGMA data_version on every lookup", "err", err)
		c.shm = nil
	} else {
		c.shm.read(&c.hdr)
	}
	c.verifiedAt = time.Now()
	return c, nil
}

// changed reports whether any other connection has committed since the
// last call. Called with c.mu held.
func (c *activeCache) changed() (bool, error) {
	if c.shm == nil {
		v, err := c.dataVersion()
		if err != nil {
			return false, err
		}
		moved := v != c.last
		c.last = v
		return moved, nil
	}
	moved := c.readHeader()
	now := time.Now()
	if now.Sub(c.verifiedAt) < c.verify {
		return moved, nil
	}
	v, err := c.dataVersion()
	if err != nil {
		return false, err
	}
	// Re-read after data_version: a commit that data_version saw had
	// already written the header, so it is observed by now.
	moved = c.readHeader() || moved
	if v != c.last && !c.hdrMoved {
		c.log.Error("registry cache: a commit changed PRAGMA data_version but not the WAL-index header; checking data_version on every lookup from now on",
			"data_version", v, "previous", c.last)
		c.shm.close() //nolint:errcheck // no longer used either way
		c.shm = nil
		moved = true
	}
	c.last, c.hdrMoved, c.verifiedAt = v, false, now
	return moved, nil
}

// readHeader compares the WAL-index header with the last copy.
func (c *activeCache) readHeader() bool {
	var h [shmHeaderWords]uint32
	c.shm.read(&h)
	if h == c.hdr {
		return false
	}
	c.hdr, c.hdrMoved = h, true
	return true
}

func (c *activeCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	// Unmap before the connection closes: once it has, nothing stops
	// another connection from truncating the -shm file under the mapping.
	if c.shm != nil {
		errs = append(errs, c.shm.close())
		c.shm = nil
	}
	for _, st := range c.stmts {
		errs = append(errs, st.Close())
	}
	c.stmts = nil
	if c.conn != nil {
		errs = append(errs, c.conn.Close())
		c.conn = nil
	}
	return errors.Join(errs...)
}

// bg is the context given to the driver. These statements take
// microseconds and never wait on a lock (WAL readers do not block), so
// threading the caller's context through would only make the driver arm an
// interrupt watcher per call; the caller's context is checked up front.
var bg = context.Background()

// dataVersion reads PRAGMA data_version. Called with c.mu held.
func (c *activeCache) dataVersion() (int64, error) {
	rows, err := c.version.QueryContext(bg, nil)
	if err != nil {
		return 0, fmt.Errorf("data_version: %w", err)
	}
	defer rows.Close()
	if err := rows.Next(c.dest[:1]); err != nil {
		return 0, fmt.Errorf("data_version: %w", err)
	}
	v, ok := c.dest[0].(int64)
	if !ok {
		return 0, fmt.Errorf("data_version: unexpected %T", c.dest[0])
	}
	return v, nil
}

func (c *activeCache) get(ctx context.Context, imID string) (registry.Terminal, error) {
	if err := ctx.Err(); err != nil {
		return registry.Terminal{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return registry.Terminal{}, errors.New("registry: store is closed")
	}
	moved, err := c.changed()
	if err != nil {
		return registry.Terminal{}, err
	}
	if moved {
		clear(c.entries)
	}
	// Keyed by the string as given, so a hit costs no parsing; the entry
	// holds the answer for its normalised form.
	if e, ok := c.entries[imID]; ok {
		return e.t, e.err
	}
	id, err := registry.ParseIMID(imID)
	if err != nil {
		return registry.Terminal{}, err // not cached: rejecting it is cheap
	}
	// The change check ran before this query, so the answer is at least as
	// new as what it saw; a commit landing in between is seen, and the
	// entry dropped, on the next lookup.
	t, err := c.query(id)
	if err != nil && !errors.Is(err, registry.ErrNotFound) && !errors.Is(err, registry.ErrNoActiveTerminal) {
		return registry.Terminal{}, err
	}
	if len(c.entries) >= maxCacheEntries {
		clear(c.entries)
	}
	c.entries[imID] = activeEntry{t: t, err: err}
	return t, err
}

// query reads id's active terminal from the database. Called with c.mu held.
func (c *activeCache) query(id string) (registry.Terminal, error) {
	rows, err := c.lookup.QueryContext(bg, []driver.NamedValue{{Ordinal: 1, Value: id}})
	if err != nil {
		return registry.Terminal{}, fmt.Errorf("active terminal of %s: %w", id, err)
	}
	defer rows.Close()
	d := c.dest
	switch err := rows.Next(d); {
	case errors.Is(err, io.EOF):
		return registry.Terminal{}, fmt.Errorf("user %s: %w", id, registry.ErrNotFound)
	case err != nil:
		return registry.Terminal{}, fmt.Errorf("active terminal of %s: %w", id, err)
	}
	if d[1] == nil {
		return registry.Terminal{}, fmt.Errorf("user %s: %w", id, registry.ErrNoActiveTerminal)
	}
	t := registry.Terminal{IMID: id, Active: true}
	var ok [6]bool
	t.ID, ok[0] = d[1].(int64)
	typ, ok1 := d[2].(string)
	t.MobileID.Value, ok[2] = d[3].(string)
	kind, ok3 := d[4].(string)
	caps, ok4 := d[5].(int64)
	created, ok5 := d[6].(int64)
	ok[1], ok[3], ok[4], ok[5] = ok1, ok3, ok4, ok5
	for _, b := range ok {
		if !b {
			return registry.Terminal{}, fmt.Errorf("active terminal of %s: unexpected column types %T %T %T %T %T %T", id, d[1], d[2], d[3], d[4], d[5], d[6])
		}
	}
	t.MobileID.Type = registry.MobileIDType(typ)
	t.Kind = registry.Kind(kind)
	t.Caps = registry.Caps(caps)
	t.CreatedAt = fromNanos(created)
	return t, nil
}
