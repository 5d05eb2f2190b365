package daemon

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imcall/b2bua/conference"
	"github.com/imcall/b2bua/mixer"
)

// member is a dial-in UA: SIP on one UDP socket, RTP on another, sending
// one tone in one G.711 law.
type member struct {
	sip, rtp *net.UDPConn
	user     string
	law      mixer.Law
	freq     float64
	callID   string
	toTag    string
	relay    netip.AddrPort // our endpoint on the proxy, from the 200's SDP
	seq      uint16
	n        int
}

func newMember(t *testing.T, user string, law mixer.Law, freq float64) *member {
	m := &member{user: user, law: law, freq: freq, callID: "conf-call-" + user}
	var err error
	for _, c := range []**net.UDPConn{&m.sip, &m.rtp} {
		if *c, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { (*c).Close() })
	}
	return m
}

func (m *member) invite(ruri string) string {
	pt := map[mixer.Law]string{mixer.PCMU: "0", mixer.PCMA: "8"}[m.law]
	sdp := fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio %d RTP/AVP %s 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n",
		m.rtp.LocalAddr().(*net.UDPAddr).Port, pt)
	local := m.sip.LocalAddr().String()
	return strings.Join([]string{
		"INVITE " + ruri + " SIP/2.0",
		"Via: SIP/2.0/UDP " + local + ";branch=z9hG4bK-inv-" + m.user,
		"From: <sip:" + m.user + "@127.0.0.1>;tag=" + m.user,
		"To: <" + ruri + ">",
		"Call-ID: " + m.callID,
		"CSeq: 1 INVITE",
		"Contact: <sip:" + m.user + "@" + local + ">",
		"Max-Forwards: 70",
		"Content-Type: application/sdp",
		"Content-Length: " + strconv.Itoa(len(sdp)),
	}, "\r\n") + "\r\n\r\n" + sdp
}

func (m *member) inDialog(method, ruri string, cseq int) string {
	local := m.sip.LocalAddr().String()
	return strings.Join([]string{
		method + " " + ruri + " SIP/2.0",
		"Via: SIP/2.0/UDP " + local + ";branch=z9hG4bK-" + strings.ToLower(method) + "-" + m.user,
		"From: <sip:" + m.user + "@127.0.0.1>;tag=" + m.user,
		"To: <" + ruri + ">;tag=" + m.toTag,
		"Call-ID: " + m.callID,
		"CSeq: " + strconv.Itoa(cseq) + " " + method,
		"Max-Forwards: 70",
		"Content-Length: 0",
	}, "\r\n") + "\r\n\r\n"
}

func (m *member) sendTone(t *testing.T) {
	pcm := make([]int16, 160)
	for i := range pcm {
		pcm[i] = int16(8000 * math.Sin(2*math.Pi*m.freq*float64(m.n+i)/8000))
	}
	pkt := make([]byte, 12+160)
	pkt[0] = 0x80
	if m.law == mixer.PCMA {
		pkt[1] = 8
		mixer.EncodeAlaw(pkt[12:], pcm)
	} else {
		mixer.EncodeUlaw(pkt[12:], pcm)
	}
	binary.BigEndian.PutUint16(pkt[2:], m.seq)
	binary.BigEndian.PutUint32(pkt[4:], uint32(m.n))
	binary.BigEndian.PutUint32(pkt[8:], uint32(m.freq))
	m.seq++
	m.n += 160
	if _, err := m.rtp.WriteToUDPAddrPort(pkt, m.relay); err != nil {
		t.Fatal(err)
	}
}

// heard decodes the first frames packets that arrived on the member's RTP
// socket (the mixer sends on for as long as the call lasts).
func (m *member) heard(frames int) []int16 {
	var pcm []int16
	buf := make([]byte, 2048)
	for len(pcm) < 160*frames {
		m.rtp.SetReadDeadline(time.Now().Add(time.Second))
		n, err := m.rtp.Read(buf)
		if err != nil {
			return pcm
		}
		if n < 12+160 {
			continue
		}
		f := make([]int16, n-12)
		if m.law == mixer.PCMA {
			mixer.DecodeAlaw(f, buf[12:n])
		} else {
			mixer.DecodeUlaw(f, buf[12:n])
		}
		pcm = append(pcm, f...)
	}
	return pcm
}

// drain drops what is queued on the member's RTP socket: the mix keeps
// coming every 20 ms, the backlog reads at once.
func (m *member) drain() {
	buf := make([]byte, 2048)
	for {
		m.rtp.SetReadDeadline(time.Now().Add(2 * time.Millisecond))
		if _, err := m.rtp.Read(buf); err != nil {
			return
		}
	}
}

func goertzel(x []int16, freq float64) float64 {
	w := 2 * math.Pi * freq / 8000
	c := 2 * math.Cos(w)
	var s1, s2 float64
	for _, v := range x {
		s0 := float64(v) + c*s1 - s2
		s2, s1 = s1, s0
	}
	return 2 * math.Sqrt(s1*s1+s2*s2-c*s1*s2) / float64(len(x))
}

// TestConferenceDialIn: three UAs call the conference URI over loopback,
// each sending a tone in its law through the real relay and mixer; each
// hears the other two and not itself; a subscriber sees them connect; one
// hangs up (departed), the owner kicks another (it gets BYE with Reason).
func TestConferenceDialIn(t *testing.T) {
	lo, hi := confRTP(t)
	d, err := Start(context.Background(), Config{
		DBPath: filepath.Join(t.TempDir(), "b2bua.db"), Domain: "127.0.0.1",
		SIPListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", APIToken: httpTestToken,
		RTPPortMin: lo, RTPPortMax: hi,
		Logger:  slog.New(slog.DiscardHandler),
		Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	code, b := apiDo(t, d, "POST", "/api/v1/conferences", httpTestToken, `{"owner":"alice"}`)
	if code != 201 {
		t.Fatalf("create: %d %s", code, b)
	}
	var c conference.CreatedResponse
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	sub := newSubscriber(t, d, "127.0.0.1")
	if ok := sipExchange(t, sub.c, sub.to, subscribe(sub.c.LocalAddr().String(), c.URI, "watch", "", 1, "Event: conference\r\n")); !strings.HasPrefix(ok, "SIP/2.0 200") {
		t.Fatalf("subscribe: %.80q", ok)
	}
	sub.notify()

	sipTo := net.UDPAddrFromAddrPort(d.SIPAddr())
	members := []*member{
		newMember(t, "bob", mixer.PCMU, 300),
		newMember(t, "carol", mixer.PCMA, 500),
		newMember(t, "dave", mixer.PCMU, 700),
	}
	mport := regexp.MustCompile(`m=audio (\d+) `)
	for _, m := range members {
		res := sipExchange(t, m.sip, sipTo, m.invite(c.URI))
		if !strings.HasPrefix(res, "SIP/2.0 200") {
			t.Fatalf("%s: %.200q", m.user, res)
		}
		g := mport.FindStringSubmatch(res)
		tag := regexp.MustCompile(`(?m)^To:.*;tag=([^;\r]+)`).FindStringSubmatch(res)
		if g == nil || tag == nil {
			t.Fatalf("%s: 200 without SDP or tag: %q", m.user, res)
		}
		port, _ := strconv.Atoi(g[1])
		m.relay = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
		m.toTag = tag[1]
		m.sip.WriteTo([]byte(m.inDialog("ACK", c.URI, 1)), sipTo)
	}
	// Real time: the daemon's mixer runs on its own 20 ms clock.
	tick := time.NewTicker(mixer.FrameDuration)
	for i := 0; i < 100; i++ {
		<-tick.C
		for _, m := range members {
			m.sendTone(t)
		}
	}
	tick.Stop()
	for _, m := range members {
		pcm := m.heard(90)
		if len(pcm) < 160*50 {
			t.Fatalf("%s heard %d samples", m.user, len(pcm))
		}
		tail := pcm[len(pcm)-160*40:]
		for _, o := range members {
			a := goertzel(tail, o.freq)
			t.Logf("%s hears %s (%v Hz) at %.0f", m.user, o.user, o.freq, a)
			if o == m && a > 300 {
				t.Errorf("%s hears itself at %.0f", m.user, a)
			}
			if o != m && a < 2000 {
				t.Errorf("%s does not hear %s (%.0f)", m.user, o.user, a)
			}
		}
	}
	var show conference.Snapshot
	_, b = apiDo(t, d, "GET", "/api/v1/conferences/"+c.ID, httpTestToken, "")
	json.Unmarshal(b, &show)
	for _, p := range show.Participants {
		if p.Status != conference.StatusConnected || p.Joined != conference.DialedIn || !p.Talking {
			t.Errorf("participant %+v, want connected, dialed-in, talking", p)
		}
	}

	// carol muted: bob no longer hears her tone, still dave's.
	if code, b := apiDo(t, d, "POST", "/api/v1/conferences/"+c.ID+"/participants/p2/mute", httpTestToken, "{}"); code != 200 || !strings.Contains(string(b), `"muted":true`) {
		t.Fatalf("mute: %d %s", code, b)
	}
	members[0].drain()
	tick = time.NewTicker(mixer.FrameDuration)
	for i := 0; i < 60; i++ {
		<-tick.C
		for _, m := range members {
			m.sendTone(t)
		}
	}
	tick.Stop()
	tail := members[0].heard(50)[160*15:] // past the mixer's playout delay
	if a := goertzel(tail, 500); a > 300 {
		t.Errorf("bob still hears muted carol at %.0f", a)
	}
	if a := goertzel(tail, 700); a < 2000 {
		t.Errorf("bob no longer hears dave (%.0f)", a)
	}

	// bob hangs up; carol is kicked and gets a BYE saying why.
	if res := sipExchange(t, members[0].sip, sipTo, members[0].inDialog("BYE", c.URI, 2)); !strings.HasPrefix(res, "SIP/2.0 200") {
		t.Errorf("BYE: %.80q", res)
	}
	bye := make(chan string, 1)
	go func() { // answers the BYE while the kick waits for that answer
		buf := make([]byte, 4096)
		members[1].sip.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, from, err := members[1].sip.ReadFrom(buf)
		if err != nil {
			bye <- err.Error()
			return
		}
		members[1].sip.WriteTo([]byte(answer200(string(buf[:n]))), from)
		bye <- string(buf[:n])
	}()
	start := time.Now()
	if code, b := apiDo(t, d, "POST", "/api/v1/conferences/"+c.ID+"/participants/p2/kick", httpTestToken, "{}"); code != 200 {
		t.Fatalf("kick: %d %s", code, b)
	}
	if got := <-bye; !strings.HasPrefix(got, "BYE ") || !strings.Contains(got, "Reason: Q.850;cause=16") {
		t.Fatalf("kicked carol got %q", got)
	}
	if waited := time.Since(start); waited > 2*time.Second {
		t.Errorf("the kick took %v: the BYE's answer was not taken", waited)
	}
	_, b = apiDo(t, d, "GET", "/api/v1/conferences/"+c.ID, httpTestToken, "")
	json.Unmarshal(b, &show)
	for i, want := range []conference.EndMethod{conference.Departed, conference.Booted} {
		p := show.Participants[i]
		if p.Status != conference.StatusDisconnected || p.Ended == nil || p.Ended.Method != want || p.Ended.Q850 != 16 {
			t.Errorf("participant %d: %+v %+v, want disconnected %s cause 16", i, p, p.Ended, want)
		}
	}
	// The subscriber saw each of them connect and the two leave.
	var all string
	for {
		n := sub.notify()
		all += n
		if strings.Count(all, "<status>disconnected</status>") >= 2 {
			break
		}
	}
	for _, want := range []string{"<status>dialing-in</status>", "<status>connected</status>", "<disconnection-method>departed</disconnection-method>", "<disconnection-method>booted</disconnection-method>"} {
		if !strings.Contains(all, want) {
			t.Errorf("the NOTIFYs lack %s", want)
		}
	}
}
