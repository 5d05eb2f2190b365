package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/internal/testenv"
	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/registry/sqlite"
	"github.com/imcall/b2bua/rtpproxy"
)

// g711aPCAP is the G.711 A-law capture SIPp plays (caller_rtp.xml names it).
const g711aPCAP = "/usr/share/sip-tester/g711a.pcap"

// goTerminal is bob's phone: a sipgo UAS that rings and answers with SDP
// pointing at its own RTP socket, which counts what arrives and from where.
type goTerminal struct {
	t    *testing.T
	port int // SIP, UDP
	rtp  *net.UDPConn

	mu      sync.Mutex
	offer   string         // the body of the INVITE
	byes    []string       // the Reason of every BYE
	packets map[string]int // RTP packets by source address
	pts     map[byte]int   // RTP packets by payload type
}

func newGoTerminal(t *testing.T) *goTerminal {
	t.Helper()
	rtp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &goTerminal{t: t, rtp: rtp, port: conn.LocalAddr().(*net.UDPAddr).Port, packets: map[string]int{}, pts: map[byte]int{}}
	quiet := slog.New(slog.DiscardHandler)
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("bob-phone"), sipgo.WithUserAgentHostname("127.0.0.1"),
		sipgo.WithUserAgentTransactionLayerOptions(sipmsg.WithTransactionLayerLogger(quiet)),
		sipgo.WithUserAgentTransportLayerOptions(sipmsg.WithTransportLayerLogger(quiet)))
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := sipgo.NewServer(ua, sipgo.WithServerLogger(quiet))
	cli, _ := sipgo.NewClient(ua, sipgo.WithClientLogger(quiet), sipgo.WithClientConnectionAddr(conn.LocalAddr().String()))
	ds := sipgo.NewDialogServerCache(cli, sipmsg.ContactHeader{Address: sipmsg.Uri{Scheme: "sip", User: "bob", Host: "127.0.0.1", Port: g.port}})
	answer := fmt.Sprintf("v=0\r\no=bob 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
		rtp.LocalAddr().(*net.UDPAddr).Port)
	srv.OnInvite(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		dlg, err := ds.ReadInvite(req, tx)
		if err != nil {
			return
		}
		g.mu.Lock()
		g.offer = string(req.Body())
		g.mu.Unlock()
		if dlg.Respond(180, "Ringing", nil) == nil {
			_ = dlg.RespondSDP([]byte(answer))
		}
	})
	srv.OnAck(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) { _ = ds.ReadAck(req, tx) })
	srv.OnBye(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		reason := ""
		if h := req.GetHeader("Reason"); h != nil {
			reason = h.Value()
		}
		g.mu.Lock()
		g.byes = append(g.byes, reason)
		g.mu.Unlock()
		_ = ds.ReadBye(req, tx)
	})
	go srv.ServeUDP(conn)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := rtp.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if n >= 12 && buf[0]>>6 == 2 {
				g.mu.Lock()
				g.packets[from.String()]++
				g.pts[buf[1]&0x7f]++
				g.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		rtp.Close()
		ua.Close()
	})
	return g
}

// waitBYEs waits until the terminal has received n BYEs or d has passed:
// the B2BUA answers the caller's BYE before its own BYE reaches the
// terminal, so SIPp may exit a moment before the terminal hears of it.
func (g *goTerminal) waitBYEs(n int, d time.Duration) {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		g.mu.Lock()
		got := len(g.byes)
		g.mu.Unlock()
		if got >= n {
			return
		}
	}
}

func (g *goTerminal) snapshot() (offer string, byes []string, packets map[string]int, pts map[byte]int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	packets, pts = map[string]int{}, map[byte]int{}
	for k, v := range g.packets {
		packets[k] = v
	}
	for k, v := range g.pts {
		pts[k] = v
	}
	return g.offer, append([]string(nil), g.byes...), packets, pts
}

// callWithMedia places a call from alice to bob through n with caller
// scenario sf, SIPp's media on a port of its own (the result's mediaPort).
func (n *node) callWithMedia(sf string) *sipp {
	n.t.Helper()
	return startSipp(n.t, sippRun{name: strings.TrimSuffix(sf, ".xml"), scenario: sf, media: true, args: []string{
		"-s", "bob", "-key", "caller", "alice", "-key", "domain", domain,
		"-au", "alice", "-ap", "secret", "-auth_uri", "bob@" + domain,
		"-oocsf", scenario("notice.xml"),
		n.sipAddr}})
}

var mline = regexp.MustCompile(`(?m)^m=audio (\d+) `)

// offerAddr is the c= address and the audio port of an SDP body.
func offerAddr(t *testing.T, sdp string) (string, int) {
	t.Helper()
	m := mline.FindStringSubmatch(sdp)
	c := regexp.MustCompile(`(?m)^c=IN IP4 (\S+)`).FindStringSubmatch(sdp)
	if m == nil || c == nil {
		t.Fatalf("offer without c= or audio m= line:\n%s", sdp)
	}
	port, _ := strconv.Atoi(m[1])
	return c[1], port
}

// TestAnchoredRTP: by default b2bua serve anchors media. A SIPp caller
// plays G.711 audio; the terminal's offer names the proxy (the SIP listen
// host, a port of --rtp-ports), and the packets reach the terminal from
// exactly that address, never from SIPp's.
func TestAnchoredRTP(t *testing.T) {
	t.Parallel()
	testenv.NeedFile(t, g711aPCAP, "SIPp's audio file (apt-get install sip-tester)")
	n := provision(t)
	term := newGoTerminal(t)
	n.serve(serveOpts{subscribers: []subscriber{online(bobIMSI, term.port)}})
	n.callWithMedia("caller_rtp.xml").wait()
	term.waitBYEs(1, 5*time.Second)

	offer, byes, packets, pts := term.snapshot()
	addr, port := offerAddr(t, offer)
	if addr != "127.0.0.1" || port < n.rtpMin || port > n.rtpMax {
		t.Errorf("terminal's offer names %s port %d, want 127.0.0.1 and a port in %d-%d:\n%s", addr, port, n.rtpMin, n.rtpMax, offer)
	}
	if len(byes) != 1 {
		t.Errorf("terminal got %d BYEs, want 1", len(byes))
	}
	proxy := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)).String()
	if packets[proxy] < 100 || len(packets) != 1 {
		t.Errorf("RTP reached the terminal from %v, want at least 100 packets, all from the proxy at %s", packets, proxy)
	}
	if pts[8] != packets[proxy] {
		t.Errorf("payload types %v, want only 8 (PCMA)", pts)
	}
	// The relay counted what it relayed.
	res, err := http.Get("http://" + n.httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	m := regexp.MustCompile(`(?m)^b2bua_rtp_packets_relayed_total (\d+)$`).FindStringSubmatch(string(body))
	if m == nil {
		t.Fatalf("/metrics lacks b2bua_rtp_packets_relayed_total:\n%s", body)
	}
	if v, _ := strconv.Atoi(m[1]); v < packets[proxy] {
		t.Errorf("relayed %d packets, the terminal got %d", v, packets[proxy])
	}
}

// TestMediaTimeout: an answered call without RTP ends at --media-timeout
// with BYE to both sides carrying Q.850 cause 102 (the caller's scenario
// checks its own), and the call record says "media timeout".
func TestMediaTimeout(t *testing.T) {
	t.Parallel()
	n := provision(t)
	term := newGoTerminal(t)
	n.serve(serveOpts{subscribers: []subscriber{online(bobIMSI, term.port)},
		extra: []string{"--media-timeout", "1s"}})
	n.callWithMedia("caller_media_timeout.xml").wait()
	term.waitBYEs(1, 5*time.Second)

	_, byes, packets, _ := term.snapshot()
	if len(byes) != 1 || !strings.HasPrefix(byes[0], "Q.850;cause=102;") || !strings.Contains(byes[0], "media timeout") {
		t.Errorf("terminal's BYEs carry %q, want one with Q.850 cause 102", byes)
	}
	if len(packets) != 0 {
		t.Errorf("terminal got RTP %v", packets)
	}
	rec := n.lastCall(func(r registry.CallRecord) bool { return !r.EndedAt.IsZero() })
	if rec.EndCause != "media timeout" || rec.AnsweredAt.IsZero() {
		t.Errorf("call record: answered %v, end cause %q; want an answered call ended by media timeout", rec.AnsweredAt, rec.EndCause)
	}
	var legs []rtpproxy.LegStats
	if err := json.Unmarshal([]byte(rec.Stats), &legs); err != nil || len(legs) != 2 {
		t.Errorf("call record media stats %q: %v", rec.Stats, err)
	}
}

// TestPassthroughMedia: with --media passthrough the terminal gets the
// caller's own SDP.
func TestPassthroughMedia(t *testing.T) {
	t.Parallel()
	n := provision(t)
	term := newGoTerminal(t)
	n.serve(serveOpts{subscribers: []subscriber{online(bobIMSI, term.port)},
		extra: []string{"--media", "passthrough"}})
	caller := n.callWithMedia("caller_call_bye.xml")
	caller.wait()
	mp := caller.mediaPort
	offer, _, _, _ := term.snapshot()
	if addr, port := offerAddr(t, offer); addr != "127.0.0.1" || port != mp || !strings.Contains(offer, "o=caller ") {
		t.Errorf("terminal's offer changed (want SIPp's, port %d):\n%s", mp, offer)
	}
	res, err := http.Get("http://" + n.httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if strings.Contains(string(body), "b2bua_rtp_") {
		t.Errorf("passthrough exposes RTP proxy metrics:\n%s", body)
	}
}

// lastCall reads the newest call record from the node's registry, waiting
// up to 5s until ok accepts it (records are written off the call path).
func (n *node) lastCall(ok func(registry.CallRecord) bool) registry.CallRecord {
	n.t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, sqlite.Config{Path: n.db})
	if err != nil {
		n.t.Fatal(err)
	}
	defer store.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		recs, err := store.Calls(ctx, 1)
		if err != nil {
			n.t.Fatal(err)
		}
		if len(recs) == 1 && ok(recs[0]) {
			return recs[0]
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("no finished call record within 5s: %+v", recs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
