package e2e

import (
	"strings"
	"testing"
)

// TestMessageText: alice sends bob a text MESSAGE; the B2BUA challenges
// her, then forwards it to bob's text-capable terminal at the address the
// SCP simulator gives, and relays the terminal's 200.
func TestMessageText(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	n.addUser("alice", "secret")
	n.addUser("bob", "secret")
	n.cli("", "terminal", "add", "--im", "bob", "--imsi", bobIMSI, "--kind", "legacy", "--caps", "audio,text", "--active")
	term := terminal(t, "terminal_message.xml")
	n.serve(serveOpts{subscribers: []subscriber{online(bobIMSI, term.port)}})
	startSipp(t, sippRun{name: "message_text", scenario: "message_text.xml", args: []string{
		"-s", "bob",
		"-key", "caller", "alice",
		"-key", "domain", domain,
		"-au", "alice", "-ap", "secret",
		"-auth_uri", "bob@" + domain,
		n.sipAddr}}).wait()
	term.wait()
	if got := term.actions(); !strings.Contains(got, "MESSAGE text: Hello from SIPp, are you there?") {
		t.Errorf("terminal log actions:\n%s\n%s", got, term.logs())
	}
}
