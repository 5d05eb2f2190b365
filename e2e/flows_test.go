package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// IMSIs of the provisioned terminals.
const (
	bobIMSI   = "001010000000001"
	carolIMSI = "001010000000002"
)

// provision makes alice (the caller) and bob (the callee, with an active
// legacy terminal), both with password "secret".
func provision(t *testing.T) *node {
	t.Helper()
	n := newNode(t)
	n.addUser("alice", "secret")
	n.addUser("bob", "secret")
	n.addTerminal("bob", bobIMSI, "legacy", true)
	return n
}

// online says the SCP finds imsi online at the terminal on port.
func online(imsi string, port int) subscriber {
	return subscriber{IMSI: imsi, Addr: "127.0.0.1:" + strconv.Itoa(port), State: "online"}
}

func TestOptionsProbe(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	n.serve(serveOpts{})
	startSipp(t, sippRun{name: "options", scenario: "options_probe.xml", args: []string{"-key", "domain", domain, n.sipAddr}}).wait()
}

// TestAnsweredCalls: a call the terminal answers, ended by either side,
// and one put on hold and resumed in between.
func TestAnsweredCalls(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, caller, terminal string
	}{
		{"caller hangs up", "caller_call_bye.xml", "terminal_answer.xml"},
		{"callee hangs up", "caller_call_wait_bye.xml", "terminal_answer_bye.xml"},
		{"hold and resume", "caller_hold_resume.xml", "terminal_hold_resume.xml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n := provision(t)
			term := terminal(t, tt.terminal)
			n.serve(serveOpts{subscribers: []subscriber{online(bobIMSI, term.port)}})
			n.call(tt.caller, "alice", "secret", "bob").wait()
			term.wait()
		})
	}
}

// TestCancelWhileRinging: the caller CANCELs; the terminal is CANCELed too.
func TestCancelWhileRinging(t *testing.T) {
	t.Parallel()
	n := provision(t)
	term := terminal(t, "terminal_ring_cancel.xml")
	n.serve(serveOpts{subscribers: []subscriber{online(bobIMSI, term.port)}})
	n.call("caller_cancel.xml", "alice", "secret", "bob").wait()
	term.wait()
}

// TestRingTimeout: nobody answers; at the ring timeout the B2BUA CANCELs
// the terminal and answers the caller 480, then sends the IM notice.
func TestRingTimeout(t *testing.T) {
	t.Parallel()
	n := provision(t)
	term := terminal(t, "terminal_ring_cancel.xml")
	n.serve(serveOpts{subscribers: []subscriber{online(bobIMSI, term.port)}, ringTimeout: 2 * time.Second})
	caller := n.call("caller_ring_timeout.xml", "alice", "secret", "bob")
	caller.wait()
	term.wait()
	requireNotice(t, caller, "bob")
}

// TestUnreachable: every way a call fails before any terminal rings gives
// its SIP answer and Q.850 cause (checked by the scenario) and an IM notice.
func TestUnreachable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		scenario string
		callee   string
		setup    func(t *testing.T, n *node) serveOpts
	}{
		{"busy", "caller_busy.xml", "bob", func(t *testing.T, n *node) serveOpts {
			return serveOpts{subscribers: []subscriber{{IMSI: bobIMSI, Addr: "127.0.0.1:9", State: "busy"}}}
		}},
		{"absent", "caller_absent.xml", "bob", func(t *testing.T, n *node) serveOpts {
			return serveOpts{subscribers: []subscriber{{IMSI: bobIMSI, State: "absent"}}}
		}},
		{"unknown user", "caller_unknown_user.xml", "nobody", func(t *testing.T, n *node) serveOpts {
			return serveOpts{}
		}},
		{"no active terminal", "caller_no_terminal.xml", "carol", func(t *testing.T, n *node) serveOpts {
			n.addUser("carol", "secret")
			n.addTerminal("carol", carolIMSI, "legacy", false)
			return serveOpts{}
		}},
		{"SCP down", "caller_scp_down.xml", "bob", func(t *testing.T, n *node) serveOpts {
			return serveOpts{scp: "http://127.0.0.1:" + strconv.Itoa(closedPort(t))}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n := provision(t)
			n.serve(tt.setup(t, n))
			caller := n.call(tt.scenario, "alice", "secret", tt.callee)
			caller.wait()
			requireNotice(t, caller, tt.callee)
		})
	}
}

// TestWrongCredentials: a wrong password and an unknown user both get a
// fresh 407, never the call.
func TestWrongCredentials(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, user, password string }{
		{"wrong password", "alice", "not-the-password"},
		{"unknown user", "mallory", "secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n := provision(t)
			// bob's terminal is never called: the port is one where
			// nothing listens.
			n.serve(serveOpts{subscribers: []subscriber{online(bobIMSI, closedPort(t))}})
			n.call("caller_wrong_password.xml", tt.user, tt.password, "bob").wait()
		})
	}
}

// TestRegisteredSmartTerminal: a smart terminal REGISTERs with digest
// authentication; a call to its user then reaches the registered Contact.
func TestRegisteredSmartTerminal(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	n.addUser("alice", "secret")
	n.addUser("bob", "secret")
	n.addTerminal("bob", "001010000000009", "smart", true)
	n.serve(serveOpts{})
	reg := startSipp(t, sippRun{name: "register", scenario: "register.xml", args: []string{
		"-key", "user", "bob", "-key", "domain", domain,
		"-au", "bob", "-ap", "secret",
		n.sipAddr}})
	reg.wait()
	// The terminal answers where it registered: the port SIPp just left.
	term := terminalOn(t, "terminal_answer.xml", reg.port)
	n.call("caller_call_bye.xml", "alice", "secret", "bob").wait()
	term.wait()
}

// requireNotice checks that the caller's out-of-call scenario received the
// IM notice about callee.
func requireNotice(t *testing.T, caller *sipp, callee string) {
	t.Helper()
	got := caller.actions()
	if !strings.Contains(got, "IM notice: "+callee+" could not be reached") {
		t.Errorf("caller got no IM notice about %s; its log actions:\n%s\n%s", callee, got, caller.logs())
	}
}
