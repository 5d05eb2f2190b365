package sip

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/imcall/b2bua/registry"
)

// NumberDirectory is what number-to-user routing needs of the registry
// (registry.NumberStore's read side).
type NumberDirectory interface {
	// Trunks lists every trunk.
	Trunks(ctx context.Context) ([]registry.Trunk, error)
	// DID gives the owner of an E.164 number, or registry.ErrNotFound.
	DID(ctx context.Context, number string) (registry.DID, error)
}

// defaultTrunkTTL is how long a read of the trunk list is used before it
// is read again.
const defaultTrunkTTL = 2 * time.Second

// trunkCache answers "is this source a trunk?" for every INVITE from
// memory. Trunks are few and change only when an operator edits them, so
// the whole list is read at most once per ttl and matched in memory; an
// edit takes effect within ttl. A failed refresh keeps the list it has
// (a registry hiccup must not turn the telephone network's calls into
// challenged ones) and is retried on the next INVITE after ttl.
type trunkCache struct {
	dir NumberDirectory
	ttl time.Duration
	now func() time.Time
	log *slog.Logger

	mu     sync.Mutex
	trunks []registry.Trunk
	read   time.Time // when trunks was read; zero: never
}

func newTrunkCache(dir NumberDirectory, ttl time.Duration, now func() time.Time, log *slog.Logger) *trunkCache {
	if ttl <= 0 {
		ttl = defaultTrunkTTL
	}
	if now == nil {
		now = time.Now
	}
	return &trunkCache{dir: dir, ttl: ttl, now: now, log: log}
}

// match gives the trunk src belongs to. An error means the list was never
// read; the caller cannot tell a trunk from anyone else.
func (c *trunkCache) match(ctx context.Context, src netip.Addr) (registry.Trunk, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.read.IsZero() || now.Sub(c.read) >= c.ttl {
		ts, err := c.dir.Trunks(ctx)
		switch {
		case err == nil:
			c.trunks, c.read = ts, now
		case c.read.IsZero():
			return registry.Trunk{}, false, fmt.Errorf("read trunks: %w", err)
		default:
			c.log.Warn("trunks not re-read; using the last list", "err", err)
			c.read = now
		}
	}
	t, ok := registry.MatchTrunk(c.trunks, src)
	return t, ok, nil
}
