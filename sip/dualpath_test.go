package sip_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/rtpproxy"
	"github.com/imcall/b2bua/scp"
	b2b "github.com/imcall/b2bua/sip"
)

const aliceMSISDN = "+15550001111"

// dualEnv is a B2BUA with digest, the rtpproxy, a trunk on 127.0.0.2 and
// dual-path calls on; alice's terminal has aliceMSISDN; bob's terminal is
// far, answering with its media on farRTP.
type dualEnv struct {
	*env
	far    *peer
	farRTP *rtpSock
	dlgs   chan *sipgo.DialogServerSession
	mu     sync.Mutex
	invs   int // INVITEs the far party got
}

func newDualEnv(t *testing.T, ringFor time.Duration, mods ...func(*b2b.DualPathConfig)) *dualEnv {
	t.Helper()
	proxy, err := rtpproxy.New(rtpproxy.Config{
		BindAddr: netip.MustParseAddr("127.0.0.1"), PortMin: 36800, PortMax: 36999,
		Drain: 10 * time.Millisecond, Workers: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	trunk := registry.Trunk{Name: "carrier", CIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}, Identity: registry.IdentityPAI}
	var e *env
	e = newEnv(t, withDigest(), func(c *b2bConfig) {
		c.Media = b2b.RTPProxy{Proxy: proxy}
		c.DualPath = b2b.DualPathConfig{
			Window: 10 * time.Second,
			Trunks: func(context.Context) ([]registry.Trunk, error) { return []registry.Trunk{trunk}, nil },
			Terminals: c.Terminals.(interface {
				Terminals(ctx context.Context, imID string) ([]registry.Terminal, error)
			}),
		}
		for _, m := range mods {
			m(&c.DualPath)
		}
	})
	d := &dualEnv{env: e, far: newPeer(t, "bob-term"), farRTP: newRTPSock(t, "127.0.0.1"), dlgs: make(chan *sipgo.DialogServerSession, 4)}
	e.addUser("alice")
	e.addUser("mallory")
	e.addUser("bob")
	mid, _ := registry.ParseMSISDN(aliceMSISDN)
	if _, err := e.store.AddTerminal(context.Background(), registry.NewTerminal{IMID: "alice", MobileID: mid, Kind: registry.Legacy, Caps: registry.CapAudio, Active: true}); err != nil {
		t.Fatal(err)
	}
	e.addLegacy("bob", "001010000000031", d.far.addr, scp.Online)
	d.far.setInvite(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		d.mu.Lock()
		d.invs++
		d.mu.Unlock()
		dlg, err := d.far.ds.ReadInvite(req, tx)
		if err != nil {
			return
		}
		_ = dlg.Respond(180, "Ringing", nil)
		select {
		case <-time.After(ringFor):
		case <-dlg.Context().Done():
			return
		}
		d.dlgs <- dlg
		_ = dlg.RespondSDP([]byte(sdpFor(d.farRTP.port())))
	})
	return d
}

func (d *dualEnv) farInvites() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.invs
}

func sdpFor(port int) string {
	return fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n", port)
}

// dial calls bob from p with its media on rtp; the dialog or the failure.
func dial(ctx context.Context, d *dualEnv, p *peer, rtp *rtpSock, user string, hdrs ...sipmsg.Header) (*sipgo.DialogClientSession, *sipmsg.Response, error) {
	hdrs = append(hdrs, sipmsg.NewHeader("Content-Type", "application/sdp"))
	from := &sipmsg.FromHeader{Address: sipmsg.Uri{Scheme: "sip", User: p.name, Host: "127.0.0.1"}, Params: sipmsg.NewParams()}
	from.Params.Add("tag", sipmsg.GenerateTagN(10))
	hdrs = append(hdrs, from)
	dlg, err := p.dc.Invite(ctx, d.uri("bob"), []byte(sdpFor(rtp.port())), hdrs...)
	if err != nil {
		return nil, nil, err
	}
	opts := sipgo.AnswerOptions{}
	if user != "" {
		opts = sipgo.AnswerOptions{Username: user, Password: "secret-" + user}
	}
	err = dlg.WaitAnswer(ctx, opts)
	res := dlg.InviteResponse
	if err != nil {
		return nil, res, err
	}
	if err := dlg.Ack(ctx); err != nil {
		return nil, res, err
	}
	return dlg, res, nil
}

// proxyPort is the RTP port of the SDP in res.
func proxyPort(t *testing.T, res *sipmsg.Response) int {
	t.Helper()
	for _, l := range strings.Split(string(res.Body()), "\r\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "m=audio" {
			p, _ := strconv.Atoi(f[1])
			return p
		}
	}
	t.Fatalf("no audio port in\n%s", res.Body())
	return 0
}

// rtpSock is a party's RTP socket: it sends G.711 packets every 20 ms
// while told to and records what it receives.
type rtpSock struct {
	t    *testing.T
	conn *net.UDPConn
	mu   sync.Mutex
	got  []rtpArrival
	seq  uint16
	ts   uint32
	ssrc uint32
}

type rtpArrival struct {
	at   time.Time
	ssrc uint32
	seq  uint16
	ts   uint32
	from netip.AddrPort
	pay  byte // first payload byte: which party sent it
}

func newRTPSock(t *testing.T, host string) *rtpSock {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(host)})
	if err != nil {
		t.Fatal(err)
	}
	s := &rtpSock{t: t, conn: c, ssrc: uint32(time.Now().UnixNano())}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if n < 13 {
				continue
			}
			a := rtpArrival{at: time.Now(), ssrc: binary.BigEndian.Uint32(buf[8:]), seq: binary.BigEndian.Uint16(buf[2:]), ts: binary.BigEndian.Uint32(buf[4:]), from: from, pay: buf[12]}
			s.mu.Lock()
			s.got = append(s.got, a)
			s.mu.Unlock()
		}
	}()
	return s
}

func (s *rtpSock) port() int { return s.conn.LocalAddr().(*net.UDPAddr).Port }

func (s *rtpSock) arrivals() []rtpArrival {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]rtpArrival(nil), s.got...)
}

// stream sends a packet every 20 ms to port, its payload marked mark,
// until stop is closed.
func (s *rtpSock) stream(port int, mark byte, stop <-chan struct{}) <-chan struct{} {
	done := make(chan struct{})
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		pkt := make([]byte, 172)
		for {
			pkt[0], pkt[1] = 0x80, 0
			binary.BigEndian.PutUint16(pkt[2:], s.seq)
			binary.BigEndian.PutUint32(pkt[4:], s.ts)
			binary.BigEndian.PutUint32(pkt[8:], s.ssrc)
			pkt[12] = mark
			s.seq++
			s.ts += 160
			_, _ = s.conn.WriteToUDP(pkt, to)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	return done
}

// TestDualPathSecondLegAfterAnswer: alice calls bob over the data path,
// then over the carrier path; both legs join one far call, the far party
// hears the data path until it goes silent, then the carrier path with one
// continuous stream; one BYE ends one path, the last ends the call.
func TestDualPathSecondLegAfterAnswer(t *testing.T) {
	// A switch only after 150 ms of silence: on a loaded test machine a
	// 30 ms hiccup of the first path is a genuine reason to switch, which
	// this test does not want (bench/dualpath measures the default's gap).
	d := newDualEnv(t, 0, func(c *b2b.DualPathConfig) { c.SwitchAfter = 150 * time.Millisecond })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	data, carrier := newPeer(t, "alice"), newPeerAt(t, "carrier", "127.0.0.2")
	dataRTP, carrierRTP := newRTPSock(t, "127.0.0.1"), newRTPSock(t, "127.0.0.1")

	dataDlg, dataRes, err := dial(ctx, d, data, dataRTP, "alice")
	if err != nil {
		t.Fatalf("data path: %v (%v)", err, dataRes)
	}
	farDlg := <-d.dlgs
	carrierDlg, carrierRes, err := dial(ctx, d, carrier, carrierRTP, "", sipmsg.NewHeader("P-Asserted-Identity", "<tel:"+aliceMSISDN+">"))
	if err != nil {
		t.Fatalf("carrier path: %v (%v)", err, carrierRes)
	}
	if n := d.farInvites(); n != 1 {
		t.Fatalf("far party got %d INVITEs, want 1", n)
	}
	dp, cp := proxyPort(t, dataRes), proxyPort(t, carrierRes)
	if dp == cp {
		t.Fatalf("both paths got proxy port %d", dp)
	}

	// The far party's media reaches both paths.
	farPort := proxyPort(t, d.farRTP.lastOffer(t, farDlg))
	stopFar := make(chan struct{})
	farDone := d.farRTP.stream(farPort, 'F', stopFar)
	stopData, stopCarrier := make(chan struct{}), make(chan struct{})
	dataDone := dataRTP.stream(dp, 'D', stopData)
	waitFor(t, func() bool { return countFrom(d.farRTP.arrivals(), 'D') > 5 })
	// Both paths carry media: the far party goes on hearing the first.
	carrierDone := carrierRTP.stream(cp, 'C', stopCarrier)
	waitFor(t, func() bool {
		return countFrom(dataRTP.arrivals(), 'F') > 10 && countFrom(carrierRTP.arrivals(), 'F') > 10
	})
	waitFor(t, func() bool { return countFrom(d.farRTP.arrivals(), 'D') > 20 })
	if n := countFrom(d.farRTP.arrivals(), 'C'); n != 0 {
		t.Fatalf("far party heard %d packets of the second path while the first carried media", n)
	}

	// The data path dies: the far party goes on hearing the carrier path.
	close(stopData)
	<-dataDone
	died := time.Now()
	waitFor(t, func() bool { return countFrom(d.farRTP.arrivals(), 'C') > 10 })
	got := d.farRTP.arrivals()
	var lastD, firstC time.Time
	for i, a := range got {
		if a.ssrc != got[0].ssrc {
			t.Fatalf("far party saw SSRC %#x after %#x: not one stream", a.ssrc, got[0].ssrc)
		}
		if i > 0 && a.seq != got[i-1].seq+1 {
			t.Fatalf("far party's sequence went %d → %d", got[i-1].seq, a.seq)
		}
		if a.pay == 'D' {
			lastD = a.at
		}
		if a.pay == 'C' && firstC.IsZero() {
			firstC = a.at
		}
	}
	gap := firstC.Sub(lastD)
	t.Logf("media gap at the far party: %v (path died %v before the first packet of the other)", gap, firstC.Sub(died))
	if gap > 400*time.Millisecond {
		t.Fatalf("gap %v at the far party", gap)
	}

	// One BYE ends one path; the far party sees no BYE and no re-INVITE.
	if err := dataDlg.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the BYE that must not come
	select {
	case r := <-d.far.requests:
		if r.Method != sipmsg.INVITE || r.CallID().Value() != farDlg.InviteRequest.CallID().Value() {
			t.Fatalf("far party got %s after one path's BYE", r.Method)
		}
	default:
	}
	if n := d.farInvites(); n != 1 {
		t.Fatalf("far party got %d INVITEs, want 1", n)
	}
	// The last path's BYE ends the call.
	if err := carrierDlg.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	bye := d.far.waitRequest(sipmsg.BYE, 5*time.Second)
	if h := bye.GetHeader("Reason"); h == nil {
		t.Error("BYE to the far party without Reason")
	}
	close(stopFar)
	close(stopCarrier)
	<-farDone
	<-carrierDone

	// One call record with both paths, the switch and its gap.
	waitIdle(t, d.env)
	if err := d.srv.FlushRecords(ctx); err != nil {
		t.Fatal(err)
	}
	recs, err := d.store.Calls(ctx, 10)
	if err != nil || len(recs) != 1 {
		t.Fatalf("records %v %v", recs, err)
	}
	var rec struct {
		Media []rtpproxy.LegStats
		Paths []struct {
			Leg, Path string
			EndReason string    `json:"end_reason"`
			JoinedAt  time.Time `json:"joined_at"`
			LeftAt    time.Time `json:"left_at"`
		}
		Switches int
		GapsMs   []int64 `json:"switch_gaps_ms"`
	}
	if err := json.Unmarshal([]byte(recs[0].Stats), &rec); err != nil {
		t.Fatalf("stats %q: %v", recs[0].Stats, err)
	}
	if len(rec.Paths) != 2 || rec.Paths[0].Path != "data" || rec.Paths[1].Path != "carrier" ||
		!rec.Paths[0].LeftAt.Before(rec.Paths[1].LeftAt) || !rec.Paths[0].JoinedAt.Before(rec.Paths[1].JoinedAt) {
		t.Errorf("paths in the record: %+v", rec.Paths)
	}
	if rec.Switches < 1 || len(rec.GapsMs) != rec.Switches || len(rec.Media) != 3 {
		t.Errorf("record: %d switches, gaps %v, %d media legs", rec.Switches, rec.GapsMs, len(rec.Media))
	}
}

func countFrom(as []rtpArrival, mark byte) int {
	n := 0
	for _, a := range as {
		if a.pay == mark {
			n++
		}
	}
	return n
}

// lastOffer is the INVITE the far party got, as a response-shaped body
// holder for proxyPort.
func (s *rtpSock) lastOffer(t *testing.T, dlg *sipgo.DialogServerSession) *sipmsg.Response {
	return sipmsg.NewResponseFromRequest(dlg.InviteRequest, 200, "OK", dlg.InviteRequest.Body())
}
