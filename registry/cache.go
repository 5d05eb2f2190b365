package registry

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"sync"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// maxCacheEntries bounds the cache: lookups of IM IDs that do not exist are
// cached too (a caller may dial many), and past this size the cache starts
// over rather than grow without limit.
const maxCacheEntries = 1 << 16

// activeCache answers ActiveTerminal from memory while the database has not
// changed.
//
// It owns one SQLite connection that never writes. PRAGMA data_version on a
// connection changes whenever any other connection, in this process or in
// another one (the CLI writing while the daemon serves), has committed to
// the file since the last call (https://www.sqlite.org/pragma.html#pragma_data_version).
// Every lookup asks it first and drops the cache if it moved, so no
// committed write is ever hidden behind a stale entry. The question costs a
// read of the WAL index header in shared memory: no disk access and no
// lock held beyond the call.
//
// The connection is a driver connection outside database/sql on purpose:
// the pool's per-call bookkeeping would cost more than the pragma itself.
type activeCache struct {
	mu      sync.Mutex
	conn    *sqlite3.SQLiteConn
	version driver.StmtQueryContext // PRAGMA data_version
	lookup  driver.StmtQueryContext // the active terminal of one user
	stmts   []driver.Stmt
	last    int64
	entries map[string]activeEntry
	dest    []driver.Value
}

type activeEntry struct {
	t   Terminal
	err error
}

// The LEFT JOIN tells an unknown user (no row) from a user without an active
// terminal (a row of NULLs) in one query, served by the partial index
// terminals_one_active.
const activeQuery = `SELECT u.im_id, t.id, t.mobile_type, t.mobile_value, t.kind, t.caps, t.created
FROM users u LEFT JOIN terminals t ON t.im_id = u.im_id AND t.active
WHERE u.im_id = ?`

func newActiveCache(ctx context.Context, dsn string) (*activeCache, error) {
	dc, err := (&sqlite3.SQLiteDriver{}).Open(dsn)
	if err != nil {
		return nil, fmt.Errorf("open cache connection: %w", err)
	}
	c := &activeCache{conn: dc.(*sqlite3.SQLiteConn), entries: map[string]activeEntry{}, dest: make([]driver.Value, 7)}
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
	if c.last, err = c.dataVersion(); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

func (c *activeCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
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

func (c *activeCache) get(ctx context.Context, imID string) (Terminal, error) {
	if err := ctx.Err(); err != nil {
		return Terminal{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return Terminal{}, errors.New("registry: store is closed")
	}
	v, err := c.dataVersion()
	if err != nil {
		return Terminal{}, err
	}
	if v != c.last {
		clear(c.entries)
		c.last = v
	}
	// Keyed by the string as given, so a hit costs no parsing; the entry
	// holds the answer for its normalised form.
	if e, ok := c.entries[imID]; ok {
		return e.t, e.err
	}
	id, err := ParseIMID(imID)
	if err != nil {
		return Terminal{}, err // not cached: rejecting it is cheap
	}
	// The version was read before this query, so the answer is at least
	// as new as c.last; a commit landing in between moves data_version and
	// drops the entry on the next lookup.
	t, err := c.query(id)
	if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrNoActiveTerminal) {
		return Terminal{}, err
	}
	if len(c.entries) >= maxCacheEntries {
		clear(c.entries)
	}
	c.entries[imID] = activeEntry{t: t, err: err}
	return t, err
}

// query reads id's active terminal from the database. Called with c.mu held.
func (c *activeCache) query(id string) (Terminal, error) {
	rows, err := c.lookup.QueryContext(bg, []driver.NamedValue{{Ordinal: 1, Value: id}})
	if err != nil {
		return Terminal{}, fmt.Errorf("active terminal of %s: %w", id, err)
	}
	defer rows.Close()
	d := c.dest
	switch err := rows.Next(d); {
	case errors.Is(err, io.EOF):
		return Terminal{}, fmt.Errorf("user %s: %w", id, ErrNotFound)
	case err != nil:
		return Terminal{}, fmt.Errorf("active terminal of %s: %w", id, err)
	}
	if d[1] == nil {
		return Terminal{}, fmt.Errorf("user %s: %w", id, ErrNoActiveTerminal)
	}
	t := Terminal{IMID: id, Active: true}
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
			return Terminal{}, fmt.Errorf("active terminal of %s: unexpected column types %T %T %T %T %T %T", id, d[1], d[2], d[3], d[4], d[5], d[6])
		}
	}
	t.MobileID.Type = MobileIDType(typ)
	t.Kind = Kind(kind)
	t.Caps = Caps(caps)
	t.CreatedAt = fromNanos(created)
	return t, nil
}
