package e2e

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestDelayedOffer: a SIPp caller sends its INVITE without SDP; the SIPp
// terminal gets an INVITE without SDP, offers in its 200, and gets the
// caller's answer in the B2BUA's ACK. Anchored (the default), each side
// sees the proxy's address; with --media passthrough, each sees the other's.
func TestDelayedOffer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		anchored bool
		extra    []string
	}{
		{"anchored", true, nil},
		{"passthrough", false, []string{"--media", "passthrough"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n := provision(t)
			term := startSipp(t, sippRun{name: "terminal_delayed_offer", scenario: "terminal_delayed_offer.xml", media: true})
			n.serve(serveOpts{subscribers: []subscriber{online(bobIMSI, term.port)}, extra: tt.extra})
			caller := n.callWithMedia("caller_delayed_offer.xml")
			termMP, callerMP := term.mediaPort, caller.mediaPort
			caller.wait()
			term.wait()

			offerIP, offerPort := loggedAddr(t, caller, "offer")
			answerIP, answerPort := loggedAddr(t, term, "answer")
			if offerIP != "127.0.0.1" || answerIP != "127.0.0.1" {
				t.Errorf("SDP addresses %s (offer to the caller) and %s (answer to the terminal), want 127.0.0.1", offerIP, answerIP)
			}
			inRange := func(p int) bool { return p >= n.rtpMin && p <= n.rtpMax }
			switch {
			case tt.anchored && (!inRange(offerPort) || !inRange(answerPort)):
				t.Errorf("offer to the caller names port %d, answer to the terminal %d; want ports of the proxy (%d-%d)", offerPort, answerPort, n.rtpMin, n.rtpMax)
			case !tt.anchored && (offerPort != termMP || answerPort != callerMP):
				t.Errorf("offer to the caller names port %d, answer to the terminal %d; want the terminal's %d and the caller's %d", offerPort, answerPort, termMP, callerMP)
			}
		})
	}
}

// loggedAddr reads the "WHAT IP PORT" line a scenario's <log> action wrote.
func loggedAddr(t *testing.T, s *sipp, what string) (string, int) {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + what + ` (\S+) (\d+)\s*$`).FindStringSubmatch(s.actions())
	if m == nil {
		t.Fatalf("sipp %s logged no %q line:\n%s", s.name, what, strings.TrimSpace(s.actions()))
	}
	p, _ := strconv.Atoi(m[2])
	return m[1], p
}
