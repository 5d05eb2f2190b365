package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// kamailio is a running Kamailio in front of nodes.
type kamailio struct {
	*peer
	ctl   string   // kamcmd's control socket
	node  string   // the first node's URI in its dispatcher list
	nodes []string // every node's URI
}

// kamailioProxy runs Kamailio with testdata/kamailio/kamailio.cfg on
// listen, dispatching to the node, and waits until its OPTIONS probes
// have marked the node up.
func kamailioProxy(t *testing.T, n *node, listen string) *kamailio {
	t.Helper()
	return kamailioFront(t, "kamailio.cfg", []*node{n}, listen)
}

// kamailioFront runs Kamailio with the configuration cfgName of
// testdata/kamailio on listen, dispatching to nodes (set 1), and waits
// until its OPTIONS probes have marked every node up.
func kamailioFront(t *testing.T, cfgName string, nodes []*node, listen string) *kamailio {
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
	k := &kamailio{ctl: filepath.Join(ctlDir, "ctl")}
	var lines strings.Builder
	for _, n := range nodes {
		k.nodes = append(k.nodes, "sip:"+n.sipAddr)
		// Flags 9: inactive and probing, so that only an answered
		// OPTIONS probe can make the node active.
		lines.WriteString("1 sip:" + n.sipAddr + " 9\n")
	}
	k.node = k.nodes[0]
	list := filepath.Join(dir, "dispatcher.list")
	if err := os.WriteFile(list, []byte(lines.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	tmpl, err := os.ReadFile(filepath.Join("..", "testdata", "kamailio", cfgName))
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
	for _, uri := range k.nodes {
		k.waitNodeFlags(t, uri, "AP", 10*time.Second)
	}
	return k
}

// dsFlags matches one destination of kamcmd dispatcher.list.
var dsFlags = regexp.MustCompile(`URI: (\S+)\s+FLAGS: (\w+)`)

// flags are the node's dispatcher flags now (A active, I inactive,
// D disabled, P probing), from kamcmd dispatcher.list.
func (k *kamailio) flags(t *testing.T) string { t.Helper(); return k.flagsOf(t, k.node) }

// flagsOf are the dispatcher flags of the node at uri now.
func (k *kamailio) flagsOf(t *testing.T, uri string) string {
	t.Helper()
	out, err := exec.Command("kamcmd", "-s", "unix:"+k.ctl, "dispatcher.list").CombinedOutput()
	if err != nil {
		// The control socket is not up yet, or Kamailio died: the caller's
		// deadline decides.
		return "kamcmd: " + err.Error() + ": " + strings.TrimSpace(string(out))
	}
	for _, m := range dsFlags.FindAllStringSubmatch(string(out), -1) {
		if m[1] == uri {
			return m[2]
		}
	}
	t.Fatalf("kamcmd dispatcher.list does not list %s:\n%s", uri, out)
	return ""
}

// waitFlags waits until the dispatcher shows the node with flags want.
func (k *kamailio) waitFlags(t *testing.T, want string, d time.Duration) {
	t.Helper()
	k.waitNodeFlags(t, k.node, want, d)
}

// waitNodeFlags waits until the dispatcher shows the node at uri with
// flags want.
func (k *kamailio) waitNodeFlags(t *testing.T, uri, want string, d time.Duration) {
	t.Helper()
	got := ""
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if got = k.flagsOf(t, uri); got == want {
			return
		}
	}
	t.Fatalf("Kamailio's dispatcher shows %s with flags %q after %v, want %q", uri, got, d, want)
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

// kamailioCall is alice's call to bob through Kamailio at kaddr, from
// 127.0.0.3, with the caller scenario sf and more SIPp flags.
func kamailioCall(t *testing.T, name, sf, kaddr string, args ...string) *sipp {
	t.Helper()
	full := append([]string{"-i", "127.0.0.3",
		"-s", "bob", "-key", "caller", "alice", "-key", "domain", domain,
		"-au", "alice", "-ap", "secret", "-auth_uri", "bob@" + domain,
		"-oocsf", scenario("notice.xml")}, args...)
	return runSipp(t, name, 0, sf, append(full, kaddr)...)
}

// TestKamailioRecordRoute: a call through Kamailio is record-routed by it,
// and the in-dialog BYE passes through Kamailio whichever side hangs up:
// the caller's BYE follows the Route set (Kamailio refuses an in-dialog
// request without its Route, RFC 3261 16.4 and 16.12), and the BYE the
// B2BUA relays from the terminal reaches the caller through Kamailio.
func TestKamailioRecordRoute(t *testing.T) {
	t.Parallel()
	n := provision(t)
	port := pickPort(t)
	kaddr := "127.0.0.4:" + strconv.Itoa(pickPort(t))
	n.serve(serveOpts{subscribers: []subscriber{online(bobIMSI, port)}, extra: []string{"--proxies", "127.0.0.4"}})
	kamailioProxy(t, n, kaddr)
	for _, tc := range []struct {
		name, caller, terminal string
	}{
		{"caller hangs up", "kamailio_caller_bye.xml", "terminal_answer.xml"},
		{"callee hangs up", "kamailio_caller_wait_bye.xml", "terminal_answer_bye.xml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			term := terminalOn(t, tc.terminal, port)
			kamailioCall(t, "alice", tc.caller, kaddr, "-d", "300").wait()
			term.wait()
		})
	}
}

// TestKamailioDrain: on SIGTERM the node answers Kamailio's OPTIONS probes
// 503, so the dispatcher marks it inactive, while the call it holds goes
// on: its BYE, through Kamailio, still completes, and only then does the
// node exit.
func TestKamailioDrain(t *testing.T) {
	t.Parallel()
	n := provision(t)
	port := pickPort(t)
	kaddr := "127.0.0.4:" + strconv.Itoa(pickPort(t))
	n.serve(serveOpts{subscribers: []subscriber{online(bobIMSI, port)}, extra: []string{"--proxies", "127.0.0.4"}})
	k := kamailioProxy(t, n, kaddr)
	term := terminalOn(t, "terminal_answer.xml", port)
	// Long enough for a few probes at Kamailio's 1 s interval.
	caller := kamailioCall(t, "alice", "kamailio_caller_bye.xml", kaddr, "-d", "6000")
	logPath := filepath.Join(n.dir, "b2bua.log")
	waitLog(t, logPath, "call answered", 1, 10*time.Second)
	if err := n.proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitLog(t, logPath, "shutting down", 1, 5*time.Second)
	k.waitFlags(t, "IP", 5*time.Second)
	select {
	case <-caller.exited:
		t.Fatalf("the call ended before the dispatcher marked the node down:\n%s", caller.screen())
	default:
	}
	caller.wait()
	term.wait()
	// The drain ends with the last call.
	for deadline := time.Now().Add(5 * time.Second); n.proc.Signal(syscall.Signal(0)) == nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("b2bua still running 5s after its last call ended")
		}
	}
}
