package postgres

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/imcall/b2bua/registry"
)

// maxCacheEntries bounds the cache: lookups of IM IDs that do not exist are
// cached too, and past this size the cache starts over.
const maxCacheEntries = 1 << 16

// activeCache answers ActiveTerminal from memory. Any node's committed
// change of a user or terminal sends a notice naming the IM ID (the
// triggers of migration 5, NOTIFY registry_active), and the listener
// drops that entry. Notices are a hint, not the proof of freshness: an
// entry older than maxStale is asked again whatever the notices said, and
// while the listener is not connected (the server restarted, the network
// broke) nothing is cached at all, so a lost notice leaves an answer stale
// for at most maxStale.
type activeCache struct {
	s        *Store
	log      *slog.Logger
	maxStale time.Duration
	now      func() time.Time

	mu        sync.Mutex
	entries   map[string]activeEntry
	gen       uint64 // grows with every notice and every listener change
	listening bool

	stop context.CancelFunc
	done chan struct{}
}

type activeEntry struct {
	t   registry.Terminal
	err error
	at  time.Time
}

func newActiveCache(s *Store, cc *pgx.ConnConfig, maxStale time.Duration, now func() time.Time, log *slog.Logger) *activeCache {
	ctx, stop := context.WithCancel(context.Background())
	c := &activeCache{s: s, log: log, maxStale: maxStale, now: now, entries: map[string]activeEntry{}, stop: stop, done: make(chan struct{})}
	go c.listen(ctx, cc.Copy())
	return c
}

func (c *activeCache) close() {
	c.stop()
	<-c.done
}

// listen keeps one connection in LISTEN registry_active and drops the
// entries the notices name, reconnecting after a pause when the connection
// breaks. It returns when ctx is done.
func (c *activeCache) listen(ctx context.Context, cc *pgx.ConnConfig) {
	defer close(c.done)
	pause := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := c.listenOnce(ctx, cc)
		c.setListening(false)
		if ctx.Err() != nil {
			return
		}
		c.log.Warn("registry cache: change notices lost, lookups go to the database until they are back", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, 5*time.Second)
	}
}

func (c *activeCache) listenOnce(ctx context.Context, cc *pgx.ConnConfig) error {
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `LISTEN registry_active`); err != nil {
		return err
	}
	// Entries read before LISTEN took effect may have missed a notice.
	c.setListening(true)
	c.log.Debug("registry cache: listening for change notices")
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		c.mu.Lock()
		c.gen++
		delete(c.entries, n.Payload)
		c.mu.Unlock()
	}
}

func (c *activeCache) setListening(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.listening = on
	c.gen++
	clear(c.entries)
}

func (c *activeCache) get(ctx context.Context, imID string) (registry.Terminal, error) {
	id, err := registry.ParseIMID(imID)
	if err != nil {
		return registry.Terminal{}, err
	}
	c.mu.Lock()
	e, hit := c.entries[id]
	now := c.now()
	fresh := hit && c.listening && now.Sub(e.at) < c.maxStale
	gen := c.gen
	c.mu.Unlock()
	if fresh {
		return e.t, e.err
	}
	t, err := c.s.queryActive(ctx, id)
	if err != nil && !errors.Is(err, registry.ErrNotFound) && !errors.Is(err, registry.ErrNoActiveTerminal) {
		return registry.Terminal{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// A notice that arrived while the query ran may be about this very
	// user, and the answer may predate the change: keep it only if none
	// did.
	if c.listening && c.gen == gen {
		if len(c.entries) >= maxCacheEntries {
			clear(c.entries)
		}
		c.entries[id] = activeEntry{t: t, err: err, at: now}
	}
	return t, err
}

// isListening reports whether change notices are being received.
func (c *activeCache) isListening() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.listening
}
