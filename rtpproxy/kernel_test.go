//go:build linux

package rtpproxy

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/imcall/b2bua/internal/testenv"
)

// kernelProxy is a test proxy with in-kernel forwarding on. We run as
// root here and in CI; elsewhere the test fails under CI and is skipped
// otherwise, since loading BPF needs the privilege.
func kernelProxy(t *testing.T, base int) *Proxy {
	t.Helper()
	needKernel(t)
	return newTestProxy(t, base, func(c *Config) { c.Kernel = KernelOn })
}

func needKernel(t *testing.T) {
	t.Helper()
	k, err := loadBPF(netip.MustParseAddr("127.0.0.1"), 1)
	if err != nil {
		if testenv.CI() {
			t.Fatalf("in-kernel forwarding unavailable under CI: %v", err)
		}
		t.Skipf("in-kernel forwarding unavailable: %v", err)
	}
	k.close()
}

// eventually waits (bounded) for the sync goroutine to act on the map.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func legStats(c *Call, l Leg) LegStats {
	for _, s := range c.Stats() {
		if s.Leg == l && !s.Removed {
			return s
		}
	}
	return LegStats{}
}

func inKernel(c *Call, l Leg) bool { return legStats(c, l).Kernel }

// userPackets is how many of leg l's RTP packets userspace admitted: the
// relay thread counts a packet before it sends it on, so once the receiver
// has it, the count includes it if userspace relayed it. What the kernel
// forwards is folded in only when a stream leaves the kernel.
func userPackets(c *Call, l Leg) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	ep := c.streams[0].endpointOf(l)
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return ep.st.packets
}

// latchBoth sends one packet each way through userspace, which latches both
// parties, and waits for both directions to move into the kernel.
func latchBoth(t *testing.T, c *Call, a, b *party) {
	t.Helper()
	a.send(a.rtp, a.packet())
	recv(t, b.rtp)
	b.send(b.rtp, b.packet())
	recv(t, a.rtp)
	eventually(t, "both directions in the kernel", func() bool { return inKernel(c, legA) && inKernel(c, legB) })
}

// at is where the proxy sends to p from.
func at(p *party) netip.AddrPort { return netip.AddrPortFrom(p.proxyAddr, uint16(p.proxyPort)) }

// expectFrom reads want from c, each sent from the proxy's address from.
func expectFrom(t *testing.T, c *net.UDPConn, from netip.AddrPort, want [][]byte) {
	t.Helper()
	buf := make([]byte, 2048)
	for i, w := range want {
		c.SetReadDeadline(time.Now().Add(time.Second))
		n, src, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("packet %d of %d: %v", i, len(want), err)
		}
		if !bytes.Equal(buf[:n], w) {
			t.Fatalf("packet %d differs from what was sent", i)
		}
		if src != from {
			t.Fatalf("packet %d came from %v, want %v (the proxy's port of the receiver)", i, src, from)
		}
	}
}

func TestKernelForwardsLatchedStream(t *testing.T) {
	p := kernelProxy(t, 44000)
	c := newTestCall(t, p)
	a, b := newParty(t, 0xa1), newParty(t, 0xb1)
	setupCall(t, c, a, b)
	latchBoth(t, c, a, b)
	if m := p.Metrics(); m.KernelStreams != 2 {
		t.Fatalf("kernel streams %d, want 2", m.KernelStreams)
	}
	stats, err := EnableKernelRunStats()
	if err != nil {
		t.Fatal(err)
	}
	defer stats.Close()
	runs0, _, err := p.KernelRunStats()
	if err != nil {
		t.Fatal(err)
	}

	before := p.Metrics().Packets
	for _, dir := range []struct {
		name     string
		from, to *party
		leg      Leg
	}{{"a to b", a, b, legA}, {"b to a", b, a, legB}} {
		t.Run(dir.name, func(t *testing.T) {
			sent := sendN(dir.from, 100)
			expectFrom(t, dir.to.rtp, at(dir.to), sent)
			if got := userPackets(c, dir.leg); got != 1 {
				t.Fatalf("userspace saw %d packets of the latched stream, want only the latching one", got)
			}
		})
	}
	m := p.Metrics()
	if m.KernelPackets != 200 || m.Packets != before+200 {
		t.Fatalf("metrics: %d packets (%d in the kernel), want %d (200)", m.Packets, m.KernelPackets, before+200)
	}
	// the program sees every packet on loopback, ours among them
	if runs, total, err := p.KernelRunStats(); err != nil || runs-runs0 < 200 || total <= 0 {
		t.Fatalf("program runs %d (%v in all, %v), want at least the 200 packets", runs-runs0, total, err)
	}
	for _, l := range []Leg{legA, legB} {
		s := legStats(c, l)
		if s.Packets != 101 || s.Bytes != 101*172 || s.Expected != 101 || s.Lost != 0 {
			t.Errorf("leg %s: %d packets, %d bytes, %d expected, %d lost; want 101, %d, 101, 0",
				l, s.Packets, s.Bytes, s.Expected, s.Lost, 101*172)
		}
	}
}

func TestKernelCountersAgreeWithSender(t *testing.T) {
	for _, tc := range []struct {
		name   string
		base   int
		kernel bool
	}{{"userspace", 44200, false}, {"kernel", 44300, true}} {
		t.Run(tc.name, func(t *testing.T) {
			var p *Proxy
			if tc.kernel {
				p = kernelProxy(t, tc.base)
			} else {
				p = newTestProxy(t, tc.base, nil)
			}
			c := newTestCall(t, p)
			a, b := newParty(t, 0xa2), newParty(t, 0xb2)
			setupCall(t, c, a, b)
			a.send(a.rtp, a.packet())
			recv(t, b.rtp)
			b.send(b.rtp, b.packet())
			recv(t, a.rtp)
			if tc.kernel {
				eventually(t, "a in the kernel", func() bool { return inKernel(c, legA) })
			}
			// The sender restarts its sequence numbers (a jump RFC 3550
			// A.1 takes as a restart once the next packet confirms it,
			// which the kernel leaves to userspace), wraps them, and
			// every tenth packet is lost before the proxy.
			a.seq = 65400
			sent, skipped := 1, 0 // with the latching packet
			var want [][]byte
			for i := 0; i < 335; i++ {
				pkt := a.packet()
				if i%10 == 9 {
					skipped++
					continue
				}
				a.send(a.rtp, pkt)
				want = append(want, pkt)
				sent++
				if len(want) == 20 || i == 334 { // within socket buffers
					expectFrom(t, b.rtp, at(b), want)
					want = want[:0]
				}
			}
			s := legStats(c, legA)
			if s.Packets != uint64(sent) || s.Bytes != uint64(sent)*172 || s.Lost != int64(skipped) {
				t.Fatalf("leg a: %d packets, %d bytes, %d lost; the sender sent %d, %d and skipped %d",
					s.Packets, s.Bytes, s.Lost, sent, sent*172, skipped)
			}
			// the restart's first packet is not counted (RFC 3550 A.1)
			if s.Expected != uint64(sent+skipped-1) {
				t.Fatalf("leg a: %d expected, want %d", s.Expected, sent+skipped-1)
			}
			if s.Kernel != tc.kernel {
				t.Fatalf("leg a in the kernel: %v, want %v", s.Kernel, tc.kernel)
			}
		})
	}
}

func TestKernelRelatchHoldRelease(t *testing.T) {
	p := kernelProxy(t, 44400)
	c := newTestCall(t, p)
	a, b := newParty(t, 0xa3), newParty(t, 0xb3)
	setupCall(t, c, a, b)
	latchBoth(t, c, a, b)
	entry := func(port int) (fwdValue, bool) { return p.kern.peek(port) }

	moved := listen(t)
	t.Run("re-latch", func(t *testing.T) {
		// NAT rebinding: the same stream from a new address goes to
		// userspace, which moves the latch; the entry follows it
		pkt := a.packet()
		a.send(moved, pkt)
		expectFrom(t, b.rtp, at(b), [][]byte{pkt})
		eventually(t, "the entry to follow the new address", func() bool {
			v, ok := entry(a.proxyPort)
			return ok && int(v.srcPort) == port(moved)
		})
		before := userPackets(c, legA)
		sent := make([][]byte, 20)
		for i := range sent {
			sent[i] = a.packet()
			a.send(moved, sent[i])
		}
		expectFrom(t, b.rtp, at(b), sent)
		if got := userPackets(c, legA); got != before {
			t.Fatalf("userspace saw %d packets after the re-latch", got-before)
		}
		// and b's media now goes to a's new address, in the kernel too
		eventually(t, "b's entry to point at a's new address", func() bool {
			v, ok := entry(b.proxyPort)
			return ok && int(v.outDport) == port(moved)
		})
		pb := b.packet()
		b.send(b.rtp, pb)
		expectFrom(t, moved, at(a), [][]byte{pb})
		a.rtp = moved
	})

	t.Run("hold", func(t *testing.T) {
		if _, err := c.RewriteOffer(legA, legB, a.sdp("sendonly")); err != nil {
			t.Fatal(err)
		}
		if _, err := c.RewriteAnswer(legB, legA, b.sdp("recvonly")); err != nil {
			t.Fatal(err)
		}
		for _, port := range []int{a.proxyPort, b.proxyPort} {
			if _, ok := entry(port); ok {
				t.Fatalf("port %d: entry kept while the call is held", port)
			}
		}
		// music on hold still flows, through userspace
		before := userPackets(c, legA)
		pkt := a.packet()
		a.send(a.rtp, pkt)
		expectFrom(t, b.rtp, at(b), [][]byte{pkt})
		if userPackets(c, legA) != before+1 {
			t.Fatal("held stream not relayed by userspace")
		}
		// resumed: back into the kernel
		if _, err := c.RewriteOffer(legA, legB, a.sdp("sendrecv")); err != nil {
			t.Fatal(err)
		}
		if _, err := c.RewriteAnswer(legB, legA, b.sdp("sendrecv")); err != nil {
			t.Fatal(err)
		}
		if _, ok := entry(a.proxyPort); !ok {
			t.Fatal("resumed stream not back in the kernel")
		}
	})

	t.Run("release", func(t *testing.T) {
		s := legStats(c, legA)
		c.Close()
		for _, port := range []int{a.proxyPort, b.proxyPort} {
			if _, ok := entry(port); ok {
				t.Fatalf("port %d: entry kept after release", port)
			}
		}
		if m := p.Metrics(); m.KernelStreams != 0 {
			t.Fatalf("%d kernel streams after release", m.KernelStreams)
		}
		// the record keeps what the kernel counted
		if after := legStats(c, legA); after.Packets != s.Packets || s.Packets < 23 {
			t.Fatalf("leg a: %d packets after release, %d before", after.Packets, s.Packets)
		}
		// a released port drains: nothing is forwarded any more
		a.send(a.rtp, a.packet())
		silent(t, b.rtp, 50*time.Millisecond)
	})
}

func TestKernelLeavesTableChangesToUserspace(t *testing.T) {
	needKernel(t)
	_, c, a, b, d := threeLegs(t, 44600, func(cfg *Config) { cfg.Kernel = KernelOn })
	// a fork cut down to one branch: a and b are two parties
	c.Disconnect(legA, "c")
	c.Disconnect("c", legA)
	a.send(a.rtp, a.packet())
	recv(t, b.rtp)
	b.send(b.rtp, b.packet())
	recv(t, a.rtp)
	eventually(t, "a in the kernel", func() bool { return inKernel(c, legA) })

	for _, tc := range []struct {
		name   string
		change func()
		undo   func()
		alsoTo *party
	}{
		{"fan-out", func() { c.Connect(legA, "c") }, func() { c.Disconnect(legA, "c") }, d},
		{"switch with rewrite", func() { c.Select(legB, legA) }, func() { c.SetRewrite(legB, false) }, nil},
		{"sink", func() { c.SetSink(legA, "audio", nopSink{}) }, func() { c.SetSink(legA, "audio", nil) }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.change()
			if inKernel(c, legA) {
				t.Fatal("still in the kernel")
			}
			before := userPackets(c, legA)
			a.send(a.rtp, a.packet())
			recv(t, b.rtp)
			if tc.alsoTo != nil {
				recv(t, tc.alsoTo.rtp)
			}
			if userPackets(c, legA) == before {
				t.Fatal("not relayed by userspace")
			}
			tc.undo()
			if !inKernel(c, legA) {
				t.Fatal("not back in the kernel once undone")
			}
		})
	}
}

// TestKernelStreamsKeepTheCallAlive: media supervision sees the packets
// the kernel forwards (the relay threads never do), and still ends the
// call once they stop.
func TestKernelStreamsKeepTheCallAlive(t *testing.T) {
	needKernel(t)
	p := newTestProxy(t, 44800, func(c *Config) { c.Kernel, c.MediaTimeout = KernelOn, 200*time.Millisecond })
	c := newTestCall(t, p)
	a, b := newParty(t, 0xa6), newParty(t, 0xb6)
	setupCall(t, c, a, b)
	latchBoth(t, c, a, b)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	alive := time.After(600 * time.Millisecond) // three media timeouts
	for sending := true; sending; {
		select {
		case <-c.Done():
			t.Fatalf("call ended while the kernel forwarded its media: %v", c.Err())
		case <-alive:
			sending = false
		case <-tick.C:
			a.send(a.rtp, a.packet())
			b.send(b.rtp, b.packet())
		}
	}
	if userPackets(c, legA) != 1 || userPackets(c, legB) != 1 {
		t.Fatal("the media went through userspace")
	}
	select {
	case <-c.Done():
		if !errors.Is(c.Err(), ErrMediaTimeout) {
			t.Fatalf("cause %v, want media timeout", c.Err())
		}
	case <-time.After(time.Second):
		t.Fatal("no media timeout after the media stopped")
	}
}
