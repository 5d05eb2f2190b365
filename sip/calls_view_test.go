package sip_test

import (
	"context"
	"testing"
	"time"

	"github.com/emiago/sipgo"

	"github.com/imcall/b2bua/scp"
)

// TestLiveCalls: while the terminal rings, the call is listed with the
// caller's leg trying and the terminal's ringing; once answered both are
// up; after the BYE the list is empty.
func TestLiveCalls(t *testing.T) {
	e := newEnv(t)
	caller := newPeer(t, "alice")
	term := newPeer(t, "term")
	e.addUser("bob")
	e.addLegacy("bob", "001010000000001", term.addr, scp.Online)
	term.setInvite(answerer(term, 500*time.Millisecond, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type result struct {
		dlg *sipgo.DialogClientSession
		err error
	}
	done := make(chan result, 1)
	go func() {
		dlg, _, err := caller.invite(ctx, e.uri("bob"), sipgo.AnswerOptions{})
		done <- result{dlg, err}
	}()
	states := func() []string {
		var s []string
		for _, c := range e.srv.LiveCalls(ctx) {
			if c.Callee != "bob" {
				t.Errorf("live call to %q", c.Callee)
			}
			for _, l := range c.Legs {
				s = append(s, string(l.ID)+"="+l.State)
			}
		}
		return s
	}
	waitFor(t, func() bool { s := states(); return len(s) == 2 && s[0] == "uas-1=trying" && s[1] == "uac-1=ringing" })
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	waitFor(t, func() bool { s := states(); return len(s) == 2 && s[0] == "uas-1=up" && s[1] == "uac-1=up" })
	if err := r.dlg.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, e)
	if s := states(); len(s) != 0 {
		t.Errorf("after the BYE: %v", s)
	}
}
