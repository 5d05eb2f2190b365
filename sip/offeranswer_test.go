package sip_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/rtpproxy"
	"github.com/imcall/b2bua/scp"
	b2b "github.com/imcall/b2bua/sip"
)

// The proxy's ports in these tests; a port in this range in an SDP is the
// anchor's.
const daPortMin, daPortMax = 36800, 36899

// mediaModes are the two ways the B2BUA handles media.
var mediaModes = []struct {
	name     string
	anchored bool
}{
	{"anchored", true},
	{"passthrough", false},
}

// delayedEnv is a B2BUA, anchored on a loopback rtpproxy or not, with bob's
// terminal at term.
func delayedEnv(t *testing.T, anchored bool) (e *env, caller, term *peer) {
	t.Helper()
	var opts []envOpt
	if anchored {
		p, err := rtpproxy.New(rtpproxy.Config{
			BindAddr: netip.MustParseAddr("127.0.0.1"), PortMin: daPortMin, PortMax: daPortMax,
			Drain: 10 * time.Millisecond, Workers: 1,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		opts = append(opts, func(c *b2bConfig) { c.Media = b2b.RTPProxy{Proxy: p} })
	}
	e = newEnv(t, opts...)
	caller, term = newPeer(t, "alice"), newPeer(t, "term")
	e.addUser("bob")
	e.addLegacy("bob", "001010000000001", term.addr, scp.Online)
	return e, caller, term
}

// mediaSock is a party's RTP socket on loopback.
type mediaSock struct {
	t    *testing.T
	conn *net.UDPConn
	port int
}

func newMediaSock(t *testing.T) *mediaSock {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &mediaSock{t: t, conn: c, port: c.LocalAddr().(*net.UDPAddr).Port}
}

// sdp is an audio offer or answer for this socket.
func (m *mediaSock) sdp() string {
	return fmt.Sprintf("v=0\r\no=- 7 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n", m.port)
}

var (
	sdpConn = regexp.MustCompile(`(?m)^c=IN IP4 (\S+)\r?$`)
	sdpPort = regexp.MustCompile(`(?m)^m=audio (\d+) `)
)

// sdpAddr is where an SDP asks for audio.
func sdpAddr(t *testing.T, body []byte) netip.AddrPort {
	t.Helper()
	c, m := sdpConn.FindSubmatch(body), sdpPort.FindSubmatch(body)
	if c == nil || m == nil {
		t.Fatalf("no audio address in SDP %q", body)
	}
	port, _ := strconv.Atoi(string(m[1]))
	return netip.AddrPortFrom(netip.MustParseAddr(string(c[1])), uint16(port))
}

// checkSDP asserts that the SDP a party received points at the anchor
// (anchored) or at the other party's own socket (passthrough).
func checkSDP(t *testing.T, who string, body []byte, anchored bool, other *mediaSock) {
	t.Helper()
	ap := sdpAddr(t, body)
	p := int(ap.Port())
	if anchored && (p < daPortMin || p > daPortMax || ap.Addr().String() != "127.0.0.1") {
		t.Errorf("%s got SDP for %v, not the proxy's address:\n%s", who, ap, body)
	}
	if !anchored && p != other.port {
		t.Errorf("%s got SDP for %v, want the other party's port %d:\n%s", who, ap, other.port, body)
	}
}

// flows sends RTP from src to dst until dst has taken five packets, and
// returns where they came from.
func flows(t *testing.T, src, dst *mediaSock, to netip.AddrPort) netip.AddrPort {
	t.Helper()
	got := make(chan netip.AddrPort, 64)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			_ = dst.conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			n, from, err := dst.conn.ReadFromUDPAddrPort(buf)
			select {
			case <-stop:
				return
			default:
			}
			if err == nil && n >= 12 && buf[0]>>6 == 2 {
				select {
				case got <- from:
				default:
				}
			}
		}
	}()
	defer func() { close(stop); <-done }()
	pkt := make([]byte, 172)
	pkt[0] = 0x80
	binary.BigEndian.PutUint32(pkt[8:], uint32(src.port)) // SSRC
	deadline := time.After(5 * time.Second)
	var from netip.AddrPort
	for seq, n := uint16(1), 0; n < 5; seq++ {
		binary.BigEndian.PutUint16(pkt[2:], seq)
		binary.BigEndian.PutUint32(pkt[4:], uint32(seq)*160)
		if _, err := src.conn.WriteToUDPAddrPort(pkt, to); err != nil {
			t.Fatal(err)
		}
		tick := time.After(20 * time.Millisecond)
	drain:
		for {
			select {
			case from = <-got:
				n++
			case <-tick:
				break drain
			case <-deadline:
				t.Fatalf("RTP from port %d to %v: %d packets reached port %d", src.port, to, n, dst.port)
			}
		}
	}
	return from
}

// checkFlows asserts that RTP goes both ways, through the proxy when
// anchored. toCallee and toCaller are the addresses each party found in
// the SDP it received.
func checkFlows(t *testing.T, anchored bool, callerM, termM *mediaSock, toCallee, toCaller netip.AddrPort) {
	t.Helper()
	for _, dir := range []struct {
		name     string
		src, dst *mediaSock
		to       netip.AddrPort
	}{
		{"caller to terminal", callerM, termM, toCallee},
		{"terminal to caller", termM, callerM, toCaller},
	} {
		from := flows(t, dir.src, dir.dst, dir.to)
		p := int(from.Port())
		if anchored && (p < daPortMin || p > daPortMax) {
			t.Errorf("%s: RTP came from %v, not from the proxy", dir.name, from)
		}
		if !anchored && p != dir.src.port {
			t.Errorf("%s: RTP came from %v, want directly from port %d", dir.name, from, dir.src.port)
		}
	}
}

// wireAck waits for the ACK with CSeq seq on Call-ID callID that p
// received.
func (p *peer) wireAck(callID string, seq uint32) *sipmsg.Request {
	p.t.Helper()
	var ack *sipmsg.Request
	waitFor(p.t, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, m := range p.wire {
			if r, ok := m.(*sipmsg.Request); ok && r.IsAck() && r.CallID().Value() == callID && r.CSeq().SeqNo == seq {
				ack = r
				return true
			}
		}
		return false
	})
	return ack
}

// ackWith sends the caller's ACK of the last 2xx of dlg carrying body.
func ackWith(ctx context.Context, t *testing.T, dlg *sipgo.DialogClientSession, body string) {
	t.Helper()
	ack := sipmsg.NewRequest(sipmsg.ACK, dlg.InviteResponse.Contact().Address)
	if body != "" {
		ack.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
		ack.SetBody([]byte(body))
	}
	if err := dlg.WriteAck(ctx, ack); err != nil {
		t.Fatal(err)
	}
}

// TestDelayedOfferInitialInvite: the caller's INVITE has no SDP (or only a
// stray CRLF); the terminal's INVITE has none either, its 200 carries the
// offer, which reaches the caller rewritten as an offer, and the caller's
// answer in its ACK reaches the terminal in the B2BUA's ACK. Media then
// flows both ways, through the proxy when anchored.
func TestDelayedOfferInitialInvite(t *testing.T) {
	for _, mode := range mediaModes {
		for _, body := range []string{"", "\r\n"} {
			t.Run(fmt.Sprintf("%s/body=%q", mode.name, body), func(t *testing.T) {
				e, caller, term := delayedEnv(t, mode.anchored)
				callerM, termM := newMediaSock(t), newMediaSock(t)
				invites := make(chan *sipmsg.Request, 1)
				term.setInvite(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
					invites <- req
					dlg, err := term.ds.ReadInvite(req, tx)
					if err == nil {
						_ = dlg.RespondSDP([]byte(termM.sdp()))
					}
				})
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				// The CRLF body goes without Content-Type, as some PBXs send it.
				dlg, err := caller.dc.Invite(ctx, e.uri("bob"), []byte(body))
				if err != nil {
					t.Fatal(err)
				}
				if err := dlg.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
					t.Fatalf("call: %v", err)
				}
				inv := <-invites
				if cl := inv.ContentLength(); len(inv.Body()) != 0 || (cl != nil && *cl != 0) || inv.GetHeader("Content-Type") != nil {
					t.Errorf("terminal's INVITE has a body or its headers:\n%s", inv)
				}
				offer := dlg.InviteResponse.Body()
				if ct := dlg.InviteResponse.GetHeader("Content-Type"); ct == nil || ct.Value() != "application/sdp" {
					t.Errorf("200 to the caller: Content-Type %v", ct)
				}
				checkSDP(t, "caller (offer in 200)", offer, mode.anchored, termM)
				if len(term.requestsOf(inv.CallID().Value(), sipmsg.ACK)) != 0 {
					t.Errorf("terminal ACKed before the caller answered")
				}
				ackWith(ctx, t, dlg, callerM.sdp())
				ack := term.wireAck(inv.CallID().Value(), inv.CSeq().SeqNo)
				if ct := ack.GetHeader("Content-Type"); ct == nil || ct.Value() != "application/sdp" {
					t.Errorf("terminal's ACK: Content-Type %v", ct)
				}
				checkSDP(t, "terminal (answer in ACK)", ack.Body(), mode.anchored, callerM)
				checkFlows(t, mode.anchored, callerM, termM, sdpAddr(t, offer), sdpAddr(t, ack.Body()))
				if err := dlg.Bye(ctx); err != nil {
					t.Fatal(err)
				}
				term.waitRequest(sipmsg.BYE, 2*time.Second)
				waitIdle(t, e)
			})
		}
	}
}

// requestsOf lists the requests of method on Call-ID callID p received.
func (p *peer) requestsOf(callID string, method sipmsg.RequestMethod) []*sipmsg.Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*sipmsg.Request
	for _, m := range p.wire {
		if r, ok := m.(*sipmsg.Request); ok && r.Method == method && r.CallID().Value() == callID {
			out = append(out, r)
		}
	}
	return out
}

// TestDelayedOfferReinvite: once the call is up, the caller sends a
// re-INVITE without SDP; the terminal's 200 offers a new media address,
// which reaches the caller as an offer; the caller answers in its ACK from
// a new address too, and the terminal's ACK carries that answer. Media
// flows both ways between the new addresses.
func TestDelayedOfferReinvite(t *testing.T) {
	for _, mode := range mediaModes {
		t.Run(mode.name, func(t *testing.T) {
			e, caller, term := delayedEnv(t, mode.anchored)
			callerM, termM := newMediaSock(t), newMediaSock(t)
			callerM2, termM2 := newMediaSock(t), newMediaSock(t)
			reinvites := make(chan *sipmsg.Request, 1)
			term.setInvite(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
				if tag, _ := req.To().Params.Get("tag"); tag != "" {
					reinvites <- req
					res := sipmsg.NewResponseFromRequest(req, 200, "OK", []byte(termM2.sdp()))
					res.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
					res.AppendHeader(&term.contact)
					_ = tx.Respond(res)
					return
				}
				dlg, err := term.ds.ReadInvite(req, tx)
				if err == nil {
					_ = dlg.RespondSDP([]byte(termM.sdp()))
				}
			})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			dlg, err := caller.dc.Invite(ctx, e.uri("bob"), []byte(callerM.sdp()), sipmsg.NewHeader("Content-Type", "application/sdp"))
			if err != nil {
				t.Fatal(err)
			}
			if err := dlg.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
				t.Fatal(err)
			}
			if err := dlg.Ack(ctx); err != nil {
				t.Fatal(err)
			}
			inv := term.waitRequest(sipmsg.INVITE, time.Second)
			checkFlows(t, mode.anchored, callerM, termM, sdpAddr(t, dlg.InviteResponse.Body()), sdpAddr(t, inv.Body()))

			re := sipmsg.NewRequest(sipmsg.INVITE, dlg.InviteResponse.Contact().Address)
			re.SetBody(nil)
			res, err := dlg.Do(ctx, re)
			if err != nil || res.StatusCode != 200 {
				t.Fatalf("re-INVITE: %v %v", res, err)
			}
			got := <-reinvites
			if len(got.Body()) != 0 || got.GetHeader("Content-Type") != nil {
				t.Errorf("terminal's re-INVITE has a body or its headers:\n%s", got)
			}
			checkSDP(t, "caller (offer in re-INVITE 200)", res.Body(), mode.anchored, termM2)
			ackWith(ctx, t, dlg, callerM2.sdp())
			ack := term.wireAck(got.CallID().Value(), got.CSeq().SeqNo)
			checkSDP(t, "terminal (answer in re-INVITE ACK)", ack.Body(), mode.anchored, callerM2)
			checkFlows(t, mode.anchored, callerM2, termM2, sdpAddr(t, res.Body()), sdpAddr(t, ack.Body()))
			if err := dlg.Bye(ctx); err != nil {
				t.Fatal(err)
			}
			waitIdle(t, e)
		})
	}
}

// TestDelayedOfferAckWithoutAnswer: a caller that ACKs the offer in the
// 200 without an answer leaves the offer unanswered; the terminal's 2xx is
// still ACKed, then both legs get BYE (RFC 3261 §13.2.2.4).
func TestDelayedOfferAckWithoutAnswer(t *testing.T) {
	e, caller, term := delayedEnv(t, true)
	termM := newMediaSock(t)
	term.setInvite(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		dlg, err := term.ds.ReadInvite(req, tx)
		if err == nil {
			_ = dlg.RespondSDP([]byte(termM.sdp()))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dlg, err := caller.dc.Invite(ctx, e.uri("bob"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := dlg.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		t.Fatal(err)
	}
	ackWith(ctx, t, dlg, "")
	inv := term.waitRequest(sipmsg.INVITE, time.Second)
	term.wireAck(inv.CallID().Value(), inv.CSeq().SeqNo)
	bye := term.waitRequest(sipmsg.BYE, 2*time.Second)
	if r := bye.GetHeader("Reason"); r == nil || !strings.Contains(r.Value(), "cause=127") {
		t.Errorf("BYE to the terminal: Reason %v", r)
	}
	caller.waitRequest(sipmsg.BYE, 2*time.Second)
	waitIdle(t, e)
}
