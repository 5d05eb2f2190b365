package sip

import (
	"net"
	"net/netip"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

// Tracer is given every SIP message the server sends or receives on its
// listening sockets, for SIP capture (HEP, pcap) and wire counters. It runs
// on the socket's read or write path: TraceSIP must not block, and must
// copy Data to keep it.
//
// Coverage: UDP both ways as the datagrams are (keep-alives excepted);
// TCP and TLS connections the server accepted, both ways, sent as written
// and received as sipgo parsed them (TLS as plaintext); on TCP connections
// sipgo dials itself, what is received but not what is sent.
type Tracer interface {
	TraceSIP(m WireMessage)
}

// WireMessage is one SIP message on the wire.
type WireMessage struct {
	Time          time.Time
	Out           bool   // sent by the server
	Transport     string // "udp", "tcp" or "tls"
	Local, Remote netip.AddrPort
	Data          []byte // the message; valid only during TraceSIP
}

// tracedUDP and tracedStreams wrap the sockets Listen opened so that
// cfg.Tracer sees their traffic; without a Tracer they are returned as they
// are, and the hot path pays nothing.
func (s *Server) tracedUDP(udp net.PacketConn) net.PacketConn {
	if s.cfg.Tracer == nil {
		return udp
	}
	return &tracePacketConn{PacketConn: udp, t: s.cfg.Tracer, local: addrPort(udp.LocalAddr())}
}

func (s *Server) tracedStreams(tcp, tlsL net.Listener) (net.Listener, net.Listener) {
	t := s.cfg.Tracer
	if t == nil {
		return tcp, tlsL
	}
	tcp = &traceListener{Listener: tcp, t: t, transport: "tcp"}
	if tlsL != nil {
		tlsL = &traceListener{Listener: tlsL, t: t, transport: "tls"}
	}
	return tcp, tlsL
}

// traceStreamIn gives the Tracer the messages sipgo parsed from stream
// connections (UDP is traced at the socket, so its datagrams are not
// serialised again).
func (s *Server) traceStreamIn(m sipmsg.Message) {
	tr := m.Transport()
	if tr == "UDP" || tr == "" {
		return
	}
	remote, _ := netip.ParseAddrPort(m.Source())
	local := s.Addr()
	if tr == "TLS" {
		local, _ = netip.ParseAddrPort(s.TLSAddr())
	}
	s.cfg.Tracer.TraceSIP(WireMessage{Time: time.Now(), Transport: lower(tr), Local: local, Remote: remote, Data: []byte(m.String())})
}

func lower(tr string) string {
	switch tr {
	case "TCP":
		return "tcp"
	case "TLS":
		return "tls"
	}
	return tr
}

func addrPort(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.UDPAddr:
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	case *net.TCPAddr:
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// tracePacketConn is the UDP socket with every datagram in and out traced.
type tracePacketConn struct {
	net.PacketConn
	t     Tracer
	local netip.AddrPort
}

// keepAliveMax: datagrams this short are RFC 5626 §4.4.2 keep-alives
// (CRLFs) or noise, never a SIP message.
const keepAliveMax = 4

func (c *tracePacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := c.PacketConn.ReadFrom(b)
	if err == nil && n > keepAliveMax {
		c.t.TraceSIP(WireMessage{Time: time.Now(), Transport: "udp", Local: c.local, Remote: addrPort(addr), Data: b[:n]})
	}
	return n, addr, err
}

func (c *tracePacketConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	n, err := c.PacketConn.WriteTo(b, addr)
	if err == nil && n > keepAliveMax {
		c.t.TraceSIP(WireMessage{Time: time.Now(), Out: true, Transport: "udp", Local: c.local, Remote: addrPort(addr), Data: b[:n]})
	}
	return n, err
}

// traceListener hands out connections whose writes are traced.
type traceListener struct {
	net.Listener
	t         Tracer
	transport string
}

func (l *traceListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &traceConn{Conn: c, t: l.t, transport: l.transport, local: addrPort(c.LocalAddr()), remote: addrPort(c.RemoteAddr())}, nil
}

// traceConn traces what the server writes: sipgo writes one whole message
// per Write (its WriteMsg).
type traceConn struct {
	net.Conn
	t             Tracer
	transport     string
	local, remote netip.AddrPort
}

func (c *traceConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if n > keepAliveMax {
		c.t.TraceSIP(WireMessage{Time: time.Now(), Out: true, Transport: c.transport, Local: c.local, Remote: c.remote, Data: b[:n]})
	}
	return n, err
}
