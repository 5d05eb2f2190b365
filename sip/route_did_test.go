package sip_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/registry/sqlite"
)

const bobDID = "+15550001111"

// didEnv is an env whose registry gives bobDID to bob, with bob logged in
// on a client at each of peers, whose logins end after the given spans.
func didEnv(t *testing.T, logins map[string]time.Duration) *env {
	t.Helper()
	e := newEnv(t, func(c *b2bConfig) { c.Numbers = c.Terminals.(*sqlite.Store) })
	e.addUser("bob")
	ctx := context.Background()
	if _, err := e.store.AddDID(ctx, registry.DID{Number: bobDID, IMID: "bob"}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for addr, span := range logins {
		b := registry.Binding{IMID: "bob", Contact: "sip:bob@" + addr, Instance: instanceOf(addr),
			Source: addr, Transport: "udp", Expires: now.Add(span), UpdatedAt: now}
		if err := e.store.PutBinding(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// instanceOf is the +sip.instance of the test client at addr.
func instanceOf(addr string) string {
	return fmt.Sprintf("urn:uuid:00000000-0000-4000-8000-%012d", netip.MustParseAddrPort(addr).Port())
}

// A client whose login ends while it rings is CANCELed (with no "completed
// elsewhere": nobody took the call), and the caller, with no branch left,
// gets 480.
func TestDIDBranchEndsWithLogin(t *testing.T) {
	client := newRawPeer(t)
	caller := newPeer(t, "alice")
	e := didEnv(t, map[string]time.Duration{client.addr: 400 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := inviteAsync(ctx, caller, e.uri(bobDID))

	inv := client.next(sipmsg.INVITE, 5*time.Second)
	start := time.Now()
	client.respond(inv, 180, "Ringing")
	can := client.next(sipmsg.CANCEL, 5*time.Second)
	if waited := time.Since(start); waited > 2*time.Second {
		t.Errorf("CANCEL came %v after the ring, want it at the login's end", waited)
	}
	if h := can.req.GetHeader("Reason"); h != nil {
		t.Errorf("CANCEL of an ended login carries %q, want no Reason", h.Value())
	}
	client.respond(can, 200, "OK")
	client.respond(inv, 487, "Request Terminated")
	client.next(sipmsg.ACK, 3*time.Second)
	r := <-done
	var de *sipgo.ErrDialogResponse
	if !errors.As(r.err, &de) || r.res == nil || r.res.StatusCode != 480 {
		t.Fatalf("caller got %v (%v), want 480", r.res, r.err)
	}
	waitIdle(t, e)
}

// A client that refreshed its login while ringing keeps ringing past the
// old expiry, and may take the call.
func TestDIDBranchRefreshedLoginRingsOn(t *testing.T) {
	client := newRawPeer(t)
	caller := newPeer(t, "alice")
	e := didEnv(t, map[string]time.Duration{client.addr: 300 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := inviteAsync(ctx, caller, e.uri(bobDID))

	inv := client.next(sipmsg.INVITE, 5*time.Second)
	client.respond(inv, 180, "Ringing")
	now := time.Now()
	if err := e.store.PutBinding(ctx, registry.Binding{IMID: "bob", Contact: "sip:bob@" + client.addr, Instance: instanceOf(client.addr),
		Source: client.addr, Transport: "udp", Expires: now.Add(time.Hour), UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(800 * time.Millisecond) // past the first expiry: the session must not CANCEL
	if n := client.count(sipmsg.CANCEL); n != 0 {
		t.Fatalf("a refreshed login got %d CANCELs", n)
	}
	client.respondDialog(inv, 200, "answer")
	client.nextOn(sipmsg.ACK, "answer", 3*time.Second)
	r := <-done
	if r.err != nil || r.res.StatusCode != 200 {
		t.Fatalf("call: %v (response %v)", r.err, r.res)
	}
	if err := r.dlg.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	bye := client.nextOn(sipmsg.BYE, "answer", 3*time.Second)
	client.respond(bye, 200, "OK")
	waitIdle(t, e)
}

// A client's 6xx ends the fork (RFC 3261 §16.7 step 5): the client still
// ringing is CANCELed and the caller gets the 6xx.
func TestDIDDeclineEndsFork(t *testing.T) {
	decliner, ringer := newRawPeer(t), newRawPeer(t)
	caller := newPeer(t, "alice")
	e := didEnv(t, map[string]time.Duration{decliner.addr: time.Hour, ringer.addr: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := inviteAsync(ctx, caller, e.uri(bobDID))

	ri := ringer.next(sipmsg.INVITE, 5*time.Second)
	ringer.respond(ri, 180, "Ringing")
	di := decliner.next(sipmsg.INVITE, 5*time.Second)
	decliner.respond(di, 603, "Decline")
	decliner.next(sipmsg.ACK, 3*time.Second)
	can := ringer.next(sipmsg.CANCEL, 3*time.Second)
	ringer.respond(can, 200, "OK")
	ringer.respond(ri, 487, "Request Terminated")
	ringer.next(sipmsg.ACK, 3*time.Second)
	r := <-done
	var de *sipgo.ErrDialogResponse
	if !errors.As(r.err, &de) || r.res == nil || r.res.StatusCode != 603 {
		t.Fatalf("caller got %v (%v), want 603", r.res, r.err)
	}
	waitIdle(t, e)
}

// A client that logs out (REGISTER with Expires: 0 and its instance, RFC
// 5626 §6) while it rings is CANCELed at once; the other client still
// rings and takes the call.
func TestDIDBranchEndsWithLogout(t *testing.T) {
	leaving, staying := newRawPeer(t), newRawPeer(t)
	caller := newPeer(t, "alice")
	e := didEnv(t, map[string]time.Duration{leaving.addr: time.Hour, staying.addr: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := inviteAsync(ctx, caller, e.uri(bobDID))

	li := leaving.next(sipmsg.INVITE, 5*time.Second)
	leaving.respond(li, 180, "Ringing")
	si := staying.next(sipmsg.INVITE, 5*time.Second)
	staying.respond(si, 180, "Ringing")
	// The leaving client logs out itself, from the address it rings at.
	logout := "REGISTER sip:im.test SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + leaving.addr + ";branch=z9hG4bK-logout\r\n" +
		"From: <sip:bob@im.test>;tag=logout\r\n" +
		"To: <sip:bob@im.test>\r\n" +
		"Call-ID: logout-" + leaving.addr + "\r\n" +
		"CSeq: 2 REGISTER\r\n" +
		"Contact: <sip:bob@" + leaving.addr + ">;+sip.instance=\"<" + instanceOf(leaving.addr) + ">\"\r\n" +
		"Expires: 0\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
	m, err := sipmsg.ParseMessage([]byte(logout))
	if err != nil {
		t.Fatal(err)
	}
	leaving.send(m, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(e.addr)))
	if res := leaving.nextResponse(200, 3*time.Second); res.StatusCode != 200 || res.CSeq().MethodName != sipmsg.REGISTER {
		t.Fatalf("REGISTER Expires: 0 answered %d %s", res.StatusCode, res.CSeq().MethodName)
	}
	can := leaving.next(sipmsg.CANCEL, 3*time.Second)
	leaving.respond(can, 200, "OK")
	leaving.respond(li, 487, "Request Terminated")
	leaving.next(sipmsg.ACK, 3*time.Second)
	if n := staying.count(sipmsg.CANCEL); n != 0 {
		t.Fatalf("the client still logged in got %d CANCELs", n)
	}
	staying.respondDialog(si, 200, "answer")
	staying.nextOn(sipmsg.ACK, "answer", 3*time.Second)
	r := <-done
	if r.err != nil || r.res.StatusCode != 200 {
		t.Fatalf("call: %v (response %v)", r.err, r.res)
	}
	if err := r.dlg.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	bye := staying.nextOn(sipmsg.BYE, "answer", 3*time.Second)
	staying.respond(bye, 200, "OK")
	waitIdle(t, e)
}
