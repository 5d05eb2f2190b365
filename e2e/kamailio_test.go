package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// kamailio is a running Kamailio in front of one node.
type kamailio struct {
	*peer
	ctl  string // kamcmd's control socket
	node string // the node's URI in its dispatcher list
}

// kamailioProxy runs Kamailio with testdata/kamailio/kamailio.cfg on
// listen, dispatching to the node, and waits until its OPTIONS probes
// have marked the node up.
func kamailioProxy(t *testing.T, n *node, listen string) *kamailio {
	t.Helper()
	bin := requireTool(t, "kamailio", "kamailio")
	requireTool(t, "kamcmd", "kamailio")
	dir := t.TempDir()
	// A unix socket path must fit in 108 bytes; the test's directory may not.
	ctlDir, err := os.MkdirTemp("", "kam")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(ctlDir) })
	k := &kamailio{ctl: filepath.Join(ctlDir, "ctl"), node: "sip:" + n.sipAddr}
	list := filepath.Join(dir, "dispatcher.list")
	// Flags 9: inactive and probing, so that only an answered OPTIONS
	// probe can make the node active.
	if err := os.WriteFile(list, []byte("1 "+k.node+" 9\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tmpl, err := os.ReadFile(filepath.Join("..", "testdata", "kamailio", "kamailio.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.NewReplacer("{{LISTEN}}", listen, "{{DISPATCHER_LIST}}", list, "{{CTL}}", k.ctl).Replace(string(tmpl))
	cfgPath := filepath.Join(dir, "kamailio.cfg")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	// -DD: in the foreground with its children; -E: log to stderr; its
	// runtime files in the test's directory.
	cmd := exec.Command(bin, "-f", cfgPath, "-DD", "-E", "-Y", dir, "-m", "64", "-M", "8")
	k.peer = startPeer(t, "kamailio", cmd, false)
	// The last line of its start: the UDP socket is ready.
	k.waitFor("SO_RCVBUF is finally", 10*time.Second)
	k.waitFlags(t, "AP", 10*time.Second)
	return k
}

// dsFlags matches one destination of kamcmd dispatcher.list.
var dsFlags = regexp.MustCompile(`URI: (\S+)\s+FLAGS: (\w+)`)

// flags are the node's dispatcher flags now (A active, I inactive,
// D disabled, P probing), from kamcmd dispatcher.list.
func (k *kamailio) flags(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("kamcmd", "-s", "unix:"+k.ctl, "dispatcher.list").CombinedOutput()
	if err != nil {
		// The control socket is not up yet, or Kamailio died: the caller's
		// deadline decides.
		return "kamcmd: " + err.Error() + ": " + strings.TrimSpace(string(out))
	}
	for _, m := range dsFlags.FindAllStringSubmatch(string(out), -1) {
		if m[1] == k.node {
			return m[2]
		}
	}
	t.Fatalf("kamcmd dispatcher.list does not list %s:\n%s", k.node, out)
	return ""
}

// waitFlags waits until the dispatcher shows the node with flags want.
func (k *kamailio) waitFlags(t *testing.T, want string, d time.Duration) {
	t.Helper()
	got := ""
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if got = k.flags(t); got == want {
			return
		}
	}
	t.Fatalf("Kamailio's dispatcher shows %s with flags %q after %v, want %q", k.node, got, d, want)
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
