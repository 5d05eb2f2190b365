package e2e

import (
	"testing"
	"time"
)

// TestSessionTimers: RFC 4028 on the wire, each leg on its own, against
// b2bua serve. 422: the caller asking for less than the default Min-SE
// (90 s) gets 422 and asks again; the terminal answering our INVITE with
// 422 gets it again with its Min-SE. The refresh cases need a session
// interval a test can wait for: --session-expires 4s with --min-se 2s,
// the documented test-only use of a Min-SE under RFC 4028's 90 s (the long
// intervals are tested on an injected clock in sip/sessiontimer_test.go).
// Refresh answered: at 2 s the caller gets a re-INVITE and the terminal an
// UPDATE, both answered, and the call goes on until the caller's BYE.
// Refresh not answered: the terminal ignores its UPDATE and at 4 s both
// legs get BYE with Reason: Q.850;cause=102. --max-call-duration 2s ends
// the call with BYE on both legs.
func TestSessionTimers(t *testing.T) {
	t.Parallel()
	short := []string{"--session-expires", "4s", "--min-se", "2s"}
	tests := []struct {
		name, caller, terminal string
		extra                  []string
	}{
		{"422 and Min-SE", "caller_session_422.xml", "terminal_session_422.xml", nil},
		{"refresh answered", "caller_session_refresh.xml", "terminal_session_refresh.xml", short},
		{"refresh not answered", "caller_session_expired.xml", "terminal_session_no_refresh.xml", short},
		{"max call duration", "caller_max_duration.xml", "terminal_answer.xml", []string{"--max-call-duration", "2s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n := provision(t)
			term := terminal(t, tt.terminal)
			n.serve(serveOpts{subscribers: []subscriber{online(bobIMSI, term.port)}, extra: tt.extra})
			start := time.Now()
			n.call(tt.caller, "alice", "secret", "bob").wait()
			term.wait()
			if tt.name == "max call duration" && time.Since(start) < 2*time.Second {
				t.Errorf("call ended %v after it started, want 2s or later", time.Since(start))
			}
		})
	}
}
