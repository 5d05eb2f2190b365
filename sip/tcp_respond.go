package sip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

// redialTimeout bounds the connection opened to send a response whose
// request's connection is gone: the write waiting on it holds the
// transaction (and the call's loop) that long at most.
const redialTimeout = 2 * time.Second

// errPeerGone is a request written on a connection the peer has closed:
// unlike a response, it has no address of its own to go to instead.
var errPeerGone = errors.New("sip: the peer closed the connection")

// redialer opens (or finds in sipgo's pool) a connection of network to
// addr, read by sipgo like any other; the caller releases it with TryClose.
type redialer func(ctx context.Context, network string, addr netip.AddrPort) (sipmsg.Connection, error)

// Write sends b on the connection while it is open. Once the peer has
// closed or reset it, a response goes on a connection to the peer's
// address at the sent-by port of its top Via instead (RFC 3261 §18.2.2:
// "If that connection is no longer open, the server SHOULD open a
// connection to the IP address in the received parameter ... using the
// port in the sent-by value, or the default port for that transport").
// The received address is the connection's source (via_received.go), and
// it is taken from the socket, not the message: a Via's host, name or
// address, is never dialed (§18.2.2's last resort, RFC 3263 §5, is not
// taken, so an answer cannot be reflected to a third party). sipgo's
// server transaction writes on the request's connection only; redirecting
// here keeps the transaction alive, so a CANCEL that comes on a new
// connection still finds it.
func (c *frameConn) Write(b []byte) (int, error) {
	if !c.gone.Load() && c.redial != nil && peerClosed(c.Conn) {
		// The FIN came, and Read has not seen it yet: writing now would
		// succeed and be lost to the peer's reset.
		c.gone.Store(true)
	}
	if !c.gone.Load() {
		n, err := c.Conn.Write(b)
		if err == nil || n > 0 || c.redial == nil {
			return n, err
		}
		// EPIPE or ECONNRESET: the peer went away and nothing was sent;
		// or the connection was closed here, idle past the idle timeout
		// while a transaction on it was still to be answered.
		c.gone.Store(true)
	}
	if c.redial == nil {
		return 0, fmt.Errorf("%w: %w", errPeerGone, net.ErrClosed)
	}
	return c.redirect(b)
}

// redirect writes the response b on a connection to the peer's address and
// its top Via's sent-by port.
func (c *frameConn) redirect(b []byte) (int, error) {
	if !bytes.HasPrefix(b, []byte("SIP/2.0 ")) {
		return 0, fmt.Errorf("%w: %w", errPeerGone, net.ErrClosed)
	}
	dst, err := c.sentByOf(b)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", errPeerGone, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), redialTimeout)
	defer cancel()
	conn, err := c.redial(ctx, c.network, dst)
	if err != nil {
		return 0, fmt.Errorf("%w: reconnect to %s: %w", errPeerGone, dst, err)
	}
	defer conn.TryClose()
	w, ok := conn.(io.Writer)
	if !ok {
		return 0, fmt.Errorf("%w: connection to %s cannot write", errPeerGone, dst)
	}
	return w.Write(b)
}

// sentByOf is the peer's address (the socket's, never the message's) with
// the port of the sent-by in the response's top Via, or the transport's
// default port if it names none.
func (c *frameConn) sentByOf(b []byte) (netip.AddrPort, error) {
	ra, ok := c.Conn.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("peer address %v", c.Conn.RemoteAddr())
	}
	m, err := sipmsg.ParseMessage(b)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("response unreadable: %w", err)
	}
	via := m.Via()
	if via == nil {
		return netip.AddrPort{}, errors.New("response without Via")
	}
	port := via.Port
	if port <= 0 || port > 65535 {
		port = sipmsg.DefaultPort(c.network)
	}
	return netip.AddrPortFrom(ra.AddrPort().Addr().Unmap(), uint16(port)), nil
}

// redialOpen is l's redialer while l is open: once the listener is closed
// (Serve is ending, the transport layer with it), a response finds no
// new connection rather than one that nothing would close.
func (l *guardListener) redialOpen(ctx context.Context, network string, addr netip.AddrPort) (sipmsg.Connection, error) {
	if l.redial == nil || l.closed.Load() {
		return nil, net.ErrClosed
	}
	return l.redial(ctx, network, addr)
}

// redial is the Server's redialer: sipgo's transport layer opens the
// connection, or reuses one already open to addr, and reads it.
func (s *Server) redial(ctx context.Context, network string, addr netip.AddrPort) (sipmsg.Connection, error) {
	req := sipmsg.NewRequest(sipmsg.OPTIONS, sipmsg.Uri{Scheme: "sip", Host: addr.Addr().String(), Port: int(addr.Port())})
	req.SetTransport(strings.ToUpper(network))
	req.SetDestination(addr.String())
	req.AppendHeader(s.via(network)) // only to satisfy the transport: never sent
	conn, err := s.ua.TransportLayer().ClientRequestConnection(ctx, req)
	if err != nil {
		return nil, err
	}
	s.log.Debug("response sent on a new connection: the request's is gone", "to", addr.String(), "transport", network)
	return conn, nil
}
