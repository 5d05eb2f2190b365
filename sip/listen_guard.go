package sip

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/imcall/b2bua/connlimit"
)

// ConnLimits bound SIP's stream (TCP and TLS) connections, so that idle,
// slow or simply many clients cannot take the descriptors and memory that
// UDP, the registry and the RTP proxy need. Zero fields take the defaults.
type ConnLimits struct {
	// MaxConns and MaxConnsPerSource bound the open connections of each
	// stream listener; past them a connection is closed as soon as it is
	// accepted. 0: connlimit's defaults, and never more than a quarter of
	// the soft RLIMIT_NOFILE (nofileQuarter), so that descriptors stay in
	// reserve; negative: no limit.
	MaxConns, MaxConnsPerSource int
	// IdleTimeout closes a connection on which nothing arrived for this
	// long between messages. RFC 5626 §4.4.1 keep-alives (CRLF) count, so a
	// registered flow that keeps itself alive stays open. 0: 180s, above
	// the 95-120 s keep-alive interval RFC 5626 §4.4.1 recommends.
	IdleTimeout time.Duration
	// MessageTimeout bounds the time from a message's first byte to its
	// last (headers and body), and from a connection's accept to its first
	// byte (the TLS handshake included): a half-sent message cannot hold a
	// connection open. 0: 10s.
	MessageTimeout time.Duration
	// CloseGrace keeps a connection the peer has closed in the pool this
	// long, so that the requests it carried get their transactions on it,
	// whose answers then go to its source address (tcp_respond.go), rather
	// than on a connection sipgo would open to an address named in their
	// Via (RFC 3261 §18.2.2). 0: 2s.
	CloseGrace time.Duration
}

func (c ConnLimits) withDefaults() ConnLimits {
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 180 * time.Second
	}
	if c.MessageTimeout <= 0 {
		c.MessageTimeout = 10 * time.Second
	}
	if c.CloseGrace <= 0 {
		c.CloseGrace = 2 * time.Second
	}
	if q := nofileQuarter(); c.MaxConns == 0 {
		c.MaxConns = min(connlimit.DefaultMaxConns, q)
	}
	if c.MaxConnsPerSource == 0 {
		c.MaxConnsPerSource = min(connlimit.DefaultMaxConnsPerSource, max(c.MaxConns, 1))
	}
	return c
}

// nofileQuarter is a quarter of the soft descriptor limit (at least 8).
func nofileQuarter() int {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil || r.Cur > 1<<30 {
		return connlimit.DefaultMaxConns
	}
	return max(int(r.Cur/4), 8)
}

// Accept backoff: from acceptBackoffMin, doubling up to acceptBackoffMax,
// the figures of net/http's Server.Serve.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
	acceptWarnEvery  = 10 * time.Second
)

// guardListener is the listener sipgo serves a stream transport on. sipgo's
// accept loop ends at its first error, and SIP over that transport never
// comes back (EMFILE did exactly that); here every accept error but the
// listener's own close is logged and retried with backoff. Connections
// past the limits are refused by the connlimit.Listener below it, TLS is
// layered above that count, and every connection is read under the
// deadlines of frameConn.
type guardListener struct {
	inner  *connlimit.Listener
	tls    *tls.Config // nil: plain TCP
	lim    ConnLimits
	log    *slog.Logger
	now    func() time.Time
	redial redialer // answers whose connection is gone (tcp_respond.go)
	// flows, when set, is told of every connection accepted and of its
	// end, by flowID(transport, remote address) (flow.go).
	flows     *flowTable
	transport string

	closed   atomic.Bool
	failures atomic.Uint64
	lastWarn atomic.Int64
}

func newGuardListener(ln net.Listener, tlsConf *tls.Config, lim ConnLimits, log *slog.Logger, redial redialer) *guardListener {
	return &guardListener{
		inner: connlimit.New(ln, connlimit.Config{MaxConns: lim.MaxConns, MaxConnsPerSource: lim.MaxConnsPerSource, Logger: log}),
		tls:   tlsConf, lim: lim, log: log, now: time.Now, redial: redial,
	}
}

func (l *guardListener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.inner.Accept()
		if err == nil {
			fc := newFrameConn(c, l.lim, l.now)
			fc.network, fc.redial = "tcp", l.redialOpen
			if l.tls != nil {
				fc.Conn, fc.network = tls.Server(c, l.tls), "tls"
			}
			if l.flows != nil {
				id := flowID(l.transport, c.RemoteAddr().String())
				l.flows.opened(id)
				fc.onEnd = func() { l.flows.closed(id) }
			}
			return fc, nil
		}
		if l.closed.Load() || errors.Is(err, net.ErrClosed) {
			return nil, err
		}
		if delay == 0 {
			delay = acceptBackoffMin
		} else if delay *= 2; delay > acceptBackoffMax {
			delay = acceptBackoffMax
		}
		n := l.failures.Add(1)
		now := time.Now().UnixNano()
		if last := l.lastWarn.Load(); now-last >= int64(acceptWarnEvery) && l.lastWarn.CompareAndSwap(last, now) {
			l.log.Warn("SIP accept failed: retrying", "listener", l.Addr().String(), "err", err, "retry_in", delay, "failures_total", n)
		}
		time.Sleep(delay)
	}
}

func (l *guardListener) Close() error {
	l.closed.Store(true)
	return l.inner.Close()
}

func (l *guardListener) Addr() net.Addr { return l.inner.Addr() }

// AcceptFailures is how many accepts failed since the listener opened.
func (l *guardListener) AcceptFailures() uint64 { return l.failures.Load() }

var _ net.Listener = (*guardListener)(nil)
