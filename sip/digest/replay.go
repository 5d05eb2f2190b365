package digest

import (
	"sync"
	"time"
)

// replayWindow is how far below the highest nonce-count seen for a nonce a
// late request may still be accepted. Over UDP two requests sharing a nonce
// can arrive out of order; a sliding bitmap (as IPsec's anti-replay window,
// RFC 4303 section 3.4.3) accepts each count once, in any order, within the
// window.
const replayWindow = 64

type replayEntry struct {
	issued  time.Time
	highest uint32
	seen    uint64 // bit i set: count highest-i has been used
}

// replayCache remembers, for each nonce that has been used, which
// nonce-counts were used (RFC 7616 section 3.4: the server detects replays by
// nc). It is bounded: when full it forgets the least recently inserted
// nonces and raises floor to their issue time, so that a forgotten nonce
// (and any older one) is refused as stale rather than accepted again. A
// legitimate client then simply re-authenticates with a fresh nonce.
type replayCache struct {
	mu      sync.Mutex
	max     int
	ttl     time.Duration
	entries map[string]*replayEntry
	order   []string // ring of keys in insertion order
	head    int      // index of the oldest key in order
	n       int      // keys in order
	floor   time.Time
}

func newReplayCache(max int, ttl time.Duration) *replayCache {
	return &replayCache{
		max:     max,
		ttl:     ttl,
		entries: make(map[string]*replayEntry),
		order:   make([]string, max),
	}
}

type replayVerdict int

const (
	replayOK replayVerdict = iota
	replayRepeated
	replayForgotten
)

// use records that (nonce, nc) was used and says whether that is allowed.
// issued is the nonce's issue time; now is the current time.
func (c *replayCache) use(nonce string, issued time.Time, nc uint32, now time.Time) replayVerdict {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire(now)
	e, ok := c.entries[nonce]
	if !ok {
		if !issued.After(c.floor) {
			return replayForgotten
		}
		if c.n == c.max {
			c.evictOldest()
		}
		c.entries[nonce] = &replayEntry{issued: issued, highest: nc, seen: 1}
		c.order[(c.head+c.n)%c.max] = nonce
		c.n++
		return replayOK
	}
	switch {
	case nc > e.highest:
		shift := nc - e.highest
		if shift >= replayWindow {
			e.seen = 0
		} else {
			e.seen <<= shift
		}
		e.seen |= 1
		e.highest = nc
		return replayOK
	case e.highest-nc >= replayWindow:
		return replayRepeated
	default:
		bit := uint64(1) << (e.highest - nc)
		if e.seen&bit != 0 {
			return replayRepeated
		}
		e.seen |= bit
		return replayOK
	}
}

// expire drops entries at the head of the ring whose nonce is past its TTL:
// such a nonce is refused as stale before the cache is consulted. Insertion
// order is close to issue order, so scanning the head finds almost all of
// them; any left behind go when the ring wraps.
func (c *replayCache) expire(now time.Time) {
	for c.n > 0 {
		key := c.order[c.head]
		e := c.entries[key]
		if now.Sub(e.issued) <= c.ttl {
			return
		}
		delete(c.entries, key)
		c.order[c.head] = ""
		c.head = (c.head + 1) % c.max
		c.n--
	}
}

func (c *replayCache) evictOldest() {
	key := c.order[c.head]
	if e := c.entries[key]; e.issued.After(c.floor) {
		c.floor = e.issued
	}
	delete(c.entries, key)
	c.order[c.head] = ""
	c.head = (c.head + 1) % c.max
	c.n--
}

func (c *replayCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}
