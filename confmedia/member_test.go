package confmedia

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/imcall/b2bua/mixer"
	"github.com/imcall/b2bua/rtpproxy"
)

func TestAnswerPicks(t *testing.T) {
	for _, tc := range []struct {
		name, formats, maps string
		want                Codec
		err                 bool
	}{
		{"pcmu static", "0 101", "a=rtpmap:101 telephone-event/8000\r\n", Codec{mixer.PCMU, 0, 101}, false},
		{"pcma first", "8 0", "", Codec{mixer.PCMA, 8, 0}, false},
		{"opus then pcma", "111 8", "a=rtpmap:111 opus/48000/2\r\n", Codec{mixer.PCMA, 8, 0}, false},
		{"dynamic pcmu", "96", "a=rtpmap:96 PCMU/8000\r\n", Codec{mixer.PCMU, 96, 0}, false},
		{"no g711", "111", "a=rtpmap:111 opus/48000/2\r\n", Codec{}, true},
	} {
		offer := "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP " + tc.formats + "\r\n" + tc.maps
		ans, c, err := Answer([]byte(offer))
		if (err != nil) != tc.err || c != tc.want {
			t.Errorf("%s: %+v %v, want %+v (error %v)", tc.name, c, err, tc.want, tc.err)
			continue
		}
		if err == nil {
			if back, err := FromAnswer(ans); err != nil || back != tc.want {
				t.Errorf("%s: the answer reads back as %+v %v", tc.name, back, err)
			}
		}
	}
	if c, err := FromAnswer(Offer()); err != nil || c != (Codec{mixer.PCMU, 0, 101}) {
		t.Errorf("Offer reads as %+v %v", c, err)
	}
}

// party is a member's UA: a socket sending one tone.
type party struct {
	conn *net.UDPConn
	law  mixer.Law
	freq float64
	leg  rtpproxy.Leg
	dst  netip.AddrPort // its endpoint on the proxy
	seq  uint16
	n    int
}

func (p *party) sdp() []byte {
	pt := map[mixer.Law]string{mixer.PCMU: "0", mixer.PCMA: "8"}[p.law]
	port := p.conn.LocalAddr().(*net.UDPAddr).Port
	return []byte(fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio %d RTP/AVP %s\r\na=sendrecv\r\n", port, pt))
}

func (p *party) send(t *testing.T) {
	pcm := make([]int16, 160)
	for i := range pcm {
		pcm[i] = int16(8000 * math.Sin(2*math.Pi*p.freq*float64(p.n+i)/8000))
	}
	pkt := make([]byte, 12+160)
	pkt[0] = 0x80
	if p.law == mixer.PCMA {
		pkt[1] = 8
		mixer.EncodeAlaw(pkt[12:], pcm)
	} else {
		mixer.EncodeUlaw(pkt[12:], pcm)
	}
	binary.BigEndian.PutUint16(pkt[2:], p.seq)
	binary.BigEndian.PutUint32(pkt[4:], uint32(p.n))
	binary.BigEndian.PutUint32(pkt[8:], uint32(p.freq))
	p.seq++
	p.n += 160
	if _, err := p.conn.WriteToUDPAddrPort(pkt, p.dst); err != nil {
		t.Fatal(err)
	}
}

func amplitude(x []int16, freq float64) float64 {
	w := 2 * math.Pi * freq / 8000
	c := 2 * math.Cos(w)
	var s1, s2 float64
	for _, v := range x {
		s0 := float64(v) + c*s1 - s2
		s2, s1 = s1, s0
	}
	return 2 * math.Sqrt(s1*s1+s2*s2-c*s1*s2) / float64(len(x))
}

// TestMembersHearEachOther: three members of one call on the real relay,
// joined to a mixer through the bridge's SDP, each sending a tone: what
// each receives from its own endpoint has the others' tones and not its
// own, in its own law.
func TestMembersHearEachOther(t *testing.T) {
	proxy, err := rtpproxy.New(rtpproxy.Config{BindAddr: netip.MustParseAddr("127.0.0.1"), PortMin: 43600, PortMax: 43799, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	call, err := proxy.NewCall(context.Background(), rtpproxy.CallConfig{ID: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	defer call.Close()
	tick := make(chan time.Time)
	mix, err := mixer.New(mixer.Config{Tick: tick})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mix.Run(ctx) }()
	defer func() { cancel(); <-done }()

	parties := newParties(t, call, func(p *party, bridge rtpproxy.Leg, codec Codec) error {
		_, err := Join(call, p.leg, bridge, mix, string(p.leg), codec)
		return err
	})
	call.Answered()

	const frames = 60
	run(t, parties, mix.State, tick, time.Now(), frames)
	for _, p := range parties {
		pcm := receive(t, p, frames-10)
		tail := pcm[len(pcm)-160*30:] // past the jitter buffer's start
		for _, q := range parties {
			a := amplitude(tail, q.freq)
			if q == p && a > 200 {
				t.Errorf("%s hears itself (%v Hz at %.0f)", p.leg, q.freq, a)
			}
			if q != p && a < 2000 {
				t.Errorf("%s does not hear %s (%v Hz at %.0f)", p.leg, q.leg, q.freq, a)
			}
		}
	}
}

// newParties opens three members' sockets, runs each one's exchange with
// its own bridge leg on call, and joins it.
func newParties(t *testing.T, call *rtpproxy.Call, join func(p *party, bridge rtpproxy.Leg, c Codec) error) []*party {
	t.Helper()
	parties := []*party{
		{law: mixer.PCMU, freq: 300, leg: "m1"},
		{law: mixer.PCMA, freq: 500, leg: "m2"},
		{law: mixer.PCMU, freq: 700, leg: "m3"},
	}
	for _, p := range parties {
		var err error
		if p.conn, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.conn.Close() })
		bridge := "bridge-" + p.leg
		if _, err := call.RewriteOffer(p.leg, bridge, p.sdp()); err != nil {
			t.Fatal(err)
		}
		ans, codec, err := Answer(p.sdp())
		if err != nil || codec.Law != p.law {
			t.Fatalf("answer to %s: %+v %v", p.leg, codec, err)
		}
		if _, err := call.RewriteAnswer(bridge, p.leg, ans); err != nil {
			t.Fatal(err)
		}
		p.dst = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(call.LocalPorts(p.leg)[0]))
		if err := join(p, bridge, codec); err != nil {
			t.Fatal(err)
		}
	}
	return parties
}

// run sends frames from every party, each frame mixed once the mixer has
// it all, on ticks 20 ms apart from start (the mixer counts frames due by
// the tick's time).
func run(t *testing.T, parties []*party, state func() []mixer.ParticipantState, tick chan<- time.Time, start time.Time, frames int) {
	t.Helper()
	base := make([]uint64, len(parties))
	for i, st := range state() {
		base[i] = st.Stats.Received
	}
	for f := 0; f < frames; f++ {
		for _, p := range parties {
			p.send(t)
		}
		// The relay thread hands the packets over on its own time: wait
		// (bounded) until the mixer has them, then mix the frame.
		deadline := time.Now().Add(2 * time.Second)
		for i := range parties {
			for state()[i].Stats.Received < base[i]+uint64(f+1) {
				if time.Now().After(deadline) {
					t.Fatalf("frame %d: the mixer lacks %s's", f, parties[i].leg)
				}
				time.Sleep(time.Millisecond)
			}
		}
		tick <- start.Add(time.Duration(f) * mixer.FrameDuration)
	}
}

// receive reads frames packets from p's endpoint and decodes them.
func receive(t *testing.T, p *party, frames int) []int16 {
	t.Helper()
	var pcm []int16
	buf := make([]byte, 2048)
	for len(pcm) < 160*frames {
		p.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, from, err := p.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("%s got %d samples: %v", p.leg, len(pcm), err)
		}
		if from != p.dst {
			t.Fatalf("%s got media from %v, not its endpoint %v", p.leg, from, p.dst)
		}
		if pt := buf[1] & 0x7f; (p.law == mixer.PCMA) != (pt == 8) {
			t.Fatalf("%s (%v) got payload type %d", p.leg, p.law, pt)
		}
		f := make([]int16, n-12)
		if p.law == mixer.PCMA {
			mixer.DecodeAlaw(f, buf[12:n])
		} else {
			mixer.DecodeUlaw(f, buf[12:n])
		}
		pcm = append(pcm, f...)
	}
	return pcm
}

func TestHold(t *testing.T) {
	for _, tc := range []struct {
		name, conn, attrs string
		held              bool
		dir               string
	}{
		{"sendrecv", "192.0.2.1", "a=sendrecv\r\n", false, ""},
		{"no direction", "192.0.2.1", "", false, ""},
		{"sendonly", "192.0.2.1", "a=sendonly\r\n", true, "recvonly"},
		{"inactive", "192.0.2.1", "a=inactive\r\n", true, "inactive"},
		{"rfc 2543 zero address", "0.0.0.0", "", true, "inactive"},
		{"recvonly is no hold", "192.0.2.1", "a=recvonly\r\n", false, ""},
	} {
		offer := "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 " + tc.conn + "\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n" + tc.attrs
		if held, dir := Hold([]byte(offer)); held != tc.held || dir != tc.dir {
			t.Errorf("%s: %v %q, want %v %q", tc.name, held, dir, tc.held, tc.dir)
		}
	}
}
