package e2e

import (
	"context"
	"strconv"
	"syscall"
	"testing"
	"time"

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
	const calls = 20
	const nodeID = "e2e-crash"
	n := provision(t)
	port := freePort(t)
	subs := []subscriber{online(bobIMSI, port)}
	n.serve(serveOpts{subscribers: subs, extra: []string{"--node-id", nodeID}})
	sipAddr := n.sipAddr

	term := startSipp(t, "terminal", port, "terminal_answer_restart_bye.xml", "-m", strconv.Itoa(calls))
	term.waitBound()
	caller := startSipp(t, "caller", 0, "caller_restart_bye.xml",
		"-m", strconv.Itoa(calls), "-r", "10", "-l", strconv.Itoa(calls),
		"-s", "bob", "-key", "caller", "alice", "-key", "domain", domain,
		"-au", "alice", "-ap", "secret", "-auth_uri", "bob@"+domain,
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
		if len(snaps) == calls {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d of %d calls confirmed before the deadline", len(snaps), calls)
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
	n.serve(serveOpts{subscribers: subs, extra: []string{"--node-id", nodeID, "--sip-listen", sipAddr}})
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
