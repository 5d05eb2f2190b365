package sip_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/scp"
)

func TestBasicCallHidesTopologyAndEndsOnCallerBye(t *testing.T) {
	e := newEnv(t)
	caller := newPeer(t, "alice")
	term := newPeer(t, "term")
	e.addUser("bob")
	e.addLegacy("bob", "001010000000001", term.addr, scp.Online)
	sess := make(chan *sipgo.DialogServerSession, 1)
	term.setInvite(answerer(term, 0, sess))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dlg, res, err := caller.invite(ctx, e.uri("bob"), sipgo.AnswerOptions{})
	if err != nil {
		t.Fatalf("call: %v (response %v)", err, res)
	}
	if res.StatusCode != 200 {
		t.Fatalf("final answer %d, want 200", res.StatusCode)
	}
	if !strings.Contains(string(res.Body()), "40002") {
		t.Errorf("answer SDP not passed through: %q", res.Body())
	}

	// What the terminal saw: nothing of the caller's signalling.
	inv := term.waitRequest(sipmsg.INVITE, time.Second)
	aCallID := dlg.InviteRequest.CallID().Value()
	aFromTag, _ := dlg.InviteRequest.From().Params.Get("tag")
	if inv.CallID().Value() == aCallID {
		t.Errorf("terminal got the caller's Call-ID")
	}
	if tag, _ := inv.From().Params.Get("tag"); tag == aFromTag {
		t.Errorf("terminal got the caller's From tag")
	}
	if n := len(inv.GetHeaders("Via")); n != 1 {
		t.Errorf("terminal INVITE has %d Via headers, want 1 (ours)", n)
	}
	if v := inv.Via(); v.Port == netipPort(caller.addr) {
		t.Errorf("Via points at the caller: %s", v.Value())
	}
	if c := inv.Contact(); c.Address.Port != netipPort(e.addr) {
		t.Errorf("terminal INVITE Contact %s is not the B2BUA", c.Address.String())
	}
	hdrText := headersOnly(inv)
	for _, leak := range []string{aCallID, caller.addr, "alice@127.0.0.1"} {
		if strings.Contains(hdrText, leak) {
			t.Errorf("terminal INVITE headers leak %q:\n%s", leak, hdrText)
		}
	}
	if inv.From().Address.Host != "im.test" || inv.To().Address.String() != "sip:bob@im.test" {
		t.Errorf("From/To towards terminal: %s / %s", inv.From().Value(), inv.To().Value())
	}
	if mf := inv.MaxForwards(); mf == nil || mf.Val() != 69 {
		t.Errorf("Max-Forwards towards terminal = %v, want 69", mf)
	}
	// What the caller saw: nothing of the terminal's.
	resText := headersOnly(res)
	for _, leak := range []string{inv.CallID().Value(), term.addr} {
		if strings.Contains(resText, leak) {
			t.Errorf("200 to caller leaks %q:\n%s", leak, resText)
		}
	}
	if c := res.Contact(); c == nil || c.Address.Port != netipPort(e.addr) {
		t.Errorf("200 Contact is not the B2BUA: %v", res.Contact())
	}

	if err := dlg.Bye(ctx); err != nil {
		t.Fatalf("caller BYE: %v", err)
	}
	bye := term.waitRequest(sipmsg.BYE, 2*time.Second)
	if bye.CallID().Value() != inv.CallID().Value() {
		t.Errorf("BYE on the wrong dialog")
	}
	waitIdle(t, e)
	recs, err := e.store.Calls(ctx, 10)
	if err != nil || len(recs) != 1 {
		t.Fatalf("call records: %v %v", recs, err)
	}
	r := recs[0]
	if r.Callee != "bob" || r.AnsweredAt.IsZero() || r.EndedAt.IsZero() || r.EndCause != "caller BYE" || !strings.HasPrefix(r.SCPOutcome, "online") || r.TerminalID == 0 {
		t.Errorf("call record %+v", r)
	}
}

func TestCalleeByeEndsCaller(t *testing.T) {
	e := newEnv(t)
	caller := newPeer(t, "alice")
	term := newPeer(t, "term")
	e.addUser("bob")
	e.addLegacy("bob", "001010000000001", term.addr, scp.Online)
	sess := make(chan *sipgo.DialogServerSession, 1)
	term.setInvite(answerer(term, 0, sess))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dlg, _, err := caller.invite(ctx, e.uri("bob"), sipgo.AnswerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tdlg := <-sess
	// The terminal's session confirms once our ACK reached it.
	waitFor(t, func() bool { return tdlg.LoadState() == sipmsg.DialogStateConfirmed })
	if err := tdlg.Bye(ctx); err != nil {
		t.Fatalf("terminal BYE: %v", err)
	}
	caller.waitRequest(sipmsg.BYE, 2*time.Second)
	waitFor(t, func() bool { return dlg.LoadState() == sipmsg.DialogStateEnded })
	waitIdle(t, e)
	recs, _ := e.store.Calls(ctx, 1)
	if len(recs) != 1 || recs[0].EndCause != "callee BYE" {
		t.Errorf("record %+v", recs)
	}
}

// TestRingingBeforeOK checks the relay order under sipgo's per-message
// goroutines: the terminal sends 180 and 200 back to back, 100 times, and
// the caller must see 180 before 200 every time (sipgo issue #306).
func TestRingingBeforeOK(t *testing.T) {
	e := newEnv(t)
	caller := newPeer(t, "alice")
	term := newPeer(t, "term")
	e.addUser("bob")
	e.addLegacy("bob", "001010000000001", term.addr, scp.Online)
	term.setInvite(answerer(term, 0, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := 0; i < 100; i++ {
		start := time.Now()
		dlg, _, err := caller.invite(ctx, e.uri("bob"), sipgo.AnswerOptions{})
		if err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		// The recorder runs after sipgo's own handler on the read loop:
		// wait until it has logged the 200 the dialog already has.
		var got []int
		waitFor(t, func() bool {
			got = caller.wireResponses(dlg.InviteRequest.CallID().Value())
			return indexOf(got, 200) >= 0
		})
		i180, i200 := indexOf(got, 180), indexOf(got, 200)
		if i180 < 0 || i200 < 0 || i180 > i200 {
			t.Fatalf("run %d: caller saw %v after %v, want 180 before 200; final %s", i, got, time.Since(start), dlg.InviteResponse.StartLine())
		}
		if err := dlg.Bye(ctx); err != nil {
			t.Fatalf("run %d: BYE: %v", i, err)
		}
	}
	waitIdle(t, e)
}

func TestCallerCancelWhileRinging(t *testing.T) {
	e := newEnv(t)
	caller := newPeer(t, "alice")
	term := newPeer(t, "term")
	e.addUser("bob")
	e.addLegacy("bob", "001010000000001", term.addr, scp.Online)
	termCancelled := make(chan *sipmsg.Request, 1)
	term.setInvite(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		// sipgo answers the CANCEL with 200 and this INVITE with 487.
		tx.OnCancel(func(r *sipmsg.Request) { termCancelled <- r })
		res := sipmsg.NewResponseFromRequest(req, 180, "Ringing", nil)
		tx.Respond(res)
		<-tx.Done()
	})
	ctx, cancel := context.WithCancel(context.Background())
	dlgCh := make(chan error, 1)
	var res *sipmsg.Response
	go func() {
		_, r, err := caller.invite(ctx, e.uri("bob"), sipgo.AnswerOptions{
			OnResponse: func(r *sipmsg.Response) error {
				if r.StatusCode == 180 {
					cancel()
				}
				return nil
			},
		})
		res = r
		dlgCh <- err
	}()
	select {
	case err := <-dlgCh:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("invite ended with %v, want cancelled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("caller's CANCEL did not end the call")
	}
	if res == nil || res.StatusCode != 487 {
		t.Errorf("caller's final answer %v, want 487", res)
	}
	select {
	case <-termCancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("terminal's INVITE not cancelled")
	}
	waitIdle(t, e)
	recs, _ := e.store.Calls(context.Background(), 1)
	if len(recs) != 1 || recs[0].EndCause != "caller CANCEL" {
		t.Errorf("record %+v", recs)
	}
}

func TestReinviteHoldRelayed(t *testing.T) {
	e := newEnv(t)
	caller := newPeer(t, "alice")
	term := newPeer(t, "term")
	e.addUser("bob")
	e.addLegacy("bob", "001010000000001", term.addr, scp.Online)
	term.setInvite(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		if tag, _ := req.To().Params.Get("tag"); tag != "" {
			// The re-INVITE: answer hold with recvonly.
			body := strings.ReplaceAll(string(req.Body()), "sendonly", "recvonly")
			res := sipmsg.NewResponseFromRequest(req, 200, "OK", []byte(body))
			res.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
			res.AppendHeader(&term.contact)
			tx.Respond(res)
			return
		}
		answerer(term, 0, nil)(req, tx)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dlg, _, err := caller.invite(ctx, e.uri("bob"), sipgo.AnswerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	term.waitRequest(sipmsg.INVITE, time.Second)
	hold := sipmsg.NewRequest(sipmsg.INVITE, dlg.InviteResponse.Contact().Address)
	hold.SetBody([]byte(testSDP + "a=sendonly\r\n"))
	hold.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
	res, err := dlg.Do(ctx, hold)
	if err != nil {
		t.Fatalf("re-INVITE: %v", err)
	}
	if res.StatusCode != 200 || !strings.Contains(string(res.Body()), "a=recvonly") {
		t.Fatalf("re-INVITE answer %d %q", res.StatusCode, res.Body())
	}
	got := term.waitRequest(sipmsg.INVITE, time.Second)
	if !strings.Contains(string(got.Body()), "a=sendonly") {
		t.Errorf("terminal's re-INVITE body %q", got.Body())
	}
	ack := sipmsg.NewRequest(sipmsg.ACK, dlg.InviteResponse.Contact().Address)
	ack.AppendHeader(sipmsg.HeaderClone(res.CSeq()))
	ack.CSeq().MethodName = sipmsg.ACK
	if err := dlg.WriteRequest(ack); err != nil {
		t.Fatal(err)
	}
	// In-dialog INFO and OPTIONS pass through too.
	for _, m := range []sipmsg.RequestMethod{sipmsg.INFO, sipmsg.OPTIONS} {
		req := sipmsg.NewRequest(m, dlg.InviteResponse.Contact().Address)
		res, err := dlg.Do(ctx, req)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("%s: %v %v", m, res, err)
		}
		term.waitRequest(m, time.Second)
	}
	if err := dlg.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, e)
}

func TestUnackedAnswerEndsBothLegs(t *testing.T) {
	e := newEnv(t, func(c *b2bConfig) { c.AckTimeout = 300 * time.Millisecond })
	caller := newPeer(t, "alice")
	term := newPeer(t, "term")
	e.addUser("bob")
	e.addLegacy("bob", "001010000000001", term.addr, scp.Online)
	term.setInvite(answerer(term, 0, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dlg, err := caller.dc.Invite(ctx, e.uri("bob"), []byte(testSDP), sipmsg.NewHeader("Content-Type", "application/sdp"))
	if err != nil {
		t.Fatal(err)
	}
	if err := dlg.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		t.Fatal(err)
	}
	// No ACK: the B2BUA gives up and ends both legs.
	term.waitRequest(sipmsg.BYE, 5*time.Second)
	caller.waitRequest(sipmsg.BYE, 5*time.Second)
	waitIdle(t, e)
	recs, _ := e.store.Calls(ctx, 1)
	if len(recs) != 1 || recs[0].EndCause != "ACK timeout" {
		t.Errorf("record %+v", recs)
	}
}

func indexOf(xs []int, v int) int {
	for i, x := range xs {
		if x == v {
			return i
		}
	}
	return -1
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitIdle waits until no call is live and every call record is stored.
func waitIdle(t *testing.T, e *env) {
	t.Helper()
	waitFor(t, func() bool { return e.srv.ActiveCalls() == 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.srv.FlushRecords(ctx); err != nil {
		t.Fatalf("call records not flushed: %v", err)
	}
}

func headersOnly(m sipmsg.Message) string {
	s := m.String()
	if i := strings.Index(s, "\r\n\r\n"); i >= 0 {
		return s[:i]
	}
	return s
}

func netipPort(addr string) int {
	i := strings.LastIndex(addr, ":")
	n := 0
	for _, c := range addr[i+1:] {
		n = n*10 + int(c-'0')
	}
	return n
}

// TestCalleeReinviteRelayed: the terminal puts the call on hold; the
// caller gets the re-INVITE from the B2BUA and its answer goes back.
func TestCalleeReinviteRelayed(t *testing.T) {
	e := newEnv(t)
	caller := newPeer(t, "alice")
	term := newPeer(t, "term")
	e.addUser("bob")
	e.addLegacy("bob", "001010000000001", term.addr, scp.Online)
	sess := make(chan *sipgo.DialogServerSession, 1)
	term.setInvite(answerer(term, 0, sess))
	caller.setInvite(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		body := strings.ReplaceAll(string(req.Body()), "sendonly", "recvonly")
		res := sipmsg.NewResponseFromRequest(req, 200, "OK", []byte(body))
		res.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
		res.AppendHeader(&caller.contact)
		tx.Respond(res)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dlg, _, err := caller.invite(ctx, e.uri("bob"), sipgo.AnswerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tdlg := <-sess
	waitFor(t, func() bool { return tdlg.LoadState() == sipmsg.DialogStateConfirmed })
	hold := sipmsg.NewRequest(sipmsg.INVITE, tdlg.InviteRequest.Contact().Address)
	hold.SetBody([]byte(testSDP + "a=sendonly\r\n"))
	hold.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
	res, err := tdlg.Do(ctx, hold)
	if err != nil || res.StatusCode != 200 || !strings.Contains(string(res.Body()), "a=recvonly") {
		t.Fatalf("callee re-INVITE: %v %v", res, err)
	}
	got := caller.waitRequest(sipmsg.INVITE, time.Second)
	if got.CallID().Value() != dlg.InviteRequest.CallID().Value() || !strings.Contains(string(got.Body()), "a=sendonly") {
		t.Errorf("caller's re-INVITE: Call-ID %s body %q", got.CallID().Value(), got.Body())
	}
	if strings.Contains(headersOnly(got), term.addr) {
		t.Errorf("re-INVITE to the caller leaks the terminal's address:\n%s", headersOnly(got))
	}
	if err := dlg.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, e)
}
