package e2e

import (
	"testing"
)

// TestPRACK: a SIPp terminal that requires 100rel sends its 183 reliably
// with early media. A caller that offers 100rel gets the 183 reliably and
// PRACKs it; one that does not gets it as an ordinary 183 and the B2BUA
// PRACKs the terminal itself; each scenario checks its own side (RSeq,
// RAck, which 200 carries the answer). Both get the proxy's address in the
// 183, and the terminal's early RTP is relayed before the answer.
func TestPRACK(t *testing.T) {
	t.Parallel()
	tests := []struct{ caller string }{
		{"caller_100rel.xml"},
		{"caller_no_100rel.xml"},
	}
	for _, tt := range tests {
		t.Run(tt.caller, func(t *testing.T) {
			t.Parallel()
			n := provision(t)
			// 1.5 s of early media: 75 packets of 20 ms before the 200.
			term := startSipp(t, sippRun{name: "terminal_183_reliable", scenario: "terminal_183_reliable.xml", media: true, args: []string{"-d", "1500"}})
			n.serve(serveOpts{subscribers: []subscriber{online(bobIMSI, term.port)}})
			caller := startSipp(t, sippRun{name: tt.caller, scenario: tt.caller, media: true, args: []string{
				"-s", "bob", "-key", "caller", "alice", "-key", "domain", domain,
				"-au", "alice", "-ap", "secret", n.sipAddr}})
			caller.wait()
			term.wait()
			ip, port := loggedAddr(t, caller, "early")
			if ip != "127.0.0.1" || port < n.rtpMin || port > n.rtpMax {
				t.Errorf("183 to the caller names %s port %d, want the proxy's 127.0.0.1 and a port in %d-%d", ip, port, n.rtpMin, n.rtpMax)
			}
			// The call lasts about 300 ms after the 200: at most some 20
			// packets of the terminal's could be relayed after it.
			if got := metric(t, n, "b2bua_rtp_packets_relayed_total"); got < 50 {
				t.Errorf("relayed %d RTP packets, want the terminal's early media (50 or more)", got)
			}
		})
	}
}
