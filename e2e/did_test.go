package e2e

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imcall/b2bua/internal/testenv"
	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/rtpproxy"
)

// Number-to-user routing: a trunk (SIPp on a second loopback address, so
// that its source address is the trunk's) calls bob's number; bob is
// logged in on SIPp clients that REGISTER with +sip.instance.

const (
	trunkIP   = "127.0.0.2"
	bobNumber = "+15550001111"
	trunkPAI  = "+15557654321" // the calling number the trunk asserts
	// bobClient1 and bobClient2 are the instance IDs of bob's clients.
	bobClient1 = "00000000-0000-4000-8000-000000000001"
	bobClient2 = "00000000-0000-4000-8000-000000000002"
)

// provisionDID makes bob (password "secret") the owner of bobNumber with
// fallback ("none" or "terminal"), and a trunk "carrier" at trunkIP that
// sends national numbers of country 1.
func provisionDID(t *testing.T, fallback string) *node {
	t.Helper()
	n := newNode(t)
	n.addUser("alice", "secret")
	n.addUser("bob", "secret")
	n.cli("", "trunk", "add", "carrier", "--cidr", trunkIP+"/32", "--country-code", "1", "--identity", "pai")
	n.cli("", "did", "add", bobNumber, "--im", "bob", "--fallback", fallback)
	return n
}

// login registers one of bob's clients from port; more are SIPp flags.
func (n *node) login(port int, instance, sf string, more ...string) *sipp {
	n.t.Helper()
	args := []string{"-key", "user", "bob", "-key", "domain", domain, "-key", "instance", instance,
		"-au", "bob", "-ap", "secret"}
	args = append(append(args, more...), n.sipAddr)
	return runSipp(n.t, strings.TrimSuffix(sf, ".xml")+"-"+strconv.Itoa(port), port, sf, args...)
}

// trunkCall places a call from the trunk's address to ruri.
func (n *node) trunkCall(sf, ruri string) *sipp {
	n.t.Helper()
	// A second -i wins over startSipp's 127.0.0.1: the trunk's address.
	return runSipp(n.t, strings.TrimSuffix(sf, ".xml"), 0, sf,
		"-i", trunkIP, "-key", "ruri", ruri, "-key", "pai", trunkPAI, n.sipAddr)
}

// client starts a SIPp client scenario on port, where a login registered.
func client(t *testing.T, sf string, port int) *sipp {
	t.Helper()
	s := runSipp(t, strings.TrimSuffix(sf, ".xml")+"-"+strconv.Itoa(port), port, sf)
	s.waitBound()
	return s
}

func requirePCAP(t *testing.T) {
	t.Helper()
	testenv.NeedFile(t, g711aPCAP, "SIPp's G.711 pcap (apt-get install sip-tester)")
}

// requireTwoWayRTP reads the answered call's record and requires that
// the relay took RTP from the trunk's leg and from the winning leg.
func (n *node) requireTwoWayRTP(winner string) registry.CallRecord {
	n.t.Helper()
	rec := n.lastCall(func(r registry.CallRecord) bool { return !r.EndedAt.IsZero() })
	if rec.AnsweredAt.IsZero() || rec.Callee != "bob" {
		n.t.Errorf("call record %+v: want an answered call to bob", rec)
	}
	var legs []rtpproxy.LegStats
	if err := json.Unmarshal([]byte(rec.Stats), &legs); err != nil {
		n.t.Fatalf("call record media stats %q: %v", rec.Stats, err)
	}
	got := map[string]uint64{}
	for _, l := range legs {
		got[string(l.Leg)] = l.Packets
	}
	// g711a.pcap holds a few seconds of 20 ms packets; the call lasts
	// 2.5 s from the trunk's ACK.
	for _, leg := range []string{"uas-1", winner} {
		if got[leg] < 50 {
			n.t.Errorf("RTP from leg %s: %d packets, want at least 50 (both ways); stats %s", leg, got[leg], rec.Stats)
		}
	}
	return rec
}

// TestDIDAnswered: a trunk call to bob's number, in every format a trunk
// sends, rings the client bob is logged in on; it answers, and RTP flows
// both ways through the proxy.
func TestDIDAnswered(t *testing.T) {
	t.Parallel()
	requirePCAP(t)
	tests := []struct{ name, ruri string }{
		{"E.164 user=phone", "sip:+15550001111@" + domain + ";user=phone"},
		{"international without +", "sip:15550001111@" + domain},
		{"national", "sip:5550001111@" + domain},
		{"tel URI", "tel:+1-555-000-1111"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n := provisionDID(t, "none")
			n.serve(serveOpts{})
			port := pickPort(t)
			n.login(port, bobClient1, "client_register.xml").wait()
			c := client(t, "client_answer.xml", port)
			n.trunkCall("trunk_call.xml", tt.ruri).wait()
			c.wait()
			n.requireTwoWayRTP("uac-1")
		})
	}
}

// TestDIDForked: bob is logged in on two clients; both ring, the first to
// answer takes the call and the other is CANCELed with Reason
// SIP;cause=200 "Call completed elsewhere".
func TestDIDForked(t *testing.T) {
	t.Parallel()
	requirePCAP(t)
	n := provisionDID(t, "none")
	n.serve(serveOpts{})
	p1, p2 := pickPort(t), pickPort(t)
	n.login(p1, bobClient1, "client_register.xml").wait()
	n.login(p2, bobClient2, "client_register.xml").wait()
	answers := client(t, "client_answer.xml", p1)
	rings := client(t, "client_ring_elsewhere.xml", p2)
	n.trunkCall("trunk_call.xml", "sip:"+bobNumber+"@"+domain+";user=phone").wait()
	answers.wait()
	rings.wait()
	// Bindings are newest first: p2's client is uac-1, p1's uac-2.
	n.requireTwoWayRTP("uac-2")
}

// TestDIDNobodyLoggedIn: with no client logged in the trunk gets 480 with
// cause 20, the call is recorded as missed, and bob's next login receives
// the missed-call notice.
func TestDIDNobodyLoggedIn(t *testing.T) {
	t.Parallel()
	n := provisionDID(t, "none")
	n.serve(serveOpts{})
	n.trunkCall("trunk_not_logged_in.xml", "sip:"+bobNumber+"@"+domain+";user=phone").wait()
	rec := n.lastCall(func(r registry.CallRecord) bool { return !r.EndedAt.IsZero() })
	if rec.Callee != "bob" || !rec.AnsweredAt.IsZero() || !strings.HasPrefix(rec.EndCause, "480 user not logged in") {
		t.Errorf("call record %+v: want bob's unanswered call ended by 480 user not logged in", rec)
	}
	login := n.login(pickPort(t), bobClient1, "client_register_notice.xml", "-oocsf", scenario("missed_call_notice.xml"))
	login.wait()
	want := "IM notice: Missed call from " + trunkPAI + " to " + bobNumber + " at "
	if got := login.actions(); !strings.Contains(got, want) {
		t.Errorf("bob's login got no missed-call notice %q; its log actions:\n%s\n%s", want, got, login.logs())
	}
}

// TestDIDFallbackTerminal: a DID with --fallback terminal reaches bob's
// active legacy terminal through the SCP when no client is logged in.
func TestDIDFallbackTerminal(t *testing.T) {
	t.Parallel()
	requirePCAP(t)
	n := provisionDID(t, "terminal")
	n.addTerminal("bob", bobIMSI, "legacy", true)
	port := pickPort(t)
	n.serve(serveOpts{subscribers: []subscriber{online(bobIMSI, port)}})
	term := client(t, "client_answer.xml", port)
	n.trunkCall("trunk_call.xml", "sip:"+bobNumber+"@"+domain+";user=phone").wait()
	term.wait()
	rec := n.requireTwoWayRTP("uac-1")
	if !strings.HasPrefix(rec.SCPOutcome, "online ") {
		t.Errorf("call record SCP outcome %q, want the SCP's online answer", rec.SCPOutcome)
	}
}

// TestDIDUnknown: a number nobody owns gets 404 with cause 1, unchallenged.
func TestDIDUnknown(t *testing.T) {
	t.Parallel()
	n := provisionDID(t, "none")
	n.serve(serveOpts{})
	n.trunkCall("trunk_unknown_did.xml", "sip:+15550009999@"+domain+";user=phone").wait()
}

// TestDIDFromNonTrunk: the same number called from an address that is no
// trunk's is challenged like any caller; alice authenticates and the call
// reaches bob's client.
func TestDIDFromNonTrunk(t *testing.T) {
	t.Parallel()
	n := provisionDID(t, "none")
	n.serve(serveOpts{})
	port := pickPort(t)
	n.login(port, bobClient1, "client_register.xml").wait()
	c := client(t, "terminal_answer.xml", port)
	// caller_call_bye.xml requires the 407 before it sends credentials.
	n.call("caller_call_bye.xml", "alice", "secret", bobNumber).wait()
	c.wait()
}

// TestDIDLoginEndsWithFlow: a client logged in over TCP with reg-id (RFC
// 5626) is listed while its connection lives and not once SIPp has left
// and its connection closed.
func TestDIDLoginEndsWithFlow(t *testing.T) {
	t.Parallel()
	n := provisionDID(t, "none")
	n.serve(serveOpts{})
	port := pickPort(t)
	login := n.login(port, bobClient1, "client_register_tcp.xml", "-t", "t1")
	var out string
	listed := func() bool {
		out = n.cli("", "client", "list", "--im", "bob")
		return strings.Contains(out, bobClient1)
	}
	// The scenario stays on its flow for 6 s after its 200.
	for deadline := time.Now().Add(5 * time.Second); !listed(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the TCP login is not listed while its flow lives:\n%s\n%s", out, login.logs())
		}
	}
	login.wait()
	for deadline := time.Now().Add(5 * time.Second); listed(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the login outlived its TCP flow:\n%s", n.cli("", "client", "list", "--im", "bob"))
		}
	}
}

// TestDIDReRegistered: a client that logs in again from a new port (the
// same +sip.instance) is rung there on the next call.
func TestDIDReRegistered(t *testing.T) {
	t.Parallel()
	n := provisionDID(t, "none")
	n.serve(serveOpts{})
	old, moved := pickPort(t), pickPort(t)
	n.login(old, bobClient1, "client_register.xml").wait()
	n.login(moved, bobClient1, "client_register.xml").wait()
	if out := n.cli("", "client", "list", "--im", "bob"); strings.Contains(out, ":"+strconv.Itoa(old)) || !strings.Contains(out, ":"+strconv.Itoa(moved)) {
		t.Errorf("client list after the move, want only port %d:\n%s", moved, out)
	}
	c := client(t, "client_answer.xml", moved)
	n.trunkCall("trunk_call.xml", "sip:"+bobNumber+"@"+domain+";user=phone").wait()
	c.wait()
}
