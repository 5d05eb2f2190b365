package e2e

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/registry/sqlite"
)

// TestCrashLosesNoCall: calls answered through `b2bua serve`, the process
// killed with SIGKILL under them, and a new process on the same registry
// as the same node: every leg of every call gets a BYE naming the restart
// (the SIPp caller and terminal check the Reason and exit 0 only if every
// call got one), and every call record is closed.
func TestCrashLosesNoCall(t *testing.T) {
	t.Parallel()
	const calls = 60
	const nodeID = "e2e-crash"
	n := provision(t)
	port := pickPort(t)
	subs := []subscriber{online(bobIMSI, port)}
	n.serve(serveOpts{subscribers: subs, calls: calls, extra: []string{"--node-id", nodeID}})
	sipAddr := n.sipAddr

	term := runSipp(t, "terminal", port, "terminal_answer_restart_bye.xml", "-m", strconv.Itoa(calls))
	caller := runSipp(t, "caller", 0, "caller_restart_bye.xml",
		"-m", strconv.Itoa(calls), "-r", "30", "-l", strconv.Itoa(calls),
		"-s", "bob", "-key", "caller", "alice", "-key", "domain", domain,
		"-au", "alice", "-ap", "secret",
		sipAddr)

	ctx, cancel := context.WithTimeout(context.Background(), sippTimeout)
	defer cancel()
	store, err := sqlite.Open(ctx, sqlite.Config{Path: n.db})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	// Every call answered and its snapshot written: the crash may come.
	for {
		snaps, err := store.Dialogs(ctx, nodeID)
		if err != nil {
			t.Fatal(err)
		}
		if confirmed(snaps) == calls {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d of %d calls confirmed before the deadline", confirmed(snaps), calls)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err := n.proc.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	open := openRecords(t, ctx, store)
	if open != calls {
		t.Fatalf("%d records open after the crash, want %d", open, calls)
	}

	// The same node again, on the same SIP address.
	n.serve(serveOpts{subscribers: subs, calls: calls, extra: []string{"--node-id", nodeID, "--sip-listen", sipAddr}})
	n.sipAddr = sipAddr
	caller.wait()
	term.wait()
	for {
		snaps, err := store.Dialogs(ctx, nodeID)
		if err != nil {
			t.Fatal(err)
		}
		if len(snaps) == 0 && openRecords(t, ctx, store) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("after the restart: %d snapshots, %d records open", len(snaps), openRecords(t, ctx, store))
		case <-time.After(50 * time.Millisecond):
		}
	}
	recs, err := store.Calls(ctx, 2*calls)
	if err != nil {
		t.Fatal(err)
	}
	ended := 0
	for _, r := range recs {
		if r.EndCause == "node restarted" && !r.AnsweredAt.IsZero() && !r.EndedAt.Before(r.AnsweredAt) {
			ended++
		}
	}
	if ended != calls {
		t.Errorf("%d records ended by the restart, want %d: %+v", ended, calls, recs)
	}
}

// TestSecondSignalThenCrash: the second SIGTERM sends BYE on both legs,
// the peers leave them unanswered, and the process dies (SIGKILL) before
// they are: the call's snapshot is still in the store, and the next start
// ends the call again with BYE on both legs and closes its record.
func TestSecondSignalThenCrash(t *testing.T) {
	t.Parallel()
	const nodeID = "e2e-second-signal"
	n := provision(t)
	term, caller := newUDPPeer(t, 0), newUDPPeer(t, 0)
	subs := []subscriber{online(bobIMSI, term.port)}
	flags := []string{"--node-id", nodeID, "--trusted", "127.0.0.0/8"}
	n.serve(serveOpts{subscribers: subs, extra: flags})
	sipAddr := n.sipAddr

	caller.invite(sipAddr, "bob", "second-signal-call")
	inv, src := term.request(sipmsg.INVITE, 10*time.Second)
	term.answer(inv, src, 200, rawSDP)
	term.request(sipmsg.ACK, 10*time.Second)
	caller.ackAnswer(sipAddr)

	ctx, cancel := context.WithTimeout(context.Background(), sippTimeout)
	defer cancel()
	store, err := sqlite.Open(ctx, sqlite.Config{Path: n.db})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for {
		if snaps, err := store.Dialogs(ctx, nodeID); err != nil {
			t.Fatal(err)
		} else if confirmed(snaps) == 1 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("the call's snapshot never reached the store")
		case <-time.After(50 * time.Millisecond):
		}
	}

	logPath := filepath.Join(n.dir, "b2bua.log")
	if err := n.proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitLog(t, logPath, "shutting down", 1, 10*time.Second)
	if err := n.proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]*udpPeer{"caller": caller, "terminal": term} {
		if bye, _ := p.request(sipmsg.BYE, 10*time.Second); !strings.Contains(reason(bye), "shutdown") {
			t.Errorf("%s's BYE on the second signal: Reason %q", name, reason(bye))
		}
	}
	if err := n.proc.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}

	n.serve(serveOpts{subscribers: subs, extra: append(flags, "--sip-listen", sipAddr)})
	n.sipAddr = sipAddr
	for name, p := range map[string]*udpPeer{"caller": caller, "terminal": term} {
		// Skip the unanswered BYE's retransmissions of the first life.
		for {
			bye, src := p.request(sipmsg.BYE, 10*time.Second)
			if r := reason(bye); strings.Contains(r, "cause=41") && strings.Contains(r, `text="node restarted"`) {
				p.answer(bye, src, 200, "")
				break
			}
		}
		t.Logf("%s got the BYE of the restart", name)
	}
	for openRecords(t, ctx, store) != 0 {
		select {
		case <-ctx.Done():
			t.Fatal("the record stays open after the restart")
		case <-time.After(50 * time.Millisecond):
		}
	}
	recs, err := store.Calls(ctx, 10)
	if err != nil || len(recs) != 1 || recs[0].EndCause != "node restarted" {
		t.Errorf("records %+v %v, want one ended by the restart", recs, err)
	}
	if left, _ := store.Dialogs(ctx, nodeID); len(left) != 0 {
		t.Errorf("%d snapshots left after the restart", len(left))
	}
}

// TestCrashWhileRinging: a call rings at the terminal when the node is
// killed; the terminal would ring on for ever, the caller wait for its
// answer. The restarted node CANCELs the INVITE (RFC 3261 §9.1: same
// branch, Call-ID, From, CSeq number; the Reason names the restart),
// answers the caller 503 with that Reason, and closes the record, never
// answered.
func TestCrashWhileRinging(t *testing.T) {
	t.Parallel()
	const nodeID = "e2e-crash-ringing"
	n := provision(t)
	term, caller := newUDPPeer(t, 0), newUDPPeer(t, 0)
	subs := []subscriber{online(bobIMSI, term.port)}
	flags := []string{"--node-id", nodeID, "--trusted", "127.0.0.0/8"}
	n.serve(serveOpts{subscribers: subs, extra: flags})
	sipAddr := n.sipAddr

	caller.invite(sipAddr, "bob", "ringing-at-crash")
	inv, src := term.request(sipmsg.INVITE, 10*time.Second)
	term.answer(inv, src, 180, "")

	ctx, cancel := context.WithTimeout(context.Background(), sippTimeout)
	defer cancel()
	store, err := sqlite.Open(ctx, sqlite.Config{Path: n.db})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for {
		snaps, err := store.Dialogs(ctx, nodeID)
		if err != nil {
			t.Fatal(err)
		}
		if len(snaps) == 1 && len(snaps[0].Legs) == 2 && snaps[0].Legs[1].Invite != nil {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("the ringing call's INVITE never reached the store")
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err := n.proc.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}

	n.serve(serveOpts{subscribers: subs, extra: append(flags, "--sip-listen", sipAddr)})
	n.sipAddr = sipAddr
	can, src := term.request(sipmsg.CANCEL, 10*time.Second)
	if got, want := can.Via().Value(), inv.Via().Value(); got != want {
		t.Errorf("CANCEL Via %q, want the INVITE's %q", got, want)
	}
	if got, want := can.From().Value(), inv.From().Value(); got != want {
		t.Errorf("CANCEL From %q, want the INVITE's %q", got, want)
	}
	if can.CallID().Value() != inv.CallID().Value() || can.CSeq().SeqNo != inv.CSeq().SeqNo {
		t.Errorf("CANCEL %s %s, want the INVITE's Call-ID %s and CSeq %d", can.CallID().Value(), can.CSeq().Value(), inv.CallID().Value(), inv.CSeq().SeqNo)
	}
	if r := reason(can); !strings.Contains(r, "cause=41") || !strings.Contains(r, `text="node restarted"`) {
		t.Errorf("CANCEL Reason %q, want cause 41 node restarted", r)
	}
	term.answer(can, src, 200, "")
	term.answer(inv, src, 487, "")
	// The caller's INVITE gets its final answer from the restarted node.
	res := caller.response(10 * time.Second)
	if h := res.GetHeader("Reason"); res.StatusCode != 503 || h == nil || !strings.Contains(h.Value(), `text="node restarted"`) {
		t.Errorf("caller's answer after the restart: %s (Reason %v), want 503 naming the restart", res.StartLine(), h)
	}
	for openRecords(t, ctx, store) != 0 {
		select {
		case <-ctx.Done():
			t.Fatal("the record stays open after the restart")
		case <-time.After(50 * time.Millisecond):
		}
	}
	recs, err := store.Calls(ctx, 10)
	if err != nil || len(recs) != 1 || recs[0].EndCause != "node restarted" || !recs[0].AnsweredAt.IsZero() {
		t.Errorf("records %+v %v, want one never answered, ended by the restart", recs, err)
	}
	if left, _ := store.Dialogs(ctx, nodeID); len(left) != 0 {
		t.Errorf("%d snapshots left after the restart", len(left))
	}
}

// confirmed counts the snapshots of answered calls: a ringing call's has
// no leg yet, or legs whose INVITE is unanswered.
func confirmed(snaps []registry.DialogSnapshot) int {
	n := 0
	for _, d := range snaps {
		up := len(d.Legs) > 0
		for _, l := range d.Legs {
			up = up && l.Invite == nil && l.Answer == nil
		}
		if up {
			n++
		}
	}
	return n
}

func reason(r *sipmsg.Request) string {
	if h := r.GetHeader("Reason"); h != nil {
		return h.Value()
	}
	return ""
}

// openRecords counts the call records with no end.
func openRecords(t *testing.T, ctx context.Context, store interface {
	Calls(context.Context, int) ([]registry.CallRecord, error)
}) int {
	t.Helper()
	recs, err := store.Calls(ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	open := 0
	for _, r := range recs {
		if r.EndedAt.IsZero() {
			open++
		}
	}
	return open
}
