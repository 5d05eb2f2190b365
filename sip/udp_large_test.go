package sip_test

import (
	"fmt"
	"net"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/scp"
)

// proxyVias are the Via header lines of a request that came through
// twelve proxies: every response copies them (RFC 3261 §8.2.6.2), which
// takes each answer to it over 1300 bytes.
func proxyVias() []string {
	var vias []string
	for i := range 12 {
		vias = append(vias, fmt.Sprintf("Via: SIP/2.0/UDP proxy%02d.carrier.example:5060;branch=z9hG4bK-hop%02d-0123456789abcdef;received=192.0.2.%d", i, i, 10+i))
	}
	return vias
}

// inDialog builds an ACK or BYE from the caller in the dialog that res, a
// 2xx to inv, set up (RFC 3261 §12.2.1.1), with the proxies' Vias again.
func inDialog(t *testing.T, caller *rawPeer, inv *sipmsg.Request, res *sipmsg.Response, method sipmsg.RequestMethod, seq uint32) *sipmsg.Request {
	t.Helper()
	req := sipmsg.NewRequest(method, *res.Contact().Address.Clone())
	via := sipmsg.HeaderClone(inv.Via()).(*sipmsg.ViaHeader)
	via.Params.Add("branch", sipmsg.GenerateBranch())
	req.AppendHeader(via)
	for _, v := range proxyVias() {
		h, err := sipmsg.ParseMessage([]byte("OPTIONS sip:x SIP/2.0\r\n" + v + "\r\n\r\n"))
		if err != nil {
			t.Fatal(err)
		}
		req.AppendHeader(h.(*sipmsg.Request).Via())
	}
	req.AppendHeader(sipmsg.HeaderClone(inv.From()))
	req.AppendHeader(sipmsg.HeaderClone(res.To()))
	req.AppendHeader(sipmsg.HeaderClone(inv.CallID()))
	req.AppendHeader(&sipmsg.CSeqHeader{SeqNo: seq, MethodName: method})
	mf := sipmsg.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	req.SetBody(nil)
	return req
}

// TestLargeUDPAnswers: the answers to a request that came over UDP through
// a dozen proxies are over 1300 bytes; they go back over UDP all the same,
// whoever sends them: the call (180, 200, the 200 to a BYE), and the
// transaction layer (the 200 to CANCEL and the 487). RFC 3261 §18.1.1
// bounds requests, not responses; §18.2.2 sends a response back over the
// transport its request came on.
func TestLargeUDPAnswers(t *testing.T) {
	short := func(c *b2bConfig) {
		c.AckTimeout = 2 * time.Second
		c.TxTimeout = 2 * time.Second
	}
	large := func(t *testing.T, res *sipmsg.Response, want int, method sipmsg.RequestMethod) {
		t.Helper()
		if res.StatusCode != want || res.CSeq().MethodName != method {
			t.Fatalf("got %d to %s, want %d to %s", res.StatusCode, res.CSeq().MethodName, want, method)
		}
		if n := len(res.String()); n <= 1300 {
			t.Fatalf("the %d is %d bytes: the test needs one over 1300", want, n)
		}
		if got := len(res.GetHeaders("Via")); got != 13 {
			t.Errorf("the %d carries %d Vias, want 13", want, got)
		}
	}
	// next is the next response to method with a status of at least min.
	next := func(p *rawPeer, min int, method sipmsg.RequestMethod) *sipmsg.Response {
		t.Helper()
		for {
			res := p.nextResponse(min, 5*time.Second)
			if res.CSeq().MethodName == method {
				return res
			}
		}
	}
	tests := []struct {
		name  string
		drive func(t *testing.T, dst string, caller, term *rawPeer)
	}{
		{"answered, then BYE", func(t *testing.T, dst string, caller, term *rawPeer) {
			inv := caller.invite(dst, "bob", "im.test", proxyVias()...)
			tinv := term.next(sipmsg.INVITE, 5*time.Second)
			term.respond(tinv, 180, "Ringing")
			large(t, next(caller, 180, sipmsg.INVITE), 180, sipmsg.INVITE)
			term.respond(tinv, 200, "OK")
			ok := next(caller, 200, sipmsg.INVITE)
			large(t, ok, 200, sipmsg.INVITE)
			to, _ := net.ResolveUDPAddr("udp", dst)
			caller.send(inDialog(t, caller, inv, ok, sipmsg.ACK, inv.CSeq().SeqNo), to)
			term.next(sipmsg.ACK, 5*time.Second)
			caller.send(inDialog(t, caller, inv, ok, sipmsg.BYE, inv.CSeq().SeqNo+1), to)
			bye := term.next(sipmsg.BYE, 5*time.Second)
			term.respond(bye, 200, "OK")
			large(t, next(caller, 200, sipmsg.BYE), 200, sipmsg.BYE)
		}},
		{"CANCELed while ringing", func(t *testing.T, dst string, caller, term *rawPeer) {
			inv := caller.invite(dst, "bob", "im.test", proxyVias()...)
			tinv := term.next(sipmsg.INVITE, 5*time.Second)
			term.respond(tinv, 180, "Ringing")
			large(t, next(caller, 180, sipmsg.INVITE), 180, sipmsg.INVITE)
			// A CANCEL forwarded by the same proxies has their Vias too.
			req := sipmsg.NewRequest(sipmsg.CANCEL, *inv.Recipient.Clone())
			sipmsg.CopyHeaders("Via", inv, req)
			req.AppendHeader(sipmsg.HeaderClone(inv.From()))
			req.AppendHeader(sipmsg.HeaderClone(inv.To()))
			req.AppendHeader(sipmsg.HeaderClone(inv.CallID()))
			req.AppendHeader(&sipmsg.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sipmsg.CANCEL})
			mf := sipmsg.MaxForwardsHeader(70)
			req.AppendHeader(&mf)
			req.SetBody(nil)
			to, _ := net.ResolveUDPAddr("udp", dst)
			caller.send(req, to)
			large(t, next(caller, 200, sipmsg.CANCEL), 200, sipmsg.CANCEL)
			large(t, next(caller, 300, sipmsg.INVITE), 487, sipmsg.INVITE)
			can := term.next(sipmsg.CANCEL, 5*time.Second)
			term.respond(can, 200, "OK")
			term.respond(tinv, 487, "Request Terminated")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, short)
			caller, term := newRawPeer(t), newRawPeer(t)
			e.addUser("bob")
			e.addLegacy("bob", "001010000000001", term.addr, scp.Online)
			tt.drive(t, e.addr, caller, term)
			waitIdle(t, e)
		})
	}
}
