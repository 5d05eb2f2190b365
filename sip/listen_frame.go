package sip

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// frameConn is a SIP stream connection read under two deadlines: between
// messages, IdleTimeout since the last byte (keep-alive CRLFs included, RFC
// 5626 §3.5.1); within a message, MessageTimeout since its first byte,
// however slowly the rest trickles in (a slowloris gains nothing by sending
// a byte at a time). It frames the stream just enough to know which: the
// end of the headers and the Content-Length of the body (RFC 3261 §7.5,
// §18.3); the parsing proper is sipgo's.
//
// When the peer closes or resets, the error is held for CloseGrace (or until sipgo
// closes the connection) so that the connection stays in sipgo's pool while
// the requests it carried get their server transactions: without it, sipgo
// finds no connection and opens one to the host of the top Via, an address
// taken only from the message (RFC 3261 §18.2.2 wants the answer on the
// request's connection).
type frameConn struct {
	net.Conn
	lim ConnLimits
	now func() time.Time

	closeOnce sync.Once
	closed    chan struct{}
	// onEnd, when set, runs once when the flow fails: the peer closed or
	// reset it, or we closed it (the idle timeout among the reasons).
	onEnd   func()
	endOnce sync.Once

	// Answers once the connection is gone (tcp_respond.go).
	network string // "tcp" or "tls"
	redial  redialer
	gone    atomic.Bool

	// Only Read touches these; sipgo reads a connection on one goroutine.
	inMsg    bool
	deadline time.Time // of the message, or of the first byte
	bodyLeft int
	line     [32]byte // start of the current header line
	lineLen  int      // bytes of the line so far (may exceed len(line))
	clen     int      // Content-Length of the message being read
}

func newFrameConn(c net.Conn, lim ConnLimits, now func() time.Time) *frameConn {
	return &frameConn{Conn: c, lim: lim, now: now, closed: make(chan struct{}),
		deadline: now().Add(lim.MessageTimeout)}
}

// The read timeouts of a message that did not complete in time, and of a
// connection idle too long.
var (
	errMessageTimeout = errors.New("sip: message not complete within the message timeout")
	errIdleTimeout    = errors.New("sip: connection idle past the idle timeout")
)

func (c *frameConn) Read(b []byte) (int, error) {
	dl := c.deadline
	if !c.inMsg && dl.IsZero() {
		dl = c.now().Add(c.lim.IdleTimeout)
	}
	if err := c.Conn.SetReadDeadline(dl); err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.scan(b[:n])
	}
	if err == nil {
		return n, nil
	}
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		// Our own policy, not a fault: wrapped as an EOF, sipgo closes
		// the connection and logs it at debug level, so a slowloris
		// flood does not flood the log.
		if c.inMsg {
			err = fmt.Errorf("%w: %w: %w", io.EOF, errMessageTimeout, err)
		} else {
			err = fmt.Errorf("%w: %w: %w", io.EOF, errIdleTimeout, err)
		}
	case n == 0 && !errors.Is(err, net.ErrClosed):
		// The peer closed (EOF) or reset: the flow has failed now, though
		// the error is held, see the type's comment.
		c.gone.Store(true)
		c.ended()
		t := time.NewTimer(c.lim.CloseGrace)
		select {
		case <-t.C:
		case <-c.closed:
			t.Stop()
		}
	}
	return n, err
}

func (c *frameConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	err := c.Conn.Close()
	c.ended()
	return err
}

func (c *frameConn) ended() {
	if c.onEnd != nil {
		c.endOnce.Do(c.onEnd)
	}
}

// scan advances the framing over p.
func (c *frameConn) scan(p []byte) {
	for len(p) > 0 {
		if c.bodyLeft > 0 {
			k := min(c.bodyLeft, len(p))
			c.bodyLeft -= k
			p = p[k:]
			if c.bodyLeft == 0 {
				c.endMessage()
			}
			continue
		}
		b := p[0]
		p = p[1:]
		if !c.inMsg {
			if b == '\r' || b == '\n' {
				c.deadline = time.Time{} // a keep-alive: idle again from now
				continue
			}
			c.inMsg, c.clen, c.lineLen = true, 0, 0
			c.deadline = c.now().Add(c.lim.MessageTimeout)
		}
		switch b {
		case '\r':
		case '\n':
			if c.lineLen == 0 { // empty line: end of the headers
				if c.clen > 0 {
					c.bodyLeft = c.clen
				} else {
					c.endMessage()
				}
				continue
			}
			c.headerLine()
			c.lineLen = 0
		default:
			if c.lineLen < len(c.line) {
				c.line[c.lineLen] = b
			}
			c.lineLen++
		}
	}
}

func (c *frameConn) endMessage() {
	c.inMsg = false
	c.deadline = time.Time{}
}

// headerLine takes the Content-Length (or its compact form l) of the line
// just ended; a folded continuation line does not start a header.
func (c *frameConn) headerLine() {
	n := min(c.lineLen, len(c.line))
	l := c.line[:n]
	if n == 0 || l[0] == ' ' || l[0] == '\t' {
		return
	}
	i := 0
	for i < n && l[i] != ':' {
		i++
	}
	if i == n {
		return
	}
	name := trimSpace(l[:i])
	if !(len(name) == 1 && name[0]|0x20 == 'l') && !equalFold(name, "content-length") {
		return
	}
	v := trimSpace(l[i+1:])
	cl := 0
	for _, d := range v {
		if d < '0' || d > '9' || cl > 1<<24 {
			return // sipgo refuses it; nothing to frame
		}
		cl = cl*10 + int(d-'0')
	}
	c.clen = cl
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func equalFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range b {
		if b[i]|0x20 != lower[i] {
			return false
		}
	}
	return true
}
