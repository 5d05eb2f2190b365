// Package connlimit bounds the connections a stream listener holds open, in
// total and per source, so that idle or slow clients cannot take the
// process's descriptors and memory: each open connection costs a descriptor,
// a goroutine and its buffers. A connection past a limit is closed as soon
// as it is accepted, before anything is read from it, so refusing costs
// almost nothing and a refused client learns at once.
//
// Sources are keyed as ratelimit keys them: an IPv4 address, or the /64 of
// an IPv6 address, so that walking through one's own addresses does not
// lift the limit.
package connlimit

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imcall/b2bua/ratelimit"
)

// Defaults of Config.
const (
	DefaultMaxConns          = 1024
	DefaultMaxConnsPerSource = 128
)

// Config bounds a Listener. Zero fields take the defaults; a negative field
// means no limit of that kind.
type Config struct {
	MaxConns          int // open connections in total
	MaxConnsPerSource int // open connections from one source
	// Logger receives a warning when connections are refused, at most one
	// every warnEvery; nil discards.
	Logger *slog.Logger
}

// warnEvery bounds the refusal warnings, so a flood does not flood the log.
const warnEvery = 10 * time.Second

// Listener is a net.Listener that refuses connections past its limits.
type Listener struct {
	net.Listener
	total, perSource int
	log              *slog.Logger

	mu      sync.Mutex
	open    int
	sources map[netip.Addr]int

	refused  atomic.Uint64
	lastWarn atomic.Int64 // unix nanoseconds
}

// New wraps ln.
func New(ln net.Listener, cfg Config) *Listener {
	l := &Listener{Listener: ln, total: limit(cfg.MaxConns, DefaultMaxConns),
		perSource: limit(cfg.MaxConnsPerSource, DefaultMaxConnsPerSource), log: cfg.Logger,
		sources: map[netip.Addr]int{}}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	return l
}

func limit(v, def int) int {
	switch {
	case v == 0:
		return def
	case v < 0:
		return int(^uint(0) >> 1)
	}
	return v
}

// Accept returns the next connection within the limits; connections past
// them are closed and not returned.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key := source(c.RemoteAddr())
		if l.admit(key) {
			return &conn{Conn: c, l: l, key: key}, nil
		}
		// Counted before the close, so a client that sees the close also
		// sees the count.
		n := l.refused.Add(1)
		c.Close()
		now := time.Now().UnixNano()
		if last := l.lastWarn.Load(); now-last >= int64(warnEvery) && l.lastWarn.CompareAndSwap(last, now) {
			l.log.Warn("connections refused: over the open-connection limit", "source", key.String(),
				"max_conns", l.total, "max_conns_per_source", l.perSource, "refused_total", n)
		}
	}
}

func (l *Listener) admit(key netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open >= l.total || l.sources[key] >= l.perSource {
		return false
	}
	l.open++
	l.sources[key]++
	return true
}

func (l *Listener) release(key netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.sources[key]--; l.sources[key] <= 0 {
		delete(l.sources, key)
	}
}

// Open is the number of connections open now.
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// Refused is the number of connections refused since New.
func (l *Listener) Refused() uint64 { return l.refused.Load() }

// source is the key of a remote address; every address that is not IP
// (a Unix socket) shares the zero key.
func source(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ratelimit.Key(ta.AddrPort().Addr().Unmap())
	}
	return netip.Addr{}
}

// conn gives its place back once, however often it is closed.
type conn struct {
	net.Conn
	l    *Listener
	key  netip.Addr
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.key) })
	return err
}

// NetConn is the accepted connection, as tls.Conn's NetConn is: for a
// look at its socket.
func (c *conn) NetConn() net.Conn { return c.Conn }

var _ net.Listener = (*Listener)(nil)
