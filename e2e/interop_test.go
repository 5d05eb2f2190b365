package e2e

import (
	"testing"
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
			port := freePort(t)
			reg := []string{"-key", "user", "bob", "-key", "domain", domain, "-au", "bob", "-ap", "bob-secret"}
			call := []string{"-s", "bob", "-key", "caller", "alice", "-key", "domain", domain, "-au", "alice", "-ap", "secret"}
			if tt.authURI {
				reg = append(reg, "-auth_uri", domain)
				call = append(call, "-auth_uri", "bob@"+domain)
			}
			startSipp(t, "register", port, "register.xml", append(reg, n.sipAddr)...).wait()
			term := terminal(t, "terminal_answer.xml", port)
			startSipp(t, "caller", 0, "caller_call_bye.xml", append(call, n.sipAddr)...).wait()
			term.wait()
		})
	}
}
