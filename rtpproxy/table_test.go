package rtpproxy

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imcall/b2bua/internal/testenv"
)

// exchange runs an offer from leg from (party fp) to leg to (party tp) and
// to's answer, and tells each party its proxy port.
func exchange(t *testing.T, c *Call, from Leg, fp *party, to Leg, tp *party) {
	t.Helper()
	if _, err := c.RewriteOffer(from, to, fp.sdp("sendrecv")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RewriteAnswer(to, from, tp.sdp("sendrecv")); err != nil {
		t.Fatal(err)
	}
	fp.proxyPort, tp.proxyPort = c.LocalPorts(from)[0], c.LocalPorts(to)[0]
	fp.proxyRTCP, tp.proxyRTCP = fp.proxyPort+1, tp.proxyPort+1
}

// threeLegs is a call whose leg a (the caller) completed an exchange with
// b and one with c, as after a fork that the session did not cut down yet.
func threeLegs(t *testing.T, base int, mod func(*Config)) (*Proxy, *Call, *party, *party, *party) {
	t.Helper()
	p := newTestProxy(t, base, mod)
	c := newTestCall(t, p)
	a, b, cc := newParty(t, 0xa), newParty(t, 0xb), newParty(t, 0xc)
	exchange(t, c, "a", a, "b", b)
	exchange(t, c, "a", a, "c", cc)
	c.Answered()
	return p, c, a, b, cc
}

// sendN sends n packets of from's stream and returns them as sent.
func sendN(from *party, n int) [][]byte {
	var sent [][]byte
	for i := 0; i < n; i++ {
		pkt := from.packet()
		sent = append(sent, pkt)
		from.send(from.rtp, pkt)
	}
	return sent
}

func expectPackets(t *testing.T, to *net.UDPConn, want [][]byte) {
	t.Helper()
	for i, w := range want {
		if got := recv(t, to); !bytes.Equal(got, w) {
			t.Fatalf("packet %d on %v: got seq %d ssrc %#x, want seq %d ssrc %#x", i, to.LocalAddr(),
				binary.BigEndian.Uint16(got[2:]), binary.BigEndian.Uint32(got[8:]),
				binary.BigEndian.Uint16(w[2:]), binary.BigEndian.Uint32(w[8:]))
		}
	}
}

func TestFanOutOneToTwo(t *testing.T) {
	_, c, a, b, cc := threeLegs(t, 40000, nil)
	sent := sendN(a, 20)
	expectPackets(t, b.rtp, sent)
	expectPackets(t, cc.rtp, sent)

	c.Disconnect("a", "c")
	sent = sendN(a, 5)
	expectPackets(t, b.rtp, sent)
	silent(t, cc.rtp, 50*time.Millisecond)

	// each fanned-out copy leaves from the receiver's own port, the one its
	// SDP names (what symmetric RTP on the far side latches to)
	c.Connect("a", "c")
	a.send(a.rtp, a.packet())
	recv(t, b.rtp)
	buf := make([]byte, 2048)
	cc.rtp.SetReadDeadline(time.Now().Add(time.Second))
	_, from, err := cc.rtp.ReadFromUDPAddrPort(buf)
	if err != nil || int(from.Port()) != cc.proxyPort {
		t.Fatalf("copy to c came from %v (%v), want proxy port %d", from, err, cc.proxyPort)
	}
}

func TestSelectOneOfTwoSources(t *testing.T) {
	_, c, a, b, cc := threeLegs(t, 40200, nil)
	c.Select("a", "b")
	sent := sendN(b, 5)
	sendN(cc, 5) // not selected: dropped
	expectPackets(t, a.rtp, sent)
	silent(t, a.rtp, 50*time.Millisecond)

	// a's own media still goes to both
	sent = sendN(a, 3)
	expectPackets(t, b.rtp, sent)
	expectPackets(t, cc.rtp, sent)
}

// TestSourceSwitchKeepsOneStream: a hears b, then c, then b again. Across
// the switches a sees one SSRC, sequence numbers that go up by one and
// timestamps that go forward (RFC 3550 §8.2), each source's payload
// intact; meanwhile c's packets also go to b, untouched, so one receiver's
// rewrite does not leak into another's copy.
func TestSourceSwitchKeepsOneStream(t *testing.T) {
	_, c, a, b, cc := threeLegs(t, 40400, nil)
	b.seq, b.ts = 1000, 0
	cc.seq, cc.ts = 60000, 3_000_000_000 // far from b's: offsets must carry the wrap
	c.Select("a", "b")
	c.Connect("c", "b")

	type step struct {
		src *party
		n   int
		to  []*party // who else gets the packets unchanged
	}
	steps := []step{
		{src: b, n: 10},
		{src: cc, n: 10, to: []*party{b}},
		{src: b, n: 10},
	}
	var got, sent [][]byte
	var sentAt []time.Time
	for i, st := range steps {
		switch i {
		case 1:
			c.Select("a", "c")
		case 2:
			c.Select("a", "b")
		}
		for j := 0; j < st.n; j++ {
			pkt := st.src.packet()
			sentAt = append(sentAt, time.Now())
			st.src.send(st.src.rtp, pkt)
			sent = append(sent, pkt)
			got = append(got, recv(t, a.rtp))
			for _, o := range st.to {
				if g := recv(t, o.rtp); !bytes.Equal(g, pkt) {
					t.Fatalf("copy to the non-rewriting leg changed: %x, want %x", g[:12], pkt[:12])
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	silent(t, a.rtp, 30*time.Millisecond)
	first := binary.BigEndian.Uint16(got[0][2:])
	for i, g := range got {
		if ssrc := binary.BigEndian.Uint32(g[8:]); ssrc != 0xb {
			t.Errorf("packet %d: SSRC %#x, want %#x throughout", i, ssrc, 0xb)
		}
		if seq := binary.BigEndian.Uint16(g[2:]); seq != first+uint16(i) {
			t.Errorf("packet %d: seq %d, want %d", i, seq, first+uint16(i))
		}
		if !bytes.Equal(g[12:], sent[i][12:]) || g[0] != sent[i][0] || g[1] != sent[i][1] {
			t.Errorf("packet %d: payload or first header bytes changed", i)
		}
		if i == 0 {
			continue
		}
		dts := binary.BigEndian.Uint32(g[4:]) - binary.BigEndian.Uint32(got[i-1][4:])
		if i%10 != 0 {
			if dts != 160 {
				t.Errorf("packet %d: timestamp step %d within one source, want 160", i, dts)
			}
			continue
		}
		// at a switch: forward by about the time that passed (8 kHz clock)
		elapsed := uint32(sentAt[i].Sub(sentAt[i-1]).Seconds()*8000) + 1
		if dts == 0 || dts > 0x80000000 || dts > elapsed+80 {
			t.Errorf("packet %d (switch): timestamp step %d, want 1..%d", i, dts, elapsed+80)
		}
	}
}

// collector is a Sink that keeps copies of what it got.
type collector struct {
	mu   sync.Mutex
	from []Leg
	pkts [][]byte
}

func (s *collector) WriteRTP(from Leg, pkt []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.from = append(s.from, from)
	s.pkts = append(s.pkts, bytes.Clone(pkt))
}

func (s *collector) wait(t *testing.T, n int) ([]Leg, [][]byte) {
	t.Helper()
	for deadline := time.Now().Add(time.Second); ; time.Sleep(time.Millisecond) {
		s.mu.Lock()
		if len(s.pkts) >= n {
			defer s.mu.Unlock()
			return append([]Leg(nil), s.from...), append([][]byte(nil), s.pkts...)
		}
		got := len(s.pkts)
		s.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("sink got %d packets, want %d", got, n)
		}
	}
}

func TestSinkReceivesOneLeg(t *testing.T) {
	p := newTestProxy(t, 40600, nil)
	c := newTestCall(t, p)
	a, b := newParty(t, 0xa), newParty(t, 0xb)
	setupCall(t, c, a, b)
	sink := &collector{}
	c.SetSink(legA, "video", &collector{}) // another media: replaced below, never fed
	c.SetSink(legA, "audio", sink)
	c.Disconnect(legA, legB) // a feeds only the sink

	sent := sendN(a, 10)
	rtcp := []byte{0x81, 200, 0, 6, 0, 0, 0, 0xa, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}
	a.rtcp.WriteToUDPAddrPort(rtcp, netip.AddrPortFrom(a.proxyAddr, uint16(a.proxyRTCP)))
	from, got := sink.wait(t, len(sent))
	for i := range sent {
		if from[i] != legA || !bytes.Equal(got[i], sent[i]) {
			t.Fatalf("sink packet %d from %q differs", i, from[i])
		}
	}
	silent(t, b.rtp, 50*time.Millisecond)
	silent(t, b.rtcp, 10*time.Millisecond)
	if _, got := sink.wait(t, 0); len(got) != len(sent) {
		t.Errorf("sink got %d packets, want %d (RTP only)", len(got), len(sent))
	}
	// b still reaches a
	sent = sendN(b, 3)
	expectPackets(t, a.rtp, sent)

	c.SetSink(legA, "audio", nil)
	sendN(a, 1)
	time.Sleep(30 * time.Millisecond)
	if _, got := sink.wait(t, 0); len(got) != 10 {
		t.Errorf("removed sink got %d packets, want 10", len(got))
	}
}

func TestRemoveLeg(t *testing.T) {
	p, c, a, b, cc := threeLegs(t, 40800, func(c *Config) { c.Drain = 5 * time.Second })
	if err := c.RemoveLeg("c"); err != nil {
		t.Fatal(err)
	}
	sent := sendN(a, 5)
	expectPackets(t, b.rtp, sent)
	silent(t, cc.rtp, 50*time.Millisecond)
	sendN(cc, 1) // to a draining port
	silent(t, a.rtp, 50*time.Millisecond)
	if ports := c.LocalPorts("c"); ports[0] != 0 {
		t.Errorf("removed leg still listens on %v", ports)
	}
	var removed []Leg
	for _, ls := range c.Stats() {
		if ls.Removed {
			removed = append(removed, ls.Leg)
		}
	}
	if len(removed) != 1 || removed[0] != "c" {
		t.Errorf("stats mark %v removed, want [c]", removed)
	}
	for deadline := time.Now().Add(time.Second); p.Metrics().DrainDropped < 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the packet to the removed leg's port was not drain-dropped")
		}
	}
}

// TestRelayDoesNotAllocate: relaying with a fan-out, a rewrite and a sink
// makes no allocation per packet (the counts are of the whole process, so
// the test's own sockets must not allocate either: they reuse buffers).
func TestRelayDoesNotAllocate(t *testing.T) {
	_, c, a, b, cc := threeLegs(t, 41000, nil)
	c.Select("b", "a")
	c.SetSink("a", "audio", nopSink{})
	pkt := a.packet()
	dst := netip.AddrPortFrom(a.proxyAddr, uint16(a.proxyPort))
	buf := make([]byte, 2048)
	relayOne := func() {
		binary.BigEndian.PutUint16(pkt[2:], a.seq)
		a.seq++
		a.rtp.WriteToUDPAddrPort(pkt, dst)
		b.rtp.Read(buf)
		cc.rtp.Read(buf)
	}
	b.rtp.SetReadDeadline(time.Now().Add(10 * time.Second))
	cc.rtp.SetReadDeadline(time.Now().Add(10 * time.Second))
	relayOne()
	if n := testing.AllocsPerRun(500, relayOne); n != 0 {
		t.Errorf("%v allocations per relayed packet, want 0", n)
	}
}

type nopSink struct{}

func (nopSink) WriteRTP(Leg, []byte) {}

// TestIPv6Relay: with an IPv6 bind address, an offer with c=IN IP6 gets
// IPv6 endpoints, and RTP and RTCP are relayed over ::1 both ways.
func TestIPv6Relay(t *testing.T) {
	lo6 := netip.MustParseAddr("::1")
	probe, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		testenv.Missing(t, "no IPv6 loopback on this host: %v", err)
	}
	probe.Close()
	p := newTestProxy(t, 41200, func(c *Config) { c.BindV6 = lo6; c.AdvertiseV6 = netip.MustParseAddr("2001:db8::10") })
	c := newTestCall(t, p)
	newParty6 := func(ssrc uint32) *party {
		pt := &party{t: t, ssrc: ssrc, seq: 1, proxyAddr: lo6}
		for _, s := range []**net.UDPConn{&pt.rtp, &pt.rtcp} {
			conn, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			*s = conn
		}
		return pt
	}
	sdp6 := func(pt *party) []byte {
		return []byte("v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\n" +
			"m=audio " + strconv.Itoa(port(pt.rtp)) + " RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=rtcp:" + strconv.Itoa(port(pt.rtcp)) + " IN IP6 ::1\r\n")
	}
	a, b := newParty6(0xa), newParty6(0xb)
	toB, err := c.RewriteOffer(legA, legB, sdp6(a))
	if err != nil {
		t.Fatal(err)
	}
	toA, err := c.RewriteAnswer(legB, legA, sdp6(b))
	if err != nil {
		t.Fatal(err)
	}
	c.Answered()
	for _, out := range []string{string(toB), string(toA)} {
		for _, want := range []string{" 1 IN IP6 2001:db8::10\r\ns=", "\r\nc=IN IP6 2001:db8::10\r\n", " IN IP6 2001:db8::10\r\n"} {
			if !strings.Contains(out, want) {
				t.Errorf("rewritten SDP lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "IP6 ::1") {
			t.Errorf("rewritten SDP leaks the party's address:\n%s", out)
		}
	}
	a.proxyPort, b.proxyPort = c.LocalPorts(legA)[0], c.LocalPorts(legB)[0]
	a.proxyRTCP = a.proxyPort + 1
	expectPackets(t, b.rtp, sendN(a, 10))
	expectPackets(t, a.rtp, sendN(b, 10))
	rtcp := []byte{0x81, 200, 0, 6, 0, 0, 0, 0xa, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}
	if _, err := a.rtcp.WriteToUDPAddrPort(rtcp, netip.AddrPortFrom(lo6, uint16(a.proxyRTCP))); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, b.rtcp); !bytes.Equal(got, rtcp) {
		t.Fatalf("RTCP differs: %x", got)
	}
	for _, ls := range c.Stats() {
		if r := netip.MustParseAddrPort(ls.Remote); !r.Addr().Is6() || ls.Packets != 10 || !ls.Latched {
			t.Errorf("leg %s: %+v, want 10 packets latched on IPv6", ls.Leg, ls)
		}
	}

	// IPv4 re-offer on the IPv6 endpoints: refused, nothing changes (the
	// relay does not move a leg between families)
	if _, err := c.RewriteOffer(legA, legB, newParty(t, 1).sdp("sendrecv")); err == nil || !strings.Contains(err.Error(), "already on IP6") {
		t.Errorf("IPv4 re-offer: %v, want refused", err)
	}
	expectPackets(t, b.rtp, sendN(a, 1))
}

// BenchmarkRelay is the cost of one packet relayed a to b in a two-party
// call, the benchmark's own send and receive included.
func BenchmarkRelay(b *testing.B) {
	p := newTestProxy(b, 41400, nil)
	c, err := p.NewCall(b.Context(), CallConfig{ID: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	pa, pb := &party{rtp: listen(b), rtcp: listen(b)}, &party{rtp: listen(b), rtcp: listen(b)}
	if _, err := c.RewriteOffer(legA, legB, pa.sdp("sendrecv")); err != nil {
		b.Fatal(err)
	}
	if _, err := c.RewriteAnswer(legB, legA, pb.sdp("sendrecv")); err != nil {
		b.Fatal(err)
	}
	dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(c.LocalPorts(legA)[0]))
	pkt := make([]byte, 172)
	pkt[0] = 0x80
	binary.BigEndian.PutUint32(pkt[8:], 0xa)
	buf := make([]byte, 2048)
	pb.rtp.SetReadDeadline(time.Now().Add(time.Minute))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		binary.BigEndian.PutUint16(pkt[2:], uint16(i))
		binary.BigEndian.PutUint32(pkt[4:], uint32(i)*160)
		pa.rtp.WriteToUDPAddrPort(pkt, dst)
		if _, err := pb.rtp.Read(buf); err != nil {
			b.Fatal(err)
		}
	}
}
