package sip_test

import (
	"bytes"
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/scp"
)

// sessionGoroutines counts the goroutines running the call core: a
// session's loop or runner, or an INVITE handler that became one.
func sessionGoroutines() int {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte("b2bua/sip.(*session)")) || bytes.Contains(g, []byte("b2bua/sip.(*Server).onInvite")) {
			n++
		}
	}
	return n
}

// TestAnsweredCallsHoldNoGoroutine: calls that are answered and idle,
// waiting for a BYE, hold no goroutine of the call core; a BYE still ends
// each (the post starts a runner).
func TestAnsweredCallsHoldNoGoroutine(t *testing.T) {
	e := newEnv(t)
	caller := newPeer(t, "alice")
	term := newPeer(t, "term")
	e.addUser("bob")
	e.addLegacy("bob", "001010000000001", term.addr, scp.Online)
	term.setInvite(answerer(term, 0, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const calls = 5
	var dlgs []*sipgo.DialogClientSession
	for i := 0; i < calls; i++ {
		dlg, _, err := caller.invite(ctx, e.uri("bob"), sipgo.AnswerOptions{})
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		dlgs = append(dlgs, dlg)
	}
	if n := e.srv.ActiveCalls(); n != calls {
		t.Fatalf("%d calls up, want %d", n, calls)
	}
	// The ACKs' tasks may still be running.
	var n int
	deadline := time.Now().Add(5 * time.Second)
	for n = sessionGoroutines(); n > 0 && time.Now().Before(deadline); n = sessionGoroutines() {
		time.Sleep(10 * time.Millisecond)
	}
	if n != 0 {
		t.Fatalf("%d call-core goroutines for %d idle answered calls, want none", n, calls)
	}
	for i, dlg := range dlgs {
		if err := dlg.Bye(ctx); err != nil {
			t.Fatalf("call %d: BYE: %v", i, err)
		}
	}
	waitIdle(t, e)
}

// TestLongCallEndsAfterSetUpIsDropped: once 64*T1 have passed since the
// answer, the call has let go of its INVITE transactions (compact.go); a
// BYE from either side still ends both legs, with the record's end cause.
func TestLongCallEndsAfterSetUpIsDropped(t *testing.T) {
	const t1 = 5 * time.Millisecond
	for _, tc := range []struct {
		name  string
		cause string
	}{
		{"callee hangs up", "callee BYE"},
		{"caller hangs up", "caller BYE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *b2bConfig) { c.T1 = t1 })
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
			waitFor(t, func() bool { return tdlg.LoadState() == sipmsg.DialogStateConfirmed })
			time.Sleep(64*t1 + 200*time.Millisecond)
			if tc.cause == "callee BYE" {
				if err := tdlg.Bye(ctx); err != nil {
					t.Fatalf("terminal BYE: %v", err)
				}
				caller.waitRequest(sipmsg.BYE, 2*time.Second)
			} else {
				if err := dlg.Bye(ctx); err != nil {
					t.Fatalf("caller BYE: %v", err)
				}
				term.waitRequest(sipmsg.BYE, 2*time.Second)
			}
			waitIdle(t, e)
			recs, _ := e.store.Calls(ctx, 1)
			if len(recs) != 1 || recs[0].EndCause != tc.cause {
				t.Errorf("record %+v, want end cause %q", recs, tc.cause)
			}
		})
	}
}
