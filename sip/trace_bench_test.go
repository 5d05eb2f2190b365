package sip

import (
	"net"
	"testing"
)

// nullConn is a PacketConn whose writes cost nothing, to isolate the
// trace hook's own cost.
type nullConn struct{ net.PacketConn }

func (nullConn) WriteTo(b []byte, _ net.Addr) (int, error) { return len(b), nil }
func (nullConn) LocalAddr() net.Addr                       { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5060} }

// countTracer does what the metrics' tracer does with an answer: look at
// its first bytes.
type countTracer struct{ n int }

func (c *countTracer) TraceSIP(m WireMessage) {
	if m.Out && len(m.Data) > 8 && m.Data[0] == 'S' {
		c.n++
	}
}

var benchMsg = []byte("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\nContent-Length: 0\r\n\r\n")

// BenchmarkTraceHook is the cost the trace hook adds to each datagram
// sent (ns/op over a write that costs nothing).
func BenchmarkTraceHook(b *testing.B) {
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5070}
	for _, tc := range []struct {
		name string
		conn net.PacketConn
	}{
		{"bare", nullConn{}},
		{"traced", &tracePacketConn{PacketConn: nullConn{}, t: &countTracer{}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = tc.conn.WriteTo(benchMsg, to)
			}
		})
	}
}
