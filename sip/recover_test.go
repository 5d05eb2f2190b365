package sip_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/scp"
	b2b "github.com/imcall/b2bua/sip"
)

// TestLeftoverCallsEndedAfterRestart: a confirmed call leaves a snapshot of
// both legs in the store; a server started on the same store as the same
// node ends it with BYE on both legs (Reason: the restart) and closes its
// record, and leaves another node's calls alone.
func TestLeftoverCallsEndedAfterRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The first life still holds the call when the test ends, and its
	// BYEs then go to peers already gone: a short TxTimeout ends it.
	old := newEnv(t, func(c *b2bConfig) {
		c.Dialogs, c.Node, c.TxTimeout = c.Calls.(b2b.DialogStore), "node-a", 500*time.Millisecond
	})
	store := old.store
	other := registry.DialogSnapshot{Node: "node-b", Key: "k", CallID: "held-by-b", StartedAt: time.Now().UTC(),
		Legs: []registry.DialogLeg{{CallID: "held-by-b", LocalURI: "sip:b2b@127.0.0.1", LocalTag: "x", RemoteURI: "sip:x@127.0.0.1",
			RemoteTag: "y", LocalSeq: 1, Target: "sip:127.0.0.1:9", Dest: "127.0.0.1:9", Transport: "UDP"}}}
	if err := store.PutDialogs(ctx, []registry.DialogSnapshot{other}, nil); err != nil {
		t.Fatal(err)
	}

	caller, term := newPeer(t, "alice"), newPeer(t, "term")
	old.addUser("bob")
	old.addLegacy("bob", "001010000000001", term.addr, scp.Online)
	term.setInvite(answerer(term, 0, nil))
	dlg, _, err := caller.invite(ctx, old.uri("bob"), sipgo.AnswerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := dlg.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	var snaps []registry.DialogSnapshot
	waitFor(t, func() bool {
		snaps, _ = store.Dialogs(ctx, "node-a")
		return len(snaps) == 1 && len(snaps[0].Legs) == 2 && snaps[0].Legs[0].Answer == nil && snaps[0].Legs[1].Invite == nil
	})

	restarted := newEnv(t, func(c *b2bConfig) { c.Dialogs, c.Calls, c.Node = store, store, "node-a" })
	n, err := restarted.srv.EndLeftovers(ctx)
	if err != nil || n != 1 {
		t.Fatalf("EndLeftovers = %d, %v; want 1 call", n, err)
	}
	for name, p := range map[string]*peer{"caller": caller, "terminal": term} {
		bye := p.waitRequest(sipmsg.BYE, 5*time.Second)
		if r := bye.GetHeader("Reason"); r == nil || !strings.Contains(r.Value(), "cause=41") || !strings.Contains(r.Value(), `text="node restarted"`) {
			t.Errorf("%s's BYE: Reason %v, want cause 41 node restarted", name, r)
		}
		if seq := bye.CSeq().SeqNo; seq <= 1 {
			t.Errorf("%s's BYE: CSeq %d, want past the dialog's", name, seq)
		}
	}
	recs, err := store.Calls(ctx, 10)
	if err != nil || len(recs) != 1 {
		t.Fatalf("records %+v %v", recs, err)
	}
	if r := recs[0]; r.EndCause != "node restarted" || r.EndedAt.IsZero() || r.AnsweredAt.IsZero() {
		t.Errorf("record %+v, want answered and ended by the restart", r)
	}
	left, _ := store.Dialogs(ctx, "node-a")
	kept, _ := store.Dialogs(ctx, "node-b")
	if len(left) != 0 || len(kept) != 1 {
		t.Errorf("after the restart: node-a %d snapshots (want 0), node-b %d (want 1)", len(left), len(kept))
	}
}

// TestSnapshotLivesWithTheCall: the snapshot is in the store while the call
// is up and gone once it ended, so a clean life leaves nothing to end.
func TestSnapshotLivesWithTheCall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e := newEnv(t, func(c *b2bConfig) { c.Dialogs, c.Node = c.Calls.(b2b.DialogStore), "node-a" })
	caller, term := newPeer(t, "alice"), newPeer(t, "term")
	e.addUser("bob")
	e.addLegacy("bob", "001010000000001", term.addr, scp.Online)
	term.setInvite(answerer(term, 0, nil))
	dlg, _, err := caller.invite(ctx, e.uri("bob"), sipgo.AnswerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := dlg.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	count := func() int { s, _ := e.store.Dialogs(ctx, "node-a"); return len(s) }
	waitFor(t, func() bool { s, _ := e.store.Dialogs(ctx, "node-a"); return len(s) == 1 && len(s[0].Legs) == 2 })
	if err := dlg.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, e)
	waitFor(t, func() bool { return count() == 0 })
	if n, err := e.srv.EndLeftovers(ctx); n != 0 || err != nil {
		t.Errorf("EndLeftovers after a clean call = %d, %v; want 0", n, err)
	}
}

// TestLeftoverRingingCallCanceled: a call that was ringing when its node
// died leaves its terminal ringing and its caller waiting. The restarted
// node CANCELs the INVITE (RFC 3261 §9.1: its Request-URI, top Via with
// the branch, From, To without the 180's tag, Call-ID and CSeq number;
// Reason: the restart), answers the caller's INVITE 503 (its Via, the
// 180's To tag, the same Reason), and closes the record, never answered;
// no BYE goes to either.
func TestLeftoverRingingCallCanceled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	old := newEnv(t, func(c *b2bConfig) {
		c.Dialogs, c.Node, c.TxTimeout = c.Calls.(b2b.DialogStore), "node-a", 500*time.Millisecond
	})
	store := old.store
	caller, term := newRawPeer(t), newRawPeer(t)
	old.addUser("bob")
	old.addLegacy("bob", "001010000000001", term.addr, scp.Online)
	cinv := caller.invite(old.addr, "bob", "im.test")
	tinv := term.next(sipmsg.INVITE, 5*time.Second)
	ringing := term.respond(tinv, 180, "Ringing")
	ringback := caller.nextResponse(180, 5*time.Second)
	waitFor(t, func() bool {
		s, _ := store.Dialogs(ctx, "node-a")
		return len(s) == 1 && len(s[0].Legs) == 2 && s[0].Legs[0].Answer != nil && s[0].Legs[1].Invite != nil
	})

	restarted := newEnv(t, func(c *b2bConfig) { c.Dialogs, c.Calls, c.Node = store, store, "node-a" })
	done := make(chan error, 1)
	go func() {
		n, err := restarted.srv.EndLeftovers(ctx)
		if err == nil && n != 1 {
			err = fmt.Errorf("%d calls ended, want 1", n)
		}
		done <- err
	}()
	can := term.next(sipmsg.CANCEL, 5*time.Second)
	inv := tinv.req
	for _, c := range []struct{ what, got, want string }{
		{"Request-URI", can.req.Recipient.String(), inv.Recipient.String()},
		{"Via", can.req.Via().Value(), inv.Via().Value()},
		{"From", can.req.From().Value(), inv.From().Value()},
		{"To", can.req.To().Value(), inv.To().Value()},
		{"Call-ID", can.req.CallID().Value(), inv.CallID().Value()},
		{"CSeq", can.req.CSeq().Value(), fmt.Sprintf("%d CANCEL", inv.CSeq().SeqNo)},
	} {
		if c.got != c.want {
			t.Errorf("CANCEL %s %q, want the INVITE's %q", c.what, c.got, c.want)
		}
	}
	if tag, _ := ringing.To().Params.Get("tag"); strings.Contains(can.req.To().Value(), tag) {
		t.Errorf("CANCEL To %q carries the 180's tag", can.req.To().Value())
	}
	if r := can.req.GetHeader("Reason"); r == nil || !strings.Contains(r.Value(), "cause=41") || !strings.Contains(r.Value(), `text="node restarted"`) {
		t.Errorf("CANCEL Reason %v, want cause 41 node restarted", r)
	}
	term.respond(can, 200, "OK")
	term.respond(tinv, 487, "Request Terminated")
	res := caller.nextResponse(300, 5*time.Second)
	for _, c := range []struct{ what, got, want string }{
		{"status", strconv.Itoa(res.StatusCode), "503"},
		{"Via", res.Via().Value(), cinv.Via().Value()},
		{"To", res.To().Value(), ringback.To().Value()},
		{"Call-ID", res.CallID().Value(), cinv.CallID().Value()},
		{"CSeq", res.CSeq().Value(), cinv.CSeq().Value()},
	} {
		if c.got != c.want {
			t.Errorf("caller's answer: %s %q, want %q", c.what, c.got, c.want)
		}
	}
	if r := res.GetHeader("Reason"); r == nil || !strings.Contains(r.Value(), "cause=41") || !strings.Contains(r.Value(), `text="node restarted"`) {
		t.Errorf("caller's answer: Reason %v, want cause 41 node restarted", r)
	}
	if err := <-done; err != nil {
		t.Fatalf("EndLeftovers: %v", err)
	}
	recs, err := store.Calls(ctx, 10)
	if err != nil || len(recs) != 1 {
		t.Fatalf("records %+v %v", recs, err)
	}
	if r := recs[0]; r.EndCause != "node restarted" || r.EndedAt.IsZero() || !r.AnsweredAt.IsZero() {
		t.Errorf("record %+v, want never answered, ended by the restart", r)
	}
	if term.count(sipmsg.BYE)+caller.count(sipmsg.BYE) != 0 {
		t.Error("a BYE went to a party whose call was never answered")
	}
	if left, _ := store.Dialogs(ctx, "node-a"); len(left) != 0 {
		t.Errorf("%d snapshots left after the restart", len(left))
	}
}
