package sip_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/scp"
	b2b "github.com/imcall/b2bua/sip"
)

// fakeClock is a b2b.Clock the test moves by hand: session intervals of
// half an hour pass in a moment.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Duration
	timers []*fakeTimer
}

type fakeTimer struct {
	c   *fakeClock
	at  time.Duration
	f   func()
	off bool
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Unix(0, 0).Add(c.now)
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) b2b.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now + d, f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.off
	t.off = true
	return was
}

// pending is how many timers wait to fire.
func (c *fakeClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.off {
			n++
		}
	}
	return n
}

// waitPending waits until at least n timers are armed, so that an advance
// does not run ahead of the session arming them.
func (c *fakeClock) waitPending(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for c.pending() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d timers armed, want %d", c.pending(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// mark is the count of timers made so far, for waitNew.
func (c *fakeClock) mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// waitNew waits until n timers made after mark are armed.
func (c *fakeClock) waitNew(t *testing.T, mark, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		k := 0
		for _, tm := range c.timers[mark:] {
			if !tm.off {
				k++
			}
		}
		c.mu.Unlock()
		if k >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d new timers armed, want %d", k, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// advance moves the clock by d and fires what falls due.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now += d
	var due []*fakeTimer
	for _, t := range c.timers {
		if !t.off && t.at <= c.now {
			t.off = true
			due = append(due, t)
		}
	}
	c.mu.Unlock()
	for _, t := range due {
		t.f()
	}
}

// timerCall is an answered call between a raw caller and a raw terminal
// through a B2BUA on a fake clock.
type timerCall struct {
	e      *env
	clk    *fakeClock
	caller *rawCaller
	term   *rawPeer
	tinv   rawReq
	ok     *sipmsg.Response // the 200 the caller got
}

// answeredCall places a call whose INVITE has callerHdrs; the terminal's
// 200 carries termHdrs. It waits until the session has armed armed timers.
func answeredCall(t *testing.T, cfg func(*b2bConfig), callerHdrs, termHdrs []string) *timerCall {
	t.Helper()
	clk := &fakeClock{}
	e := newEnv(t, func(c *b2bConfig) {
		c.Clock = clk
		c.T1 = 20 * time.Millisecond
		if cfg != nil {
			cfg(c)
		}
	})
	tc := &timerCall{e: e, clk: clk, caller: newRawCaller(t, e.addr), term: newRawPeer(t)}
	e.addUser("bob")
	e.addLegacy("bob", "001010000000001", tc.term.addr, scp.Online)
	tc.caller.call("bob", "im.test", callerHdrs...)
	tc.tinv = tc.term.next(sipmsg.INVITE, 5*time.Second)
	res := sipmsg.NewResponseFromRequest(tc.tinv.req, 200, "OK", []byte(strings.ReplaceAll(testSDP, "40000", "40002")))
	res.To().Params.Add("tag", tc.term.tag)
	res.AppendHeader(&sipmsg.ContactHeader{Address: sipmsg.Uri{Scheme: "sip", Host: "127.0.0.1", Port: netipPort(tc.term.addr)}})
	res.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
	for _, h := range termHdrs {
		k, v, _ := strings.Cut(h, ": ")
		res.AppendHeader(sipmsg.NewHeader(k, v))
	}
	tc.term.send(res, tc.tinv.src)
	tc.term.next(sipmsg.ACK, 5*time.Second)
	tc.ok = tc.caller.response(sipmsg.INVITE, 200, 5*time.Second)
	tc.caller.inDialog("ACK", tc.ok, 1)
	return tc
}

func reasonOf(r rawReq) string { return hdr(r.req, "Reason") }

// TestSessionTimerWeRefresh: a caller that knows no session timers and a
// terminal whose 200 names none: we are the refresher on both legs, each on
// its own (RFC 4028 §7.2, §9). At half the interval the terminal, which
// allows UPDATE, gets an UPDATE without SDP, the caller a re-INVITE
// repeating our SDP unchanged; answered, the call goes on; a refresh left
// unanswered ends it at the interval with BYE and Reason on both legs.
func TestSessionTimerWeRefresh(t *testing.T) {
	tc := answeredCall(t, nil, nil, []string{"Allow: INVITE, ACK, BYE, UPDATE"})
	if got := hdr(tc.ok, "Session-Expires"); got != "1800;refresher=uas" {
		t.Errorf("200 to the caller: Session-Expires %q, want 1800;refresher=uas", got)
	}
	if got := hdr(tc.ok, "Require"); got != "" {
		t.Errorf("200 to a caller without timer support: Require %q", got)
	}
	if got := hdr(tc.tinv.req, "Session-Expires"); got != "1800" || hdr(tc.tinv.req, "Min-SE") != "90" {
		t.Errorf("INVITE to the terminal: Session-Expires %q Min-SE %q, want 1800 and 90", got, hdr(tc.tinv.req, "Min-SE"))
	}
	tc.clk.waitPending(t, 4) // refresh and expiry on each leg
	tc.clk.advance(900 * time.Second)
	up := tc.term.next(sipmsg.UPDATE, 5*time.Second)
	if len(up.req.Body()) != 0 || hdr(up.req, "Session-Expires") != "1800;refresher=uac" {
		t.Errorf("UPDATE to the terminal: Session-Expires %q, %d bytes of body; want 1800;refresher=uac and none", hdr(up.req, "Session-Expires"), len(up.req.Body()))
	}
	re := tc.caller.next(sipmsg.INVITE, 5*time.Second)
	if string(re.req.Body()) != string(tc.ok.Body()) {
		t.Errorf("refresh re-INVITE to the caller changes the SDP:\n%s\nwant as in our 200:\n%s", re.req.Body(), tc.ok.Body())
	}
	m := tc.clk.mark()
	tc.term.respond(up, 200, "OK")
	tc.caller.respond(re, 200, "OK")
	tc.caller.next(sipmsg.ACK, 5*time.Second)
	tc.clk.waitNew(t, m, 4)
	// The refresh moved the expiry: 1000 s after the first refresh
	// nothing ends, the second refresh goes at 900 s.
	tc.clk.advance(899 * time.Second)
	if n := tc.term.count(sipmsg.BYE); n != 0 {
		t.Fatalf("terminal got BYE after a refresh was answered")
	}
	tc.clk.advance(time.Second)
	tc.term.next(sipmsg.UPDATE, 5*time.Second) // left unanswered
	tc.caller.next(sipmsg.INVITE, 5*time.Second)
	tc.clk.advance(900 * time.Second)
	for name, p := range map[string]*rawPeer{"terminal": tc.term, "caller": tc.caller.rawPeer} {
		bye := p.next(sipmsg.BYE, 5*time.Second)
		if r := reasonOf(bye); !strings.Contains(r, "cause=102") || !strings.Contains(r, "session expired") {
			t.Errorf("BYE to the %s: Reason %q, want Q.850 cause 102 and the session's expiry", name, r)
		}
	}
}

// TestSessionTimerPeerRefreshes: a caller that supports timers refreshes
// its own leg (refresher=uac, Require: timer in our 200). Its UPDATE is
// answered on its leg and never reaches the terminal; when it stops
// refreshing, the call ends at the interval less 32 s (RFC 4028 §10).
func TestSessionTimerPeerRefreshes(t *testing.T) {
	tc := answeredCall(t, nil, []string{"Supported: timer", "Session-Expires: 1200"}, []string{"Session-Expires: 3600;refresher=uas", "Require: timer"})
	if got := hdr(tc.ok, "Session-Expires"); got != "1200;refresher=uac" || hdr(tc.ok, "Require") != "timer" {
		t.Errorf("200 to the caller: Session-Expires %q Require %q, want 1200;refresher=uac and timer", got, hdr(tc.ok, "Require"))
	}
	tc.clk.waitPending(t, 2) // an expiry on each leg, none of them ours to refresh
	tc.clk.advance(600 * time.Second)
	m := tc.clk.mark()
	tc.caller.inDialog("UPDATE", tc.ok, 2, "Session-Expires: 1200;refresher=uac", "Supported: timer")
	res := tc.caller.response(sipmsg.UPDATE, 200, 5*time.Second)
	if res.StatusCode != 200 || hdr(res, "Session-Expires") != "1200;refresher=uac" {
		t.Errorf("caller's refresh: %d Session-Expires %q, want 200 1200;refresher=uac", res.StatusCode, hdr(res, "Session-Expires"))
	}
	tc.clk.waitNew(t, m, 1)
	tc.clk.advance(1200*time.Second - 32*time.Second - time.Second)
	if tc.term.count(sipmsg.UPDATE) != 0 || tc.term.count(sipmsg.BYE) != 0 {
		t.Fatalf("terminal got the caller's refresh or a BYE")
	}
	tc.clk.advance(time.Second)
	bye := tc.term.next(sipmsg.BYE, 5*time.Second)
	if r := reasonOf(bye); !strings.Contains(r, "cause=102") {
		t.Errorf("BYE: Reason %q, want cause 102", r)
	}
	tc.caller.next(sipmsg.BYE, 5*time.Second)
}

// TestSessionTimerRefreshFails: a refresh answered 481 (or 408) ends the
// call with BYE and Reason on both legs at once (RFC 4028 §10).
func TestSessionTimerRefreshFails(t *testing.T) {
	tc := answeredCall(t, nil, []string{"Supported: timer", "Session-Expires: 1800;refresher=uac"}, []string{"Allow: UPDATE"})
	tc.clk.waitPending(t, 3)
	tc.clk.advance(900 * time.Second)
	up := tc.term.next(sipmsg.UPDATE, 5*time.Second)
	tc.term.respond(up, 481, "Call Does Not Exist")
	for name, p := range map[string]*rawPeer{"terminal": tc.term, "caller": tc.caller.rawPeer} {
		bye := p.next(sipmsg.BYE, 5*time.Second)
		if r := reasonOf(bye); !strings.Contains(r, "cause=102") || !strings.Contains(r, "refresh failed") {
			t.Errorf("BYE to the %s: Reason %q, want cause 102, refresh failed", name, r)
		}
	}
}

// TestSessionTimer422: a caller asking for less than our Min-SE gets 422
// with Min-SE: 90; a terminal answering our INVITE with 422 gets it again
// with the Session-Expires its Min-SE asks for, on the same Call-ID with a
// higher CSeq (RFC 4028 §7.4, §8.1).
func TestSessionTimer422(t *testing.T) {
	e := newEnv(t, func(c *b2bConfig) { c.T1 = 20 * time.Millisecond })
	caller, term := newRawCaller(t, e.addr), newRawPeer(t)
	e.addUser("bob")
	e.addLegacy("bob", "001010000000001", term.addr, scp.Online)
	caller.call("bob", "im.test", "Supported: timer", "Session-Expires: 60")
	res := caller.response(sipmsg.INVITE, 200, 5*time.Second)
	if res.StatusCode != 422 || hdr(res, "Min-SE") != "90" {
		t.Fatalf("caller asking 60 s: %d Min-SE %q, want 422 and 90", res.StatusCode, hdr(res, "Min-SE"))
	}
	caller.call("bob", "im.test", "Supported: timer", "Session-Expires: 90", "Min-SE: 90")
	first := term.next(sipmsg.INVITE, 5*time.Second)
	r422 := sipmsg.NewResponseFromRequest(first.req, 422, "Session Interval Too Small", nil)
	r422.To().Params.Add("tag", term.tag)
	r422.AppendHeader(sipmsg.NewHeader("Min-SE", "3600"))
	term.send(r422, first.src)
	again := term.next(sipmsg.INVITE, 5*time.Second)
	if hdr(again.req, "Session-Expires") != "3600" || hdr(again.req, "Min-SE") != "3600" {
		t.Errorf("INVITE after 422: Session-Expires %q Min-SE %q, want 3600 and 3600", hdr(again.req, "Session-Expires"), hdr(again.req, "Min-SE"))
	}
	if again.req.CallID().Value() != first.req.CallID().Value() || again.req.CSeq().SeqNo <= first.req.CSeq().SeqNo {
		t.Errorf("INVITE after 422: Call-ID %s CSeq %d, want %s and above %d", again.req.CallID().Value(), again.req.CSeq().SeqNo, first.req.CallID().Value(), first.req.CSeq().SeqNo)
	}
	term.answer(again, true)
	ok := caller.response(sipmsg.INVITE, 200, 5*time.Second)
	if ok.StatusCode != 200 || hdr(ok, "Session-Expires") != "90;refresher=uac" {
		t.Errorf("caller: %d Session-Expires %q, want 200 90;refresher=uac", ok.StatusCode, hdr(ok, "Session-Expires"))
	}
	caller.inDialog("ACK", ok, 1)
	caller.inDialog("BYE", ok, 2)
	term.next(sipmsg.BYE, 5*time.Second)
}

// TestMaxCallDuration: with MaxCallDuration an answered call ends that
// long after its answer, with BYE on both legs; without it, it does not.
func TestMaxCallDuration(t *testing.T) {
	tc := answeredCall(t, func(c *b2bConfig) { c.MaxCallDuration = 2 * time.Hour; c.SessionExpires = -1 }, nil, nil)
	tc.clk.waitPending(t, 1)
	tc.clk.advance(2*time.Hour - time.Second)
	if tc.term.count(sipmsg.BYE) != 0 {
		t.Fatal("BYE before the limit")
	}
	tc.clk.advance(time.Second)
	for name, p := range map[string]*rawPeer{"terminal": tc.term, "caller": tc.caller.rawPeer} {
		if r := reasonOf(p.next(sipmsg.BYE, 5*time.Second)); !strings.Contains(r, "maximum call duration") {
			t.Errorf("BYE to the %s: Reason %q, want the duration limit", name, r)
		}
	}
}

// TestUnchangedReinviteAnsweredOnItsLeg: a caller's refresh re-INVITE that
// repeats its SDP is answered on its own leg with our SDP unchanged and
// never reaches the terminal; one that changes the SDP is relayed.
func TestUnchangedReinviteAnsweredOnItsLeg(t *testing.T) {
	tc := answeredCall(t, nil, []string{"Supported: timer"}, nil)
	tc.caller.inDialogBody("INVITE", tc.ok, 2, testSDP, "Supported: timer", "Session-Expires: 1800;refresher=uac")
	res := tc.caller.response(sipmsg.INVITE, 200, 5*time.Second)
	if res.StatusCode != 200 || string(res.Body()) != string(tc.ok.Body()) || hdr(res, "Session-Expires") != "1800;refresher=uac" {
		t.Errorf("refresh re-INVITE: %d Session-Expires %q body\n%s\nwant 200, 1800;refresher=uac and our SDP as before:\n%s", res.StatusCode, hdr(res, "Session-Expires"), res.Body(), tc.ok.Body())
	}
	tc.caller.inDialog("ACK", res, 2)
	held := testSDP + "a=sendonly\r\n"
	tc.caller.inDialogBody("INVITE", tc.ok, 3, held)
	re := tc.term.next(sipmsg.INVITE, 5*time.Second)
	if !strings.Contains(string(re.req.Body()), "a=sendonly") {
		t.Errorf("relayed re-INVITE body %q, want the hold", re.req.Body())
	}
	if n := tc.term.count(sipmsg.INVITE); n != 2 {
		t.Errorf("terminal got %d INVITEs, want 2 (the call's and the hold; the refresh stayed on its leg)", n)
	}
}
