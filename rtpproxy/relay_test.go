package rtpproxy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"
)

// party is a SIP terminal's media socket pair on loopback.
type party struct {
	t          *testing.T
	rtp, rtcp  *net.UDPConn
	ssrc       uint32
	seq        uint16
	ts         uint32
	proxyPort  int // where this party sends RTP
	proxyRTCP  int
	proxyAddr  netip.Addr
	host       string // the address its SDP gives; default 127.0.0.1
	sdpVersion int
}

func newParty(t *testing.T, ssrc uint32) *party {
	t.Helper()
	return &party{t: t, rtp: listen(t), rtcp: listen(t), ssrc: ssrc, seq: 1000, proxyAddr: netip.MustParseAddr("127.0.0.1")}
}

func listen(t testing.TB) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func port(c *net.UDPConn) int { return c.LocalAddr().(*net.UDPAddr).Port }

// sdp describes this party: RTP on its rtp socket, RTCP (RFC 3605 a=rtcp)
// on its rtcp socket.
func (p *party) sdp(dir string) []byte {
	p.sdpVersion++
	host := p.host
	if host == "" {
		host = "127.0.0.1"
	}
	return []byte(fmt.Sprintf("v=0\r\no=- 1 %d IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=rtcp:%d\r\na=%s\r\n",
		p.sdpVersion, host, host, port(p.rtp), port(p.rtcp), dir))
}

// packet builds the next RTP packet of this party's stream, 20 ms of PCMU.
func (p *party) packet() []byte {
	b := make([]byte, 12+160)
	b[0], b[1] = 0x80, 0
	binary.BigEndian.PutUint16(b[2:], p.seq)
	binary.BigEndian.PutUint32(b[4:], p.ts)
	binary.BigEndian.PutUint32(b[8:], p.ssrc)
	for i := 12; i < len(b); i++ {
		b[i] = byte(int(p.seq) + i)
	}
	p.seq++
	p.ts += 160
	return b
}

func (p *party) send(from *net.UDPConn, b []byte) {
	p.t.Helper()
	if _, err := from.WriteToUDPAddrPort(b, netip.AddrPortFrom(p.proxyAddr, uint16(p.proxyPort))); err != nil {
		p.t.Fatal(err)
	}
}

// recv reads one datagram or fails after a second.
func recv(t *testing.T, c *net.UDPConn) []byte {
	t.Helper()
	buf := make([]byte, 2048)
	c.SetReadDeadline(time.Now().Add(time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("nothing received on %v: %v", c.LocalAddr(), err)
	}
	return buf[:n]
}

// silent asserts that nothing arrives on c for a while.
func silent(t *testing.T, c *net.UDPConn, d time.Duration) {
	t.Helper()
	buf := make([]byte, 2048)
	c.SetReadDeadline(time.Now().Add(d))
	if n, err := c.Read(buf); err == nil {
		t.Fatalf("unexpected %d-byte packet on %v", n, c.LocalAddr())
	}
}

// setupCall runs offer (A) and answer (B) and tells each party its proxy
// ports.
func setupCall(t *testing.T, c *Call, a, b *party) {
	t.Helper()
	if _, err := c.RewriteOffer(legA, legB, a.sdp("sendrecv")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RewriteAnswer(legB, legA, b.sdp("sendrecv")); err != nil {
		t.Fatal(err)
	}
	c.Answered()
	a.proxyPort, b.proxyPort = c.LocalPorts(legA)[0], c.LocalPorts(legB)[0]
	a.proxyRTCP, b.proxyRTCP = a.proxyPort+1, b.proxyPort+1
}

func TestRelayBothWaysIntactInOrder(t *testing.T) {
	p := newTestProxy(t, 32000, nil)
	c := newTestCall(t, p)
	a, b := newParty(t, 0xa), newParty(t, 0xb)
	setupCall(t, c, a, b)
	const n = 200
	for _, dir := range []struct {
		name     string
		from, to *party
	}{{"a to b", a, b}, {"b to a", b, a}} {
		t.Run(dir.name, func(t *testing.T) {
			var sent [][]byte
			for i := 0; i < n; i++ {
				pkt := dir.from.packet()
				sent = append(sent, pkt)
				dir.from.send(dir.from.rtp, pkt)
				if i%20 == 19 {
					time.Sleep(time.Millisecond) // keep within socket buffers
				}
			}
			for i := 0; i < n; i++ {
				if got := recv(t, dir.to.rtp); !bytes.Equal(got, sent[i]) {
					t.Fatalf("packet %d differs: got seq %d, want seq %d", i,
						binary.BigEndian.Uint16(got[2:]), binary.BigEndian.Uint16(sent[i][2:]))
				}
			}
		})
	}
	// RTCP goes alongside, port to port.
	rtcp := []byte{0x81, 200, 0, 6, 0, 0, 0, 0xa, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}
	if _, err := a.rtcp.WriteToUDPAddrPort(rtcp, netip.AddrPortFrom(a.proxyAddr, uint16(a.proxyRTCP))); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, b.rtcp); !bytes.Equal(got, rtcp) {
		t.Fatalf("RTCP differs: %x", got)
	}

	st := c.Stats()
	if len(st) != 2 {
		t.Fatalf("stats for %d legs, want 2", len(st))
	}
	for _, ls := range st {
		if ls.Packets != n || ls.Lost != 0 || ls.Expected != n || !ls.Latched || ls.LastSeen.IsZero() {
			t.Errorf("leg %s: %+v, want %d packets, none lost, latched", ls.Leg, ls, n)
		}
	}
	if st[0].RTCPPackets != 1 {
		t.Errorf("leg a RTCP packets %d, want 1", st[0].RTCPPackets)
	}
	// the relay thread counts after its send returns: give it a moment
	for deadline := time.Now().Add(time.Second); p.Metrics().Packets != 2*n+1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("metrics: %d packets relayed, want %d", p.Metrics().Packets, 2*n+1)
		}
	}
}

func TestLossAndJitterCounters(t *testing.T) {
	p := newTestProxy(t, 32200, nil)
	c := newTestCall(t, p)
	a, b := newParty(t, 0xa), newParty(t, 0xb)
	setupCall(t, c, a, b)
	for i := 0; i < 50; i++ {
		pkt := a.packet()
		if i%10 == 5 {
			continue // lost on the way: 5 of 50
		}
		a.send(a.rtp, pkt)
		recv(t, b.rtp)
	}
	ls := c.Stats()[0]
	if ls.Packets != 45 || ls.Expected != 50 || ls.Lost != 5 {
		t.Errorf("got packets %d expected %d lost %d, want 45, 50, 5 (RFC 3550 A.3)", ls.Packets, ls.Expected, ls.Lost)
	}
	if ls.JitterMs <= 0 {
		t.Errorf("jitter %v: packets sent back to back without pacing must show jitter", ls.JitterMs)
	}
}

func TestLatchingFollowsSourceAndRebinding(t *testing.T) {
	p := newTestProxy(t, 32400, nil)
	c := newTestCall(t, p)
	a, b := newParty(t, 0xa), newParty(t, 0xb)
	setupCall(t, c, a, b)

	// A sits behind NAT: its packets come from another port than its SDP's.
	nat1 := listen(t)
	a.send(nat1, a.packet())
	recv(t, b.rtp)
	b.send(b.rtp, b.packet())
	recv(t, nat1) // symmetric: to where A's packets came from
	silent(t, a.rtp, 50*time.Millisecond)

	// The NAT rebinds: the stream continues (same SSRC, next sequence
	// numbers) from a new port, and the latch moves there.
	nat2 := listen(t)
	a.send(nat2, a.packet())
	recv(t, b.rtp)
	b.send(b.rtp, b.packet())
	recv(t, nat2)
	silent(t, nat1, 50*time.Millisecond)
}

func TestStrangerIsNotLatched(t *testing.T) {
	p := newTestProxy(t, 32600, nil)
	c := newTestCall(t, p)
	a, b := newParty(t, 0xa), newParty(t, 0xb)
	setupCall(t, c, a, b)
	a.send(a.rtp, a.packet())
	recv(t, b.rtp)

	stranger := listen(t)
	cases := []struct {
		name string
		pkt  func() []byte
	}{
		{"other SSRC", func() []byte { s := *a; s.ssrc = 0xbad; return s.packet() }},
		{"same SSRC, sequence far ahead", func() []byte { s := *a; s.seq += 500; return s.packet() }},
		{"same SSRC, old sequence", func() []byte { s := *a; s.seq -= 3; return s.packet() }},
		{"not RTP", func() []byte { return []byte("hello") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a.send(stranger, tc.pkt())
			silent(t, b.rtp, 50*time.Millisecond)
			b.send(b.rtp, b.packet())
			recv(t, a.rtp) // still to the real A
			silent(t, stranger, 20*time.Millisecond)
		})
	}
	if ls := c.Stats()[0]; ls.Dropped != uint64(len(cases)) {
		t.Errorf("leg a dropped %d, want %d", ls.Dropped, len(cases))
	}
}

func TestMediaTimeout(t *testing.T) {
	cases := []struct {
		name    string
		aSends  bool // A keeps sending, only B is silent
		hold    bool
		wantEnd bool
	}{
		{"no media at all", false, false, true},
		{"one leg silent", true, false, true},
		{"held call", false, true, false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestProxy(t, 32800+200*i, func(c *Config) { c.MediaTimeout = 200 * time.Millisecond })
			c := newTestCall(t, p)
			a, b := newParty(t, 0xa), newParty(t, 0xb)
			setupCall(t, c, a, b)
			if tc.hold {
				if _, err := c.RewriteOffer(legA, legB, a.sdp("sendonly")); err != nil {
					t.Fatal(err)
				}
				if _, err := c.RewriteAnswer(legB, legA, b.sdp("recvonly")); err != nil {
					t.Fatal(err)
				}
			}
			deadline := time.After(time.Second)
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-c.Done():
					if !tc.wantEnd {
						t.Fatalf("call ended: %v", c.Err())
					}
					if !errors.Is(c.Err(), ErrMediaTimeout) {
						t.Fatalf("cause %v, want media timeout", c.Err())
					}
					return
				case <-deadline:
					if tc.wantEnd {
						t.Fatal("no media timeout")
					}
					return
				case <-tick.C:
					if tc.aSends {
						a.send(a.rtp, a.packet())
					}
				}
			}
		})
	}
}

func TestRingingWithoutMediaDoesNotTimeOut(t *testing.T) {
	p := newTestProxy(t, 33400, func(c *Config) { c.MediaTimeout = 100 * time.Millisecond })
	c := newTestCall(t, p)
	a, b := newParty(t, 0xa), newParty(t, 0xb)
	c.RewriteOffer(legA, legB, a.sdp("sendrecv"))
	c.RewriteAnswer(legB, legA, b.sdp("sendrecv")) // a 183: not Answered
	select {
	case <-c.Done():
		t.Fatalf("call ended before it was answered: %v", c.Err())
	case <-time.After(400 * time.Millisecond):
	}
}

// TestDrainedPortsNeverReachNewCall: with a pool of exactly two pairs, a
// closed call's ports are not handed out while they drain, packets sent to
// them meanwhile are dropped, and the next call on the same ports does not
// receive them.
func TestDrainedPortsNeverReachNewCall(t *testing.T) {
	p := newTestProxy(t, 33600, func(c *Config) { c.PortMax = c.PortMin + 3; c.Drain = 300 * time.Millisecond })
	a, b := newParty(t, 0xa), newParty(t, 0xb)
	c1 := newTestCall(t, p)
	setupCall(t, c1, a, b)
	c1.Close()

	a.send(a.rtp, a.packet()) // late packet of the old call
	c2 := newTestCall(t, p)
	if _, err := c2.RewriteOffer(legA, legB, a.sdp("sendrecv")); !errors.Is(err, ErrNoPorts) {
		t.Fatalf("offer while draining: %v, want ErrNoPorts", err)
	}
	c2.Close()
	a.send(a.rtp, a.packet())

	var c3 *Call
	for deadline := time.Now().Add(3 * time.Second); ; {
		c3 = newTestCall(t, p)
		if _, err := c3.RewriteOffer(legA, legB, a.sdp("sendrecv")); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("ports never came back: %v", err)
		}
		c3.Close()
		time.Sleep(20 * time.Millisecond)
	}
	c3.RewriteAnswer(legB, legA, b.sdp("sendrecv"))
	silent(t, b.rtp, 100*time.Millisecond)
	if m := p.Metrics(); m.DrainDropped < 2 {
		t.Errorf("drain dropped %d packets, want 2", m.DrainDropped)
	}
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc")
	}
	return len(ents)
}

// TestPoolCyclesDoNotLeak allocates and releases 10,000 port pairs and
// then 500 whole calls: afterwards the pool is full and no socket is open.
func TestPoolCyclesDoNotLeak(t *testing.T) {
	p := newTestProxy(t, 34000, func(c *Config) { c.Drain = time.Millisecond })
	fds := openFDs(t)
	w := p.eng.workers[0]
	for i := 0; i < 10000; i++ {
		ep := &endpoint{}
		for {
			err := p.eng.openPair(w, ep)
			if err == nil {
				break
			}
			if !errors.Is(err, ErrNoPorts) {
				t.Fatal(err)
			}
			time.Sleep(time.Millisecond) // all pairs draining
		}
		p.eng.releasePair(ep)
	}
	for i := 0; i < 500; i++ {
		c, _ := p.NewCall(t.Context(), CallConfig{})
		a, b := newParty(t, 1), newParty(t, 2)
		if _, err := c.RewriteOffer(legA, legB, a.sdp("sendrecv")); err != nil && !errors.Is(err, ErrNoPorts) {
			t.Fatal(err)
		}
		c.RewriteAnswer(legB, legA, b.sdp("sendrecv"))
		c.Close()
		a.rtp.Close()
		a.rtcp.Close()
		b.rtp.Close()
		b.rtcp.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		m := p.Metrics()
		if m.PortPairsFree == m.PortPairs && m.Draining == 0 && m.Calls == 0 && openFDs(t) <= fds {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the cycles: %+v, %d fds open, %d before", m, openFDs(t), fds)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPoolSkipsPortsHeldElsewhere: another program holds every pair of the
// range but the last two; an offer (an endpoint for each of its two legs)
// still gets them instead of 503.
func TestPoolSkipsPortsHeldElsewhere(t *testing.T) {
	const base, pairs = 34600, 40
	p := newTestProxy(t, base, func(c *Config) { c.PortMax = base + 2*pairs - 1 })
	for port := base; port < base+2*(pairs-2); port += 2 {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue // held by someone else already: just as good
		}
		t.Cleanup(func() { pc.Close() })
	}
	a := newParty(t, 0xa)
	c := newTestCall(t, p)
	if _, err := c.RewriteOffer(legA, legB, a.sdp("sendrecv")); err != nil {
		t.Fatalf("offer with two free pairs left: %v", err)
	}
	free := map[int]bool{base + 2*(pairs-2): true, base + 2*(pairs-1): true}
	for _, l := range []Leg{legA, legB} {
		if got := c.LocalPorts(l); len(got) != 1 || !free[got[0]] {
			t.Fatalf("leg %s ports %v, want one of the free pairs %v", l, got, free)
		}
	}
}
