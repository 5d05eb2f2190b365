package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imcall/b2bua/registry"
)

// TestSIPpStandardAuthentication: with serve's default flags, SIPp's own
// [authentication] keyword authenticates a REGISTER and an INVITE, with
// and without -auth_uri. Without it SIPp 3.6 puts sip:REMOTE_IP:REMOTE_PORT
// in the digest uri, while the Request-URI names the domain.
func TestSIPpStandardAuthentication(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		authURI bool
	}{
		{"without -auth_uri", false},
		{"with -auth_uri", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n := newNode(t)
			n.addUser("alice", "secret")
			n.addUser("bob", "bob-secret")
			n.addTerminal("bob", "001010000000009", "smart", true)
			n.serve(serveOpts{})
			port := pickPort(t)
			reg := []string{"-key", "user", "bob", "-key", "domain", domain, "-au", "bob", "-ap", "bob-secret"}
			call := []string{"-s", "bob", "-key", "caller", "alice", "-key", "domain", domain, "-au", "alice", "-ap", "secret"}
			if tt.authURI {
				reg = append(reg, "-auth_uri", domain)
				call = append(call, "-auth_uri", "bob@"+domain)
			}
			runSipp(t, "register", port, "register.xml", append(reg, n.sipAddr)...).wait()
			term := terminalOn(t, "terminal_answer.xml", port)
			runSipp(t, "caller", 0, "caller_call_bye.xml", append(call, n.sipAddr)...).wait()
			term.wait()
		})
	}
}

// interopNode is a node with alice and bob (bob: a smart terminal), run
// with serve's default flags but for the RTP port range, taken free so
// that parallel tests do not collide, and extra.
func interopNode(t *testing.T, extra ...string) *node {
	t.Helper()
	n := newNode(t)
	n.addUser("alice", "alice-secret")
	n.addUser("bob", "bob-secret")
	n.addTerminal("bob", "001010000000009", "smart", true)
	rtp := freeRange(t, 40)
	n.serve(serveOpts{extra: append([]string{"--rtp-ports", strconv.Itoa(rtp) + "-" + strconv.Itoa(rtp+39)}, extra...)})
	return n
}

// answeredCall is the node's newest call record once it is answered and
// over.
func (n *node) answeredCall() registry.CallRecord {
	return n.lastCall(func(r registry.CallRecord) bool { return !r.AnsweredAt.IsZero() && !r.EndedAt.IsZero() })
}

// TestBaresip: baresip 1.0 on its own defaults registers as bob's smart
// terminal and answers; another baresip, alice, calls bob; the call
// carries audio both ways through the RTP proxy and alice hangs up.
func TestBaresip(t *testing.T) {
	t.Parallel()
	n := interopNode(t)
	bob := baresipPeer(t, n, "bob", "bob-secret", true, "-t", "30")
	bob.waitFor("bob@"+domain+": {0/UDP/v4} 200 OK", 10*time.Second)
	alice := baresipPeer(t, n, "alice", "alice-secret", false, "-t", "8", "-e", "/dial sip:bob@"+domain)
	alice.waitFor("Call established: sip:bob@"+domain, 8*time.Second)
	alice.waitExit(15 * time.Second)
	rec := n.answeredCall()
	if rec.EndCause != "caller BYE" || rec.Callee != "bob" || !strings.Contains(rec.Caller, "alice@") {
		t.Errorf("call record %+v, want alice to bob ended by caller BYE", rec)
	}
	requireTwoWayRTP(t, rec, 100)
}

// TestLinphone: linphonec on its own defaults registers as bob's smart
// terminal and answers a call from baresip, and calls baresip as alice;
// both calls carry audio both ways through the RTP proxy.
func TestLinphone(t *testing.T) {
	t.Parallel()
	t.Run("registers and answers", func(t *testing.T) {
		t.Parallel()
		n := interopNode(t)
		bob := linphonePeer(t, n, "bob", "bob-secret", true)
		bob.poll("status register", "registered, identity=sip:bob@"+domain, 10*time.Second)
		alice := baresipPeer(t, n, "alice", "alice-secret", false, "-t", "8", "-e", "/dial sip:bob@"+domain)
		alice.waitFor("Call established: sip:bob@"+domain, 8*time.Second)
		bob.waitFor("connected", 5*time.Second)
		alice.waitExit(15 * time.Second)
		rec := n.answeredCall()
		if rec.EndCause != "caller BYE" || rec.Callee != "bob" {
			t.Errorf("call record %+v, want alice to bob ended by caller BYE", rec)
		}
		requireTwoWayRTP(t, rec, 100)
	})
	t.Run("calls", func(t *testing.T) {
		t.Parallel()
		n := interopNode(t)
		bob := baresipPeer(t, n, "bob", "bob-secret", true, "-t", "30")
		bob.waitFor("bob@"+domain+": {0/UDP/v4} 200 OK", 10*time.Second)
		alice := linphonePeer(t, n, "alice", "alice-secret", false)
		alice.send("call sip:bob@" + domain)
		alice.waitFor("connected", 10*time.Second)
		// Hang up once the relay has carried audio both ways (at least
		// 100 packets from each party; 300 in all leaves room for one side
		// starting late).
		n.waitRelayed(300, 15*time.Second)
		alice.send("terminate")
		alice.waitFor("ended", 5*time.Second)
		rec := n.answeredCall()
		if rec.EndCause != "caller BYE" || rec.Callee != "bob" || !strings.Contains(rec.Caller, "alice@") {
			t.Errorf("call record %+v, want alice to bob ended by caller BYE", rec)
		}
		requireTwoWayRTP(t, rec, 100)
	})
	// linphone answers the first challenge it supports (RFC 8760 §2.4), so
	// it can be offered SHA-256 first, or alone.
	for _, algs := range []string{"SHA-256,MD5", "SHA-256"} {
		t.Run("registers with "+algs, func(t *testing.T) {
			t.Parallel()
			n := interopNode(t, "--digest-algorithms", algs)
			bob := linphonePeer(t, n, "bob", "bob-secret", true)
			bob.poll("status register", "registered, identity=sip:bob@"+domain, 10*time.Second)
		})
	}
}
