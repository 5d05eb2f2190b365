package sip

import (
	"context"
	"net"
	"strconv"
	"sync/atomic"
	"syscall"

	sipmsg "github.com/emiago/sipgo/sip"
	"golang.org/x/sys/unix"
)

// listeners are the sockets Listen opened and the address the server
// advertises on them. They are fixed once Listen returns and published
// through an atomic pointer, so that building a Via or a Contact, which
// every request and answer does, takes no lock.
type listeners struct {
	// udp are the sockets of the SIP port, one reader each. With more
	// than one the kernel spreads datagrams over them by a hash of the
	// source and destination (SO_REUSEPORT), so a flow (one peer's
	// address and port) always reaches the same socket: its messages are
	// read, and handed to the call's loop (onWire), in the order they
	// came.
	udp []net.PacketConn
	tcp net.Listener
	tls net.Listener // nil without TLS

	host    string // advertised host of our Via and Contact
	port    int    // UDP and TCP
	tlsPort int
	laddr   sipmsg.Addr // the UDP socket requests leave from
}

// listenUDP binds one UDP socket of the SIP port; shared marks it as one
// of several on the port (SO_REUSEPORT, which only sockets of the same
// user can join).
func listenUDP(host string, port int, shared bool) (net.PacketConn, error) {
	lc := net.ListenConfig{}
	if shared {
		lc.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			if err := rc.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			}); err != nil {
				return err
			}
			return serr
		}
	}
	c, err := lc.ListenPacket(context.Background(), "udp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return nil, err
	}
	if uc, ok := c.(*net.UDPConn); ok {
		// A burst must not overflow the kernel's default buffer (about
		// 200 KB), or the lost 180s and 200s come back as
		// retransmissions. The kernel caps this at net.core.rmem_max.
		_ = uc.SetReadBuffer(4 << 20)
		_ = uc.SetWriteBuffer(4 << 20)
	}
	return c, nil
}

// countingConn counts the datagrams its reader took, so that the spread
// over the readers can be seen (UDPReaderDatagrams).
type countingConn struct {
	net.PacketConn
	n atomic.Uint64
}

func newCountingConn(c net.PacketConn) *countingConn { return &countingConn{PacketConn: c} }

func (c *countingConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, a, err := c.PacketConn.ReadFrom(b)
	if err == nil {
		c.n.Add(1)
	}
	return n, a, err
}

func closeAll(cs []net.PacketConn) {
	for _, c := range cs {
		c.Close()
	}
}

// UDPReaderDatagrams is how many datagrams each UDP reader has read since
// Listen, one entry per socket of the SIP port; nil before Listen.
func (s *Server) UDPReaderDatagrams() []uint64 {
	ln := s.ln.Load()
	if ln == nil {
		return nil
	}
	out := make([]uint64, len(ln.udp))
	for i, c := range ln.udp {
		if cc, ok := c.(*countingConn); ok {
			out[i] = cc.n.Load()
		}
	}
	return out
}
