package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// kamailioProxy runs Kamailio with testdata/kamailio/kamailio.cfg on
// listen, dispatching to the node, and waits until it probes the node.
func kamailioProxy(t *testing.T, n *node, listen string) *peer {
	t.Helper()
	bin := requireTool(t, "kamailio", "kamailio")
	dir := t.TempDir()
	list := filepath.Join(dir, "dispatcher.list")
	if err := os.WriteFile(list, []byte("1 sip:"+n.sipAddr+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tmpl, err := os.ReadFile(filepath.Join("..", "testdata", "kamailio", "kamailio.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.NewReplacer("{{LISTEN}}", listen, "{{DISPATCHER_LIST}}", list).Replace(string(tmpl))
	cfgPath := filepath.Join(dir, "kamailio.cfg")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	// -DD: in the foreground with its children; -E: log to stderr; its
	// runtime files in the test's directory.
	cmd := exec.Command(bin, "-f", cfgPath, "-DD", "-E", "-Y", dir, "-m", "64", "-M", "8")
	k := startPeer(t, "kamailio", cmd, false)
	// The last line of its start: the UDP socket is ready.
	k.waitFor("SO_RCVBUF is finally", 10*time.Second)
	return k
}

// TestKamailioLockoutPerCaller: a caller behind Kamailio that guesses
// alice's password past the lock-out cannot lock alice out: alice, behind
// the same Kamailio at another address, still authenticates and calls bob,
// because serve --proxies limits each caller by the address Kamailio
// forwards in the bottom Via.
func TestKamailioLockoutPerCaller(t *testing.T) {
	t.Parallel()
	n := provision(t)
	port := pickPort(t)
	kport := pickPort(t)
	kaddr := "127.0.0.4:" + strconv.Itoa(kport)
	n.serve(serveOpts{subscribers: []subscriber{online(bobIMSI, port)}, extra: []string{"--proxies", "127.0.0.4"}})
	kamailioProxy(t, n, kaddr)
	// serve's default lock-out: 10 failures for one user name from one
	// source (from the 11th on the guesser gets 403, which this scenario
	// does not expect).
	for i := 0; i < 10; i++ {
		runSipp(t, "guess"+strconv.Itoa(i), 0, "caller_wrong_password.xml",
			"-i", "127.0.0.2",
			"-s", "bob", "-key", "caller", "alice", "-key", "domain", domain,
			"-au", "alice", "-ap", "guess", "-auth_uri", "bob@"+domain,
			kaddr).wait()
	}
	term := terminalOn(t, "terminal_answer.xml", port)
	// Through a proxy SIPp's default digest uri names the proxy, so the
	// caller names the target as the clients behind proxies do.
	runSipp(t, "alice", 0, "caller_call_bye.xml",
		"-i", "127.0.0.3",
		"-s", "bob", "-key", "caller", "alice", "-key", "domain", domain,
		"-au", "alice", "-ap", "secret", "-auth_uri", "bob@"+domain,
		"-oocsf", scenario("notice.xml"),
		kaddr).wait()
	term.wait()
}
