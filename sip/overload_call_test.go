package sip_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/scp"
	b2b "github.com/imcall/b2bua/sip"
)

// TestOverloadRefusesNewCallsEarly: with one call up and MaxCalls 1, a new
// INVITE gets 503 with Retry-After, a To tag and a Q.850 Reason, from the
// SIP port, without becoming a call or reaching the terminal; its ACK ends
// there. The call in progress goes on (its BYE is taken), and once it has
// ended a new call is taken again.
func TestOverloadRefusesNewCallsEarly(t *testing.T) {
	e := newEnv(t, func(c *b2bConfig) { c.Overload = b2b.Overload{MaxCalls: 1, RetryAfter: 7 * time.Second} })
	caller := newPeer(t, "alice")
	term := newPeer(t, "term")
	e.addUser("bob")
	e.addLegacy("bob", "001010000000001", term.addr, scp.Online)
	term.setInvite(answerer(term, 0, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dlg, _, err := caller.invite(ctx, e.uri("bob"), sipgo.AnswerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	<-term.requests // the first call's INVITE

	raw := newRawPeer(t)
	inv := raw.invite(e.addr, "bob", "im.test")
	res := raw.nextResponse(200, 5*time.Second)
	tag, _ := res.To().Params.Get("tag")
	ra := res.GetHeader("Retry-After")
	reason := res.GetHeader("Reason")
	if res.StatusCode != 503 || tag == "" || ra == nil || ra.Value() != "7" || reason == nil || !strings.Contains(reason.Value(), "cause=42") {
		t.Fatalf("got %q, want 503 with a To tag, Retry-After: 7 and Q.850 cause 42", res.String())
	}
	if res.CallID().Value() != inv.CallID().Value() || res.CSeq().SeqNo != inv.CSeq().SeqNo || res.Via().Params.String() != inv.Via().Params.String() {
		t.Fatalf("503 does not echo the INVITE's transaction: %q", res.String())
	}
	if got := e.srv.OverloadStats().Refused; got != 1 {
		t.Fatalf("refused %d, want 1", got)
	}
	ack := sipmsg.NewRequest(sipmsg.ACK, *inv.Recipient.Clone())
	ack.AppendHeader(sipmsg.HeaderClone(inv.Via()))
	ack.AppendHeader(sipmsg.HeaderClone(inv.From()))
	ack.AppendHeader(sipmsg.HeaderClone(res.To()))
	ack.AppendHeader(sipmsg.HeaderClone(inv.CallID()))
	ack.AppendHeader(&sipmsg.CSeqHeader{SeqNo: 1, MethodName: sipmsg.ACK})
	ack.SetBody(nil)
	dst, _ := net.ResolveUDPAddr("udp", e.addr)
	raw.send(ack, dst)
	select {
	case r := <-raw.resps:
		t.Fatalf("the ACK of the refusal was answered: %d", r.StatusCode)
	case <-time.After(300 * time.Millisecond):
	}
	if n := e.srv.ActiveCalls(); n != 1 {
		t.Fatalf("%d calls up, want the first only", n)
	}
	select {
	case r := <-term.requests:
		t.Fatalf("the refused call reached the terminal: %s", r.StartLine())
	default:
	}

	if err := dlg.Bye(ctx); err != nil {
		t.Fatalf("BYE of the call in progress: %v", err)
	}
	waitIdle(t, e)
	again, _, err := caller.invite(ctx, e.uri("bob"), sipgo.AnswerOptions{})
	if err != nil {
		t.Fatalf("a call after the overload ended: %v", err)
	}
	if err := again.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, e)
}
