// Package ratelimit keeps per-source limits for the network-facing parts
// of the product: a token bucket per source address (SIP request floods)
// and a failure counter per key (a source, or a user name from a source)
// with a lock-out (password and token guessing). Both keep at most a fixed
// number of sources, so a flood from spoofed addresses cannot grow memory: entries that carry no information
// any more are swept, and sources beyond the bound share one overflow
// entry, which limits them together.
//
// IPv6 sources are keyed by their /64, the block one subscriber normally
// holds, so that walking through one's own addresses does not reset a
// limit.
package ratelimit

import (
	"math"
	"net/netip"
	"sync"
	"time"
)

// DefaultMaxSources bounds the sources a Limiter or Lockout tracks.
const DefaultMaxSources = 65536

// sweepEvery is how often a full table is swept; between sweeps new
// sources share the overflow entry, so a flood costs no scan per packet.
const sweepEvery = time.Second

// Key is the source a limit applies to: the address itself for IPv4, the
// /64 for IPv6.
func Key(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// Config configures a Limiter.
type Config struct {
	Rate       float64 // tokens added per second per source; <= 0: no limit
	Burst      int     // bucket size; < 1: max(1, Rate)
	MaxSources int     // 0: DefaultMaxSources
}

type bucket struct {
	tokens float64
	last   time.Time
}

// Limiter is a token bucket per source address (keyed by Key).
type Limiter = KeyedLimiter[netip.Addr]

// KeyedLimiter is a token bucket per key (a source, an authenticated
// user, ...). It is safe for concurrent use.
type KeyedLimiter[K comparable] struct {
	rate, burst float64
	max         int
	key         func(K) K

	mu        sync.Mutex
	buckets   map[K]*bucket
	overflow  bucket
	lastSweep time.Time
}

// New returns a Limiter; with cfg.Rate <= 0 it allows everything.
func New(cfg Config) *Limiter { return NewKeyed(cfg, Key) }

// NewKeyed returns a KeyedLimiter; norm, if not nil, maps a key to the one
// it counts under. With cfg.Rate <= 0 it allows everything.
func NewKeyed[K comparable](cfg Config, norm func(K) K) *KeyedLimiter[K] {
	if norm == nil {
		norm = func(k K) K { return k }
	}
	l := &KeyedLimiter[K]{rate: cfg.Rate, burst: float64(cfg.Burst), max: cfg.MaxSources, key: norm, buckets: map[K]*bucket{}}
	if l.burst < 1 {
		l.burst = math.Max(1, math.Ceil(cfg.Rate))
	}
	if l.max <= 0 {
		l.max = DefaultMaxSources
	}
	l.overflow.tokens = l.burst
	return l
}

// Enabled reports whether the limiter limits anything.
func (l *KeyedLimiter[K]) Enabled() bool { return l != nil && l.rate > 0 }

// Allow takes one token from src's bucket at now. When the bucket is empty
// it returns false and how long until a token is back.
func (l *KeyedLimiter[K]) Allow(src K, now time.Time) (bool, time.Duration) {
	if !l.Enabled() {
		return true, 0
	}
	k := l.key(src)
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[k]
	if b == nil {
		if len(l.buckets) >= l.max {
			l.sweep(now)
		}
		if len(l.buckets) >= l.max {
			b = &l.overflow
		} else {
			b = &bucket{tokens: l.burst, last: now}
			l.buckets[k] = b
		}
	}
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = math.Min(l.burst, b.tokens+el*l.rate)
	}
	if now.After(b.last) {
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
	return false, wait
}

// sweep drops the buckets that have refilled: they are the same as a new
// one. It runs at most once per sweepEvery.
func (l *KeyedLimiter[K]) sweep(now time.Time) {
	if now.Sub(l.lastSweep) < sweepEvery {
		return
	}
	l.lastSweep = now
	full := time.Duration(l.burst / l.rate * float64(time.Second))
	for k, b := range l.buckets {
		if now.Sub(b.last) >= full {
			delete(l.buckets, k)
		}
	}
}

// Len is the number of sources tracked.
func (l *KeyedLimiter[K]) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// LockoutConfig configures a Lockout.
type LockoutConfig struct {
	MaxFailures int           // failures within Window that lock a key out; <= 0: never
	Window      time.Duration // 0: one minute
	Lockout     time.Duration // how long a key stays locked out; 0: Window
	MaxSources  int           // keys tracked; 0: DefaultMaxSources
}

type failures struct {
	count  int
	start  time.Time // of the current window
	locked time.Time // locked out until then
}

// Lockout counts failures per source address (keyed by Key) and locks a
// source out once it has failed MaxFailures times within Window.
type Lockout = KeyedLockout[netip.Addr]

// NewLockout returns a Lockout; with cfg.MaxFailures <= 0 it never locks.
func NewLockout(cfg LockoutConfig) *Lockout {
	return NewKeyedLockout(cfg, Key)
}

// KeyedLockout counts failures per key (a source, a user name and a
// source, ...) and locks a key out once it has failed MaxFailures times
// within Window. It is safe for concurrent use.
type KeyedLockout[K comparable] struct {
	cfg LockoutConfig
	key func(K) K

	mu        sync.Mutex
	sources   map[K]*failures
	overflow  failures
	lastSweep time.Time
}

// NewKeyedLockout returns a KeyedLockout; norm, if not nil, maps a key to
// the one it counts under (Key for addresses). With cfg.MaxFailures <= 0
// it never locks.
func NewKeyedLockout[K comparable](cfg LockoutConfig, norm func(K) K) *KeyedLockout[K] {
	if cfg.Window <= 0 {
		cfg.Window = time.Minute
	}
	if cfg.Lockout <= 0 {
		cfg.Lockout = cfg.Window
	}
	if cfg.MaxSources <= 0 {
		cfg.MaxSources = DefaultMaxSources
	}
	if norm == nil {
		norm = func(k K) K { return k }
	}
	return &KeyedLockout[K]{cfg: cfg, key: norm, sources: map[K]*failures{}}
}

// Enabled reports whether the lockout ever locks.
func (l *KeyedLockout[K]) Enabled() bool { return l != nil && l.cfg.MaxFailures > 0 }

// Locked returns how long k stays locked out at now; 0 when it is not.
func (l *KeyedLockout[K]) Locked(k K, now time.Time) time.Duration {
	if !l.Enabled() {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.sources[l.key(k)]
	if f == nil {
		if len(l.sources) < l.cfg.MaxSources {
			return 0
		}
		f = &l.overflow
	}
	if d := f.locked.Sub(now); d > 0 {
		return d
	}
	return 0
}

// Fail records a failure of k at now and returns how long k is now
// locked out (0: not yet).
func (l *KeyedLockout[K]) Fail(k K, now time.Time) time.Duration {
	if !l.Enabled() {
		return 0
	}
	k = l.key(k)
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.sources[k]
	if f == nil {
		if len(l.sources) >= l.cfg.MaxSources {
			l.sweep(now)
		}
		if len(l.sources) >= l.cfg.MaxSources {
			// Keys beyond the bound are counted together: guessing
			// needs answers, so they are seldom spoofed, and a full table
			// must not be a way around the lock-out.
			f = &l.overflow
		} else {
			f = &failures{start: now}
			l.sources[k] = f
		}
	}
	if now.Sub(f.start) >= l.cfg.Window {
		f.count, f.start = 0, now
	}
	f.count++
	if f.count >= l.cfg.MaxFailures {
		f.locked = now.Add(l.cfg.Lockout)
		f.count, f.start = 0, now
	}
	if d := f.locked.Sub(now); d > 0 {
		return d
	}
	return 0
}

// Succeed forgets k's failures at now (not a lock-out in force). A caller
// whose successes can come from someone other than the one failing (one
// source, many accounts) must not call it, or interleaved successes would
// reset the count.
func (l *KeyedLockout[K]) Succeed(k K, now time.Time) {
	if !l.Enabled() {
		return
	}
	k = l.key(k)
	l.mu.Lock()
	defer l.mu.Unlock()
	if f := l.sources[k]; f != nil && !now.Before(f.locked) {
		delete(l.sources, k)
	}
}

// sweep drops keys whose window and lock-out are both over.
func (l *KeyedLockout[K]) sweep(now time.Time) {
	if now.Sub(l.lastSweep) < sweepEvery {
		return
	}
	l.lastSweep = now
	for k, f := range l.sources {
		if now.Sub(f.start) >= l.cfg.Window && !now.Before(f.locked) {
			delete(l.sources, k)
		}
	}
}

// Len is the number of keys tracked.
func (l *KeyedLockout[K]) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.sources)
}

// Recent remembers keys for a while (who authenticated from where), at
// most a fixed number: when full, a key is not added until the expired
// ones are swept, so a flood cannot grow memory, and forgetting only
// costs a key the privilege remembering gave it. It is safe for
// concurrent use.
type Recent[K comparable] struct {
	ttl time.Duration
	max int

	mu        sync.Mutex
	until     map[K]time.Time
	lastSweep time.Time
}

// NewRecent returns a Recent that keeps a key for ttl after it was last
// added, at most max keys (0: DefaultMaxSources).
func NewRecent[K comparable](ttl time.Duration, max int) *Recent[K] {
	if max <= 0 {
		max = DefaultMaxSources
	}
	return &Recent[K]{ttl: ttl, max: max, until: map[K]time.Time{}}
}

// Add remembers k from now on for the ttl.
func (r *Recent[K]) Add(k K, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.until[k]; !ok && len(r.until) >= r.max {
		if now.Sub(r.lastSweep) >= sweepEvery {
			r.lastSweep = now
			for k, t := range r.until {
				if !now.Before(t) {
					delete(r.until, k)
				}
			}
		}
		if len(r.until) >= r.max {
			return
		}
	}
	r.until[k] = now.Add(r.ttl)
}

// Has reports whether k was added within the ttl before now.
func (r *Recent[K]) Has(k K, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.until[k]
	return ok && now.Before(t)
}

// Len is the number of keys remembered, expired ones not yet swept included.
func (r *Recent[K]) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.until)
}
