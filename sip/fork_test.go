package sip_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	b2b "github.com/imcall/b2bua/sip"
)

// withTargets routes every call to the given UDP addresses at once.
func withTargets(addrs ...string) envOpt {
	return func(c *b2bConfig) {
		c.Route = func(_ context.Context, imID string) ([]b2b.Target, error) {
			var ts []b2b.Target
			for _, a := range addrs {
				ts = append(ts, b2b.Target{
					URI:       sipmsg.Uri{Scheme: "sip", User: imID, Host: "127.0.0.1", Port: netipPort(a)},
					Dest:      a,
					Transport: "UDP",
				})
			}
			return ts, nil
		}
	}
}

type callResult struct {
	dlg *sipgo.DialogClientSession
	res *sipmsg.Response
	err error
}

func inviteAsync(ctx context.Context, p *peer, uri sipmsg.Uri) <-chan callResult {
	out := make(chan callResult, 1)
	go func() {
		dlg, res, err := p.invite(ctx, uri, sipgo.AnswerOptions{})
		out <- callResult{dlg, res, err}
	}()
	return out
}

// A session of three legs: the caller's, and two forked towards two
// terminals. The one that answers takes the call; the other, ringing, is
// CANCELed with its INVITE's branch and CSeq, and its 487 is ACKed.
func TestForkFirstAnswerWinsLoserCancelled(t *testing.T) {
	caller := newPeer(t, "alice")
	winner := newPeer(t, "term1")
	loser := newRawPeer(t)
	e := newEnv(t, withTargets(winner.addr, loser.addr))
	e.addUser("bob")
	winner.setInvite(answerer(winner, 300*time.Millisecond, nil))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := inviteAsync(ctx, caller, e.uri("bob"))

	inv := loser.next(sipmsg.INVITE, 5*time.Second)
	loser.respond(inv, 180, "Ringing")
	can := loser.next(sipmsg.CANCEL, 5*time.Second)
	gb, _ := can.req.Via().Params.Get("branch")
	wb, _ := inv.req.Via().Params.Get("branch")
	if gb != wb || can.req.CSeq().SeqNo != inv.req.CSeq().SeqNo || can.req.CallID().Value() != inv.req.CallID().Value() {
		t.Errorf("CANCEL does not match the INVITE (RFC 3261 §9.1):\n%s", headersOnly(can.req))
	}
	loser.respond(can, 200, "OK")
	loser.respond(inv, 487, "Request Terminated")
	ack := loser.next(sipmsg.ACK, 3*time.Second)
	if ack.req.CSeq().SeqNo != inv.req.CSeq().SeqNo {
		t.Errorf("487 ACK CSeq %d, want %d", ack.req.CSeq().SeqNo, inv.req.CSeq().SeqNo)
	}

	r := <-done
	if r.err != nil || r.res.StatusCode != 200 {
		t.Fatalf("call: %v (response %v)", r.err, r.res)
	}
	if !strings.Contains(string(r.res.Body()), "40002") {
		t.Errorf("the caller did not get the winner's answer: %q", r.res.Body())
	}
	wInv := winner.waitRequest(sipmsg.INVITE, time.Second)
	if wInv.CallID().Value() == inv.req.CallID().Value() {
		t.Errorf("both branches share a Call-ID")
	}
	if err := r.dlg.Bye(ctx); err != nil {
		t.Fatalf("caller BYE: %v", err)
	}
	bye := winner.waitRequest(sipmsg.BYE, 2*time.Second)
	if bye.CallID().Value() != wInv.CallID().Value() {
		t.Errorf("BYE on the wrong dialog")
	}
	waitIdle(t, e)
	if n := loser.count(sipmsg.BYE); n != 0 {
		t.Errorf("the cancelled branch got %d BYEs", n)
	}
	recs, err := e.store.Calls(ctx, 10)
	if err != nil || len(recs) != 1 {
		t.Fatalf("call records: %v %v", recs, err)
	}
	if rec := recs[0]; rec.AnsweredAt.IsZero() || rec.EndCause != "caller BYE" {
		t.Errorf("call record %+v", rec)
	}
}

// When every branch fails, the caller gets the best of their answers (RFC
// 3261 §16.7 step 6): a 6xx, else the lowest class.
func TestForkAllBranchesFail(t *testing.T) {
	cases := []struct {
		name  string
		codes [2]int
		want  int
	}{
		{"busy beats server error", [2]int{503, 486}, 486},
		{"decline beats busy", [2]int{486, 603}, 603},
		{"first of a class", [2]int{480, 486}, 480},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			caller := newPeer(t, "alice")
			t1, t2 := newRawPeer(t), newRawPeer(t)
			e := newEnv(t, withTargets(t1.addr, t2.addr))
			e.addUser("bob")
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			done := inviteAsync(ctx, caller, e.uri("bob"))
			i1 := t1.next(sipmsg.INVITE, 5*time.Second)
			i2 := t2.next(sipmsg.INVITE, 5*time.Second)
			t1.respond(i1, tc.codes[0], "First")
			t1.next(sipmsg.ACK, 3*time.Second)
			t2.respond(i2, tc.codes[1], "Second")
			t2.next(sipmsg.ACK, 3*time.Second)
			r := <-done
			var de *sipgo.ErrDialogResponse
			if r.err == nil || !errors.As(r.err, &de) || r.res == nil || r.res.StatusCode != tc.want {
				t.Fatalf("caller got %v (%v), want %d", r.res, r.err, tc.want)
			}
			waitIdle(t, e)
		})
	}
}

// respondDialog answers r with code as one dialog of a forking proxy: its
// own To tag and Contact, and SDP in a 2xx.
func (p *rawPeer) respondDialog(r rawReq, code int, tag string) *sipmsg.Response {
	p.t.Helper()
	var body []byte
	if code >= 200 && code < 300 {
		body = []byte(strings.ReplaceAll(testSDP, "40000", "40002"))
	}
	res := sipmsg.NewResponseFromRequest(r.req, code, "OK", body)
	res.To().Params.Add("tag", tag)
	res.AppendHeader(&sipmsg.ContactHeader{Address: sipmsg.Uri{Scheme: "sip", User: tag, Host: "127.0.0.1", Port: netipPort(p.addr)}})
	if body != nil {
		res.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
	}
	p.send(res, r.src)
	return res
}

// nextOn waits for a request of method on the dialog with To tag tag.
func (p *rawPeer) nextOn(method sipmsg.RequestMethod, tag string, d time.Duration) rawReq {
	p.t.Helper()
	deadline := time.Now().Add(d)
	for {
		r := p.next(method, time.Until(deadline))
		if got, _ := r.req.To().Params.Get("tag"); got == tag {
			return r
		}
	}
}

// A forking proxy downstream lets two callees answer our one INVITE: the
// first 2xx takes the call, the second (another To tag) is ACKed and then
// ended with BYE (RFC 3261 §13.2.2.4), never taken for a retransmission of
// the first. A retransmission of the second 2xx is ACKed again, without a
// second BYE.
func TestLate2xxOfAnotherDialogIsAckedAndByed(t *testing.T) {
	caller := newPeer(t, "alice")
	proxy := newRawPeer(t)
	e := newEnv(t, withTargets(proxy.addr))
	e.addUser("bob")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := inviteAsync(ctx, caller, e.uri("bob"))

	inv := proxy.next(sipmsg.INVITE, 5*time.Second)
	proxy.respondDialog(inv, 200, "first")
	proxy.nextOn(sipmsg.ACK, "first", 3*time.Second)
	r := <-done
	if r.err != nil || r.res.StatusCode != 200 {
		t.Fatalf("call: %v (response %v)", r.err, r.res)
	}

	second := proxy.respondDialog(inv, 200, "second")
	ack := proxy.nextOn(sipmsg.ACK, "second", 3*time.Second)
	if ack.req.CSeq().SeqNo != inv.req.CSeq().SeqNo || ack.req.Recipient.User != "second" {
		t.Errorf("ACK of the second 2xx: CSeq %d to %s, want CSeq %d to its Contact", ack.req.CSeq().SeqNo, ack.req.Recipient.String(), inv.req.CSeq().SeqNo)
	}
	bye := proxy.nextOn(sipmsg.BYE, "second", 3*time.Second)
	if bye.req.CSeq().SeqNo <= inv.req.CSeq().SeqNo {
		t.Errorf("BYE CSeq %d not above the INVITE's %d", bye.req.CSeq().SeqNo, inv.req.CSeq().SeqNo)
	}
	proxy.respond(bye, 200, "OK")
	proxy.send(second, inv.src)
	proxy.nextOn(sipmsg.ACK, "second", 3*time.Second)

	// The call goes on, on the first dialog.
	if e.srv.ActiveCalls() != 1 {
		t.Fatalf("%d calls up, want the one", e.srv.ActiveCalls())
	}
	if err := r.dlg.Bye(ctx); err != nil {
		t.Fatalf("caller BYE: %v", err)
	}
	b := proxy.nextOn(sipmsg.BYE, "first", 3*time.Second)
	proxy.respond(b, 200, "OK")
	waitIdle(t, e)
	byes := 0
	proxy.mu.Lock()
	for _, q := range proxy.seen {
		if tag, _ := q.To().Params.Get("tag"); q.Method == sipmsg.BYE && tag == "second" {
			byes++
		}
	}
	proxy.mu.Unlock()
	if byes != 1 {
		t.Errorf("%d BYEs on the second dialog, want 1", byes)
	}
}

// A branch whose INVITE cannot even be sent fails alone: the other branch
// still rings and takes the call.
func TestForkBranchFailingAtOnce(t *testing.T) {
	caller := newPeer(t, "alice")
	term := newPeer(t, "term")
	term.setInvite(answerer(term, 0, nil))
	e := newEnv(t, func(c *b2bConfig) {
		c.Route = func(_ context.Context, imID string) ([]b2b.Target, error) {
			return []b2b.Target{
				{URI: sipmsg.Uri{Scheme: "sip", User: imID, Host: "127.0.0.1", Port: 9}, Dest: "127.0.0.1:9", Transport: "SCTP"},
				{URI: sipmsg.Uri{Scheme: "sip", User: imID, Host: "127.0.0.1", Port: netipPort(term.addr)}, Dest: term.addr, Transport: "UDP"},
			}, nil
		}
	})
	e.addUser("bob")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dlg, res, err := caller.invite(ctx, e.uri("bob"), sipgo.AnswerOptions{})
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("call: %v (response %v)", err, res)
	}
	if err := dlg.Bye(ctx); err != nil {
		t.Fatalf("caller BYE: %v", err)
	}
	term.waitRequest(sipmsg.BYE, 2*time.Second)
	waitIdle(t, e)
}
