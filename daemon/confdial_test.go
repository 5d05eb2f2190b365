package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imcall/b2bua/conference"
	"github.com/imcall/b2bua/mixer"
	"github.com/imcall/b2bua/registry"
)

// phone is a dialed-out participant's UA: raw SIP on one UDP socket, RTP
// on the member's socket.
type phone struct {
	*member
	t      *testing.T
	invite string // the INVITE it got
	from   net.Addr
	tag    string
}

func newPhone(t *testing.T, user string, law mixer.Law, freq float64) *phone {
	return &phone{member: newMember(t, user, law, freq), t: t, tag: "ph-" + user}
}

// read returns the next SIP message the phone gets.
func (p *phone) read() string {
	p.t.Helper()
	buf := make([]byte, 8192)
	p.sip.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := p.sip.ReadFrom(buf)
	if err != nil {
		p.t.Fatalf("%s: nothing from the bridge: %v", p.user, err)
	}
	p.from = from
	return string(buf[:n])
}

// expect reads until a request with method, skipping retransmissions.
func (p *phone) expect(method string) string {
	p.t.Helper()
	for {
		m := p.read()
		if strings.HasPrefix(m, method+" ") {
			return m
		}
	}
}

// ring takes the INVITE and checks what it offers.
func (p *phone) ring(confURI string) {
	p.t.Helper()
	p.invite = p.expect("INVITE")
	if !strings.Contains(header(p.invite, "From"), confURI) {
		p.t.Errorf("%s: INVITE from %q, want the conference %s", p.user, header(p.invite, "From"), confURI)
	}
	if !strings.Contains(p.invite, "m=audio ") || !strings.Contains(p.invite, " RTP/AVP 0 8 101") {
		p.t.Errorf("%s: the offer names other codecs:\n%s", p.user, p.invite)
	}
	g := regexp.MustCompile(`m=audio (\d+) `).FindStringSubmatch(p.invite)
	port, _ := strconv.Atoi(g[1])
	p.relay = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
}

// respond answers the INVITE (or req) with status, an SDP for 2xx.
func (p *phone) respond(req string, status int, reason, extra string) string {
	var out []string
	out = append(out, fmt.Sprintf("SIP/2.0 %d %s", status, reason))
	for _, l := range strings.Split(req, "\r\n")[1:] {
		for _, h := range []string{"Via:", "From:", "Call-ID:", "CSeq:", "Record-Route:"} {
			if strings.HasPrefix(l, h) {
				out = append(out, l)
			}
		}
		if strings.HasPrefix(l, "To:") {
			if status > 100 && !strings.Contains(l, ";tag=") {
				l += ";tag=" + p.tag
			}
			out = append(out, l)
		}
	}
	body := ""
	if status >= 200 && status < 300 && strings.HasPrefix(req, "INVITE ") {
		pt := map[mixer.Law]string{mixer.PCMU: "0", mixer.PCMA: "8"}[p.law]
		body = fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio %d RTP/AVP %s\r\na=sendrecv\r\n",
			p.rtp.LocalAddr().(*net.UDPAddr).Port, pt)
		out = append(out, "Contact: <sip:"+p.user+"@"+p.sip.LocalAddr().String()+">", "Content-Type: application/sdp")
	}
	if extra != "" {
		out = append(out, extra)
	}
	msg := strings.Join(out, "\r\n") + "\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	p.sip.WriteTo([]byte(msg), p.from)
	return msg
}

func participantOf(t *testing.T, d *Daemon, confID, pid string) conference.Participant {
	t.Helper()
	var s conference.Snapshot
	_, b := apiDo(t, d, "GET", "/api/v1/conferences/"+confID, httpTestToken, "")
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	p, _ := s.Participant(pid)
	return p
}

// waitStatus polls the API until pid has status (the dial's progress is
// reported from the bridge's own goroutine).
func waitStatus(t *testing.T, d *Daemon, confID, pid string, want conference.Status) conference.Participant {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p := participantOf(t, d, confID, pid)
		if p.Status == want {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is %s, want %s (%+v)", pid, p.Status, want, p.Ended)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestConferenceDialOut: the bridge dials out to IM users through the
// registry and the SCP, and to a number through the trunk. bob rings and
// answers (a retransmitted 200 gets its ACK again), carol is busy, erin
// answers behind the trunk, dave rings and is kicked (CANCEL). bob and erin
// hear each other's tones and not their own; the API and the NOTIFYs show
// each one's progress.
func TestConferenceDialOut(t *testing.T) {
	bob := newPhone(t, "bob", mixer.PCMU, 300)
	carol := newPhone(t, "carol", mixer.PCMU, 0)
	dave := newPhone(t, "dave", mixer.PCMU, 0)
	erin := newPhone(t, "erin", mixer.PCMA, 500)
	dir := t.TempDir()
	subs, _ := json.Marshal([]map[string]string{
		{"imsi": "001010000000011", "addr": bob.sip.LocalAddr().String(), "state": "online"},
		{"imsi": "001010000000012", "addr": carol.sip.LocalAddr().String(), "state": "online"},
		{"imsi": "001010000000013", "addr": dave.sip.LocalAddr().String(), "state": "online"},
	})
	if err := os.WriteFile(filepath.Join(dir, "subs.json"), subs, 0o644); err != nil {
		t.Fatal(err)
	}
	lo, hi := confRTP(t)
	d, err := Start(context.Background(), Config{
		DBPath: filepath.Join(dir, "b2bua.db"), Domain: "127.0.0.1",
		SIPListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", APIToken: httpTestToken,
		RTPPortMin: lo, RTPPortMax: hi,
		SCPSubscribers:  filepath.Join(dir, "subs.json"),
		ConferenceTrunk: erin.sip.LocalAddr().String(),
		Logger:          slog.New(slog.DiscardHandler),
		Trusted:         []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	ctx := context.Background()
	for i, u := range []string{"bob", "carol", "dave"} {
		if _, err := d.Store().AddUser(ctx, registry.User{IMID: u, Creds: registry.NewCredentials(u, "127.0.0.1", u+"-pw")}); err != nil {
			t.Fatal(err)
		}
		imsi, _ := registry.ParseIMSI(fmt.Sprintf("0010100000000%d", 11+i))
		if _, err := d.Store().AddTerminal(ctx, registry.NewTerminal{IMID: u, MobileID: imsi, Kind: registry.Legacy, Active: true}); err != nil {
			t.Fatal(err)
		}
	}
	code, b := apiDo(t, d, "POST", "/api/v1/conferences", httpTestToken, `{"owner":"alice","dial":["bob","carol","+15551230001"]}`)
	if code != 201 {
		t.Fatalf("create: %d %s", code, b)
	}
	var c conference.CreatedResponse
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	sub := newSubscriber(t, d, "127.0.0.1")
	if ok := sipExchange(t, sub.c, sub.to, subscribe(sub.c.LocalAddr().String(), c.URI, "watch-out", "", 1, "Event: conference\r\n")); !strings.HasPrefix(ok, "SIP/2.0 200") {
		t.Fatalf("subscribe: %.80q", ok)
	}

	bob.ring(c.URI)
	waitStatus(t, d, c.ID, "p1", conference.StatusDialing)
	bob.respond(bob.invite, 180, "Ringing", "")
	waitStatus(t, d, c.ID, "p1", conference.StatusRinging)
	ok := bob.respond(bob.invite, 200, "OK", "")
	ack := bob.expect("ACK")
	if !strings.Contains(header(ack, "To"), "tag="+bob.tag) || header(ack, "CSeq") != "1 ACK" {
		t.Errorf("bob's ACK: %q", ack)
	}
	bob.sip.WriteTo([]byte(ok), bob.from) // as if the ACK were lost
	if again := bob.expect("ACK"); header(again, "Call-ID") != header(ack, "Call-ID") {
		t.Errorf("the retransmitted 200 got %q", again)
	}
	waitStatus(t, d, c.ID, "p1", conference.StatusConnected)

	carol.ring(c.URI)
	carol.respond(carol.invite, 486, "Busy Here", "Reason: Q.850;cause=17")
	if e := waitStatus(t, d, c.ID, "p2", conference.StatusDisconnected).Ended; e == nil || e.Method != conference.Busy || e.SIPCode != 486 || e.Q850 != 17 {
		t.Errorf("carol ended %+v, want busy 486 cause 17", e)
	}

	erin.ring(c.URI)
	if ruri := strings.Fields(erin.invite)[1]; ruri != "sip:+15551230001@"+erin.sip.LocalAddr().String()+";user=phone" {
		t.Errorf("the trunk got INVITE %s", ruri)
	}
	erin.respond(erin.invite, 200, "OK", "")
	erin.expect("ACK")
	waitStatus(t, d, c.ID, "p3", conference.StatusConnected)

	// bob (PCMU) and erin (PCMA) hear each other through the mixer.
	tick := time.NewTicker(mixer.FrameDuration)
	for i := 0; i < 100; i++ {
		<-tick.C
		bob.sendTone(t)
		erin.sendTone(t)
	}
	tick.Stop()
	for _, pair := range [][2]*phone{{bob, erin}, {erin, bob}} {
		pcm := pair[0].heard(90)
		if len(pcm) < 160*50 {
			t.Fatalf("%s heard %d samples", pair[0].user, len(pcm))
		}
		tail := pcm[len(pcm)-160*40:]
		if a := goertzel(tail, pair[1].freq); a < 2000 {
			t.Errorf("%s does not hear %s (%.0f)", pair[0].user, pair[1].user, a)
		}
		if a := goertzel(tail, pair[0].freq); a > 300 {
			t.Errorf("%s hears itself (%.0f)", pair[0].user, a)
		}
	}

	// dave rings and is kicked: CANCEL, then his 487.
	if code, b := apiDo(t, d, "POST", "/api/v1/conferences/"+c.ID+"/participants", httpTestToken, `{"target":"dave"}`); code != 201 && code != 200 {
		t.Fatalf("add dave: %d %s", code, b)
	}
	dave.ring(c.URI)
	dave.respond(dave.invite, 180, "Ringing", "")
	waitStatus(t, d, c.ID, "p4", conference.StatusRinging)
	if code, b := apiDo(t, d, "POST", "/api/v1/conferences/"+c.ID+"/participants/p4/kick", httpTestToken, "{}"); code != 200 {
		t.Fatalf("kick: %d %s", code, b)
	}
	cancel := dave.expect("CANCEL")
	if header(cancel, "CSeq") != "1 CANCEL" || header(cancel, "Call-ID") != header(dave.invite, "Call-ID") {
		t.Errorf("dave's CANCEL: %q", cancel)
	}
	dave.respond(cancel, 200, "OK", "")
	dave.respond(dave.invite, 487, "Request Terminated", "")
	dave.expect("ACK")
	if e := participantOf(t, d, c.ID, "p4").Ended; e == nil || e.Method != conference.Booted {
		t.Errorf("dave ended %+v, want booted", e)
	}

	// bob hangs up.
	bye := strings.Join([]string{
		"BYE " + header(ack, "Contact") + " SIP/2.0",
		"Via: SIP/2.0/UDP " + bob.sip.LocalAddr().String() + ";branch=z9hG4bK-bob-bye",
		"From: " + header(ack, "To"),
		"To: " + header(ack, "From"),
		"Call-ID: " + header(ack, "Call-ID"),
		"CSeq: 1 BYE", "Max-Forwards: 70", "Content-Length: 0",
	}, "\r\n") + "\r\n\r\n"
	bye = strings.Replace(bye, "BYE  SIP", "BYE "+c.URI+" SIP", 1)
	if res := sipExchange(t, bob.sip, net.UDPAddrFromAddrPort(d.SIPAddr()), bye); !strings.HasPrefix(res, "SIP/2.0 200") {
		t.Errorf("bob's BYE: %.80q", res)
	}
	if e := waitStatus(t, d, c.ID, "p1", conference.StatusDisconnected).Ended; e == nil || e.Method != conference.Departed {
		t.Errorf("bob ended %+v, want departed", e)
	}

	// Each ended leg has its call record, saying which conference it was in.
	var recs []registry.CallRecord
	deadline := time.Now().Add(5 * time.Second)
	for len(recs) < 3 && time.Now().Before(deadline) {
		if recs, err = d.Store().Calls(ctx, 10); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	byCallee := map[string]registry.CallRecord{}
	for _, r := range recs {
		byCallee[r.Callee] = r
		if r.Caller != c.URI || !strings.HasPrefix(r.EndCause, "conference conf-"+c.ID+" ") {
			t.Errorf("record %+v: want caller %s and the conference in its end cause", r, c.URI)
		}
	}
	if r := byCallee["carol"]; r.SIPStatus != 486 || r.Q850Cause != 17 || !r.AnsweredAt.IsZero() || r.TerminalID == 0 || !strings.HasPrefix(r.SCPOutcome, "online") {
		t.Errorf("carol's record %+v, want 486 cause 17 unanswered, her terminal located by the SCP", r)
	}
	if r := byCallee["bob"]; r.AnsweredAt.IsZero() || !strings.Contains(r.EndCause, "departed") || !strings.Contains(r.Stats, `"packets":1`) {
		t.Errorf("bob's record %+v, want answered, departed, with his packets", r)
	}
	if r := byCallee["dave"]; !r.AnsweredAt.IsZero() || !strings.Contains(r.EndCause, "booted") {
		t.Errorf("dave's record %+v, want unanswered, booted", r)
	}

	var all string
	for !strings.Contains(all, "<disconnection-method>departed</disconnection-method>") {
		all += sub.notify()
	}
	for _, want := range []string{"<status>dialing-out</status>", "<status>alerting</status>", "<status>connected</status>",
		"<disconnection-method>busy</disconnection-method>", "<disconnection-method>booted</disconnection-method>", "<joining-method>dialed-out</joining-method>"} {
		if !strings.Contains(all, want) {
			t.Errorf("the NOTIFYs lack %s", want)
		}
	}
}

// TestConferenceDialOutRingTimeout: a dial-out nobody answers is CANCELed
// after the ring timeout and shows failed, 480 with Q.850 cause 19.
func TestConferenceDialOutRingTimeout(t *testing.T) {
	bob := newPhone(t, "bob", mixer.PCMU, 300)
	dir := t.TempDir()
	subs, _ := json.Marshal([]map[string]string{{"imsi": "001010000000031", "addr": bob.sip.LocalAddr().String(), "state": "online"}})
	if err := os.WriteFile(filepath.Join(dir, "subs.json"), subs, 0o644); err != nil {
		t.Fatal(err)
	}
	lo, hi := confRTP(t)
	d, err := Start(context.Background(), Config{
		DBPath: filepath.Join(dir, "b2bua.db"), Domain: "127.0.0.1",
		SIPListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", APIToken: httpTestToken,
		RTPPortMin: lo, RTPPortMax: hi,
		SCPSubscribers: filepath.Join(dir, "subs.json"), RingTimeout: time.Second,
		Logger:  slog.New(slog.DiscardHandler),
		Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	ctx := context.Background()
	if _, err := d.Store().AddUser(ctx, registry.User{IMID: "bob", Creds: registry.NewCredentials("bob", "127.0.0.1", "bob-pw")}); err != nil {
		t.Fatal(err)
	}
	imsi, _ := registry.ParseIMSI("001010000000031")
	if _, err := d.Store().AddTerminal(ctx, registry.NewTerminal{IMID: "bob", MobileID: imsi, Kind: registry.Legacy, Active: true}); err != nil {
		t.Fatal(err)
	}
	code, b := apiDo(t, d, "POST", "/api/v1/conferences", httpTestToken, `{"owner":"alice","dial":["bob"]}`)
	if code != 201 {
		t.Fatalf("create: %d %s", code, b)
	}
	var c conference.CreatedResponse
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	bob.ring(c.URI)
	bob.respond(bob.invite, 180, "Ringing", "")
	rang := time.Now()
	cancel := bob.expect("CANCEL")
	if waited := time.Since(rang); waited < 800*time.Millisecond || waited > 3*time.Second {
		t.Errorf("CANCEL %v after the 180, want the 1 s ring timeout", waited)
	}
	bob.respond(cancel, 200, "OK", "")
	bob.respond(bob.invite, 487, "Request Terminated", "")
	bob.expect("ACK")
	e := waitStatus(t, d, c.ID, "p1", conference.StatusDisconnected).Ended
	if e == nil || e.Method != conference.Failed || e.SIPCode != 480 || e.Q850 != 19 {
		t.Errorf("bob ended %+v, want failed 480 cause 19", e)
	}
}

// confRTP gives a conference test 100 media ports of its own, below the
// kernel's ephemeral ports (32768 and up, where this machine's port-0
// sockets land) and each free a moment ago: a fixed range up there can be
// half taken by other processes' sockets, and the proxy then runs out of
// bind attempts.
func confRTP(t *testing.T) (lo, hi int) {
	t.Helper()
	start := rand.IntN(25)
	var err error
	for i := range 25 {
		lo = 30000 + 100*((start+i)%25)
		if err = portsFree(lo, lo+99); err == nil {
			return lo, lo + 99
		}
	}
	t.Fatalf("no free block of 100 UDP ports in 30000-32499: %v", err)
	return 0, 0
}

func portsFree(lo, hi int) error {
	var held []net.PacketConn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for p := lo; p <= hi; p++ {
		c, err := net.ListenPacket("udp4", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			return err
		}
		held = append(held, c)
	}
	return nil
}
