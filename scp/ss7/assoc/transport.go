// Package assoc runs M3UA associations (RFC 4666) over TCP or SCTP: the
// transport that carries whole M3UA messages, the ASP side that brings an
// association up (ASPUP, ASPAC), keeps it alive with BEAT and reconnects
// with backoff, and the server side (SGP/IPSP) that answers them and hands
// DATA to a handler.
package assoc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/ishidawataru/sctp"

	"github.com/imcall/b2bua/scp/ss7/m3ua"
	"github.com/imcall/b2bua/scp/ss7/pcap"
)

// writeTimeout bounds one message write on a stream transport.
const writeTimeout = 5 * time.Second

// Networks.
const (
	TCP  = "tcp"
	SCTP = "sctp"
)

// ErrNoSCTP reports a kernel without SCTP sockets.
var ErrNoSCTP = errors.New("assoc: this kernel does not support SCTP (load the sctp module, or use M3UA over TCP)")

// Conn carries whole M3UA messages.
type Conn interface {
	// ReadMsg returns the next complete message.
	ReadMsg() ([]byte, error)
	// WriteMsg sends one message on an SCTP stream (ignored on TCP). It
	// is safe for concurrent use.
	WriteMsg(b []byte, stream uint16) error
	Close() error
	LocalAddr() netip.AddrPort
	RemoteAddr() netip.AddrPort
}

// StreamFor is the SCTP stream for a message: management on 0, DATA on 1
// (RFC 4666 §1.4.7; peers answer DATA on stream 0 with an error).
func StreamFor(msg []byte) uint16 {
	if len(msg) > 3 && msg[2] == m3ua.ClassXFER {
		return 1
	}
	return 0
}

// CheckNetwork validates a network name and, for SCTP, that the kernel
// can open SCTP sockets, so that a misconfiguration fails at start.
func CheckNetwork(network string) error {
	switch network {
	case TCP:
		return nil
	case SCTP:
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, syscall.IPPROTO_SCTP)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrNoSCTP, err)
		}
		syscall.Close(fd)
		return nil
	}
	return fmt.Errorf("assoc: unknown network %q (want tcp or sctp)", network)
}

// Dial opens a transport to addr.
func Dial(ctx context.Context, network, addr string) (Conn, error) {
	switch network {
	case TCP:
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return newTCPConn(c), nil
	case SCTP:
		if err := CheckNetwork(SCTP); err != nil {
			return nil, err
		}
		ra, err := sctp.ResolveSCTPAddr("sctp", addr)
		if err != nil {
			return nil, err
		}
		// Two streams each way: 0 for management, 1 for DATA.
		c, err := sctp.DialSCTPExt("sctp", nil, ra, sctp.InitMsg{NumOstreams: 2, MaxInstreams: 2})
		if err != nil {
			return nil, err
		}
		return &sctpConn{c: c, buf: make([]byte, m3ua.MaxLen)}, nil
	}
	return nil, CheckNetwork(network)
}

// Listener accepts transports.
type Listener interface {
	Accept() (Conn, error)
	Close() error
	Addr() netip.AddrPort
}

// Listen opens a listener on addr.
func Listen(network, addr string) (Listener, error) {
	switch network {
	case TCP:
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, err
		}
		return tcpListener{ln}, nil
	case SCTP:
		if err := CheckNetwork(SCTP); err != nil {
			return nil, err
		}
		la, err := sctp.ResolveSCTPAddr("sctp", addr)
		if err != nil {
			return nil, err
		}
		ln, err := sctp.ListenSCTPExt("sctp", la, sctp.InitMsg{NumOstreams: 2, MaxInstreams: 2})
		if err != nil {
			return nil, err
		}
		return sctpListener{ln}, nil
	}
	return nil, CheckNetwork(network)
}

// WrapListener adapts a TCP net.Listener (e.g. one a test opened).
func WrapListener(ln net.Listener) Listener { return tcpListener{ln} }

type tcpListener struct{ ln net.Listener }

func (l tcpListener) Accept() (Conn, error) {
	c, err := l.ln.Accept()
	if err != nil {
		return nil, err
	}
	return newTCPConn(c), nil
}
func (l tcpListener) Close() error         { return l.ln.Close() }
func (l tcpListener) Addr() netip.AddrPort { return addrPort(l.ln.Addr()) }

type sctpListener struct{ ln *sctp.SCTPListener }

func (l sctpListener) Accept() (Conn, error) {
	c, err := l.ln.AcceptSCTP()
	if err != nil {
		return nil, err
	}
	return &sctpConn{c: c, buf: make([]byte, m3ua.MaxLen)}, nil
}
func (l sctpListener) Close() error         { return l.ln.Close() }
func (l sctpListener) Addr() netip.AddrPort { return addrPort(l.ln.Addr()) }

// tcpConn frames M3UA on a byte stream by the header's length (RFC 4666
// §1.3.1).
type tcpConn struct {
	c  net.Conn
	r  *bufio.Reader
	mu sync.Mutex
}

func newTCPConn(c net.Conn) *tcpConn { return &tcpConn{c: c, r: bufio.NewReader(c)} }

func (t *tcpConn) ReadMsg() ([]byte, error) { return m3ua.ReadMessage(t.r) }
func (t *tcpConn) WriteMsg(b []byte, _ uint16) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	// A peer that stops reading must not hold every sender forever; and
	// after a partial write the stream's framing is lost, so the
	// connection is closed and the association comes up afresh.
	_ = t.c.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := t.c.Write(b); err != nil {
		t.c.Close()
		return err
	}
	return nil
}
func (t *tcpConn) Close() error               { return t.c.Close() }
func (t *tcpConn) LocalAddr() netip.AddrPort  { return addrPort(t.c.LocalAddr()) }
func (t *tcpConn) RemoteAddr() netip.AddrPort { return addrPort(t.c.RemoteAddr()) }

// sctpConn sends each message as one SCTP message with PPID 3. The
// library converts the PPID to network byte order itself (see
// ishidawataru/sctp issues 35 and 66; RFC 6458 §5.3.2).
type sctpConn struct {
	c   *sctp.SCTPConn
	buf []byte
	mu  sync.Mutex
}

func (s *sctpConn) ReadMsg() ([]byte, error) {
	n, err := s.c.Read(s.buf)
	if err != nil {
		return nil, err
	}
	b := append([]byte(nil), s.buf[:n]...)
	if _, err := m3ua.Decode(b); err != nil && !errors.Is(err, m3ua.ErrParameter) {
		return nil, err
	}
	return b, nil
}
func (s *sctpConn) WriteMsg(b []byte, stream uint16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.c.SCTPWrite(b, &sctp.SndRcvInfo{Stream: stream, PPID: m3ua.PPID})
	return err
}
func (s *sctpConn) Close() error               { return s.c.Close() }
func (s *sctpConn) LocalAddr() netip.AddrPort  { return addrPort(s.c.LocalAddr()) }
func (s *sctpConn) RemoteAddr() netip.AddrPort { return addrPort(s.c.RemoteAddr()) }

func addrPort(a net.Addr) netip.AddrPort {
	switch v := a.(type) {
	case *net.TCPAddr:
		return v.AddrPort()
	case *sctp.SCTPAddr:
		if len(v.IPAddrs) > 0 {
			ip, _ := netip.AddrFromSlice(v.IPAddrs[0].IP)
			return netip.AddrPortFrom(ip.Unmap(), uint16(v.Port))
		}
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// Tap records every message a Conn reads or writes in a capture.
func Tap(c Conn, w *pcap.Writer) Conn {
	if w == nil {
		return c
	}
	return &tapConn{Conn: c, w: w}
}

type tapConn struct {
	Conn
	w *pcap.Writer
}

func (t *tapConn) ReadMsg() ([]byte, error) {
	b, err := t.Conn.ReadMsg()
	if err == nil {
		_ = t.w.WriteM3UA(t.RemoteAddr(), t.LocalAddr(), StreamFor(b), b)
	}
	return b, err
}

func (t *tapConn) WriteMsg(b []byte, stream uint16) error {
	// Recorded before sending so that the answer never precedes it.
	_ = t.w.WriteM3UA(t.LocalAddr(), t.RemoteAddr(), stream, b)
	return t.Conn.WriteMsg(b, stream)
}
