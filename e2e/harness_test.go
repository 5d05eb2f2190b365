// Package e2e drives the real b2bua binary with SIPp: the caller is a SIPp
// UAC that answers digest challenges, the terminal is a SIPp UAS at the
// address the in-process SCP simulator gives. The scenarios live in
// testdata/sipp/; each one asserts with SIPp's own checks (expected
// responses, regexp checks on Reason headers and bodies) and its exit code.
//
// SIPp must be installed (Debian: sip-tester). Without it the tests skip,
// except under CI=true, where they fail.
package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imcall/b2bua/internal/testenv"
)

const (
	domain = "im.example"
	// sippTimeout bounds one SIPp run (its -timeout); waitSlack is how much
	// longer the test waits for the process before killing it.
	sippTimeout = 30 * time.Second
	waitSlack   = 10 * time.Second
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	binDir    string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// b2buaBin builds ./cmd/b2bua once per test binary.
func b2buaBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "b2bua-e2e-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "b2bua")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/b2bua")
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/b2bua: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// scenario is the path of a SIPp scenario in testdata/sipp.
func scenario(name string) string {
	p, _ := filepath.Abs(filepath.Join("..", "testdata", "sipp", name))
	return p
}

// pickPort asks the kernel for a free UDP port on 127.0.0.1 and releases
// it, for SIPp, which cannot bind port 0 (its -p 0 means "search from
// 5060", and it tells the port it got only on its final screen). Another
// process may take the port before SIPp binds it; startSipp then sees
// SIPp fail with EADDRINUSE and starts it again on another port.
func pickPort(t *testing.T) int {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// subscriber is one entry of the SCP simulator's subscribers file.
type subscriber struct {
	IMSI  string `json:"imsi"`
	Addr  string `json:"addr,omitempty"`
	State string `json:"state"`
}

// node is one running b2bua with its own registry.
type node struct {
	t        *testing.T
	bin      string
	dir      string
	db       string
	sipAddr  string
	httpAddr string
	rtpMin   int // --rtp-ports, set by serve
	rtpMax   int
	log      *os.File
	proc     *os.Process // the latest serve
}

// newNode prepares a registry in a fresh directory; provision it with
// cli, then call serve.
func newNode(t *testing.T) *node {
	t.Helper()
	testenv.NeedTool(t, "sipp")
	dir := t.TempDir()
	return &node{t: t, bin: b2buaBin(t), dir: dir, db: filepath.Join(dir, "b2bua.db")}
}

// cli runs a b2bua administration command against the node's registry.
func (n *node) cli(stdin string, args ...string) string {
	n.t.Helper()
	full := append([]string{"--db", n.db, "--domain", domain}, args...)
	cmd := exec.Command(n.bin, full...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		n.t.Fatalf("b2bua %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// addUser creates an IM user with a password.
func (n *node) addUser(imID, password string) {
	n.t.Helper()
	n.cli(password+"\n", "user", "add", imID, "--password-stdin")
}

// addTerminal gives imID a terminal; kind is legacy or smart.
func (n *node) addTerminal(imID, imsi, kind string, active bool) {
	n.t.Helper()
	args := []string{"terminal", "add", "--im", imID, "--imsi", imsi, "--kind", kind}
	if active {
		args = append(args, "--active")
	}
	n.cli("", args...)
}

// serveOpts are the serve flags a test varies.
type serveOpts struct {
	subscribers []subscriber
	scp         string // "" : sim
	ringTimeout time.Duration
	calls       int      // calls up at once: media ports for them (0: 25)
	extra       []string // more serve flags
}

// serve starts `b2bua serve` and waits until /healthz says ready. It is
// stopped with SIGTERM when the test ends.
func (n *node) serve(o serveOpts) {
	t := n.t
	t.Helper()
	subs := filepath.Join(n.dir, "subscribers.json")
	if o.subscribers == nil {
		o.subscribers = []subscriber{}
	}
	b, _ := json.Marshal(o.subscribers)
	if err := os.WriteFile(subs, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if o.scp == "" {
		o.scp = "sim"
	}
	if o.ringTimeout == 0 {
		o.ringTimeout = 20 * time.Second
	}
	// Four media ports a call (RTP and RTCP on each side).
	n.rtpMin, n.rtpMax = rtpRange(t, (max(o.calls, 25)*4+99)/100)
	args := []string{"--db", n.db, "--domain", domain, "serve",
		"--sip-listen", "127.0.0.1:0",
		"--http-listen", "127.0.0.1:0",
		"--rtp-ports", fmt.Sprintf("%d-%d", n.rtpMin, n.rtpMax),
		"--scp", o.scp,
		"--scp-subscribers", subs,
		"--ring-timeout", o.ringTimeout.String(),
		"--log-level", "debug",
	}
	args = append(args, o.extra...)
	logf, err := os.Create(filepath.Join(n.dir, "b2bua.log"))
	if err != nil {
		t.Fatal(err)
	}
	n.log = logf
	cmd := exec.Command(n.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.proc = cmd.Process
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("b2bua did not stop within 5s of SIGTERM")
		}
		logf.Close()
		if t.Failed() {
			n.dumpLog()
		}
	})
	n.sipAddr, n.httpAddr = waitReadyLine(t, logf.Name(), exited)
	deadline := time.Now().Add(15 * time.Second)
	for {
		res, err := http.Get("http://" + n.httpAddr + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			n.dumpLog()
			t.Fatalf("b2bua not ready within 15s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var (
	rtpMu   sync.Mutex
	rtpUsed = map[int]bool{} // blocks given to a running node
)

// Media port blocks: 100 ports each, from 10000 up to below the kernel's
// ephemeral ports (32768 and up), where the port-0 listeners of these same
// tests land.
const (
	rtpLow    = 10000
	rtpBlocks = 227
)

// rtpRange gives a node n consecutive blocks of 100 media ports
// (--rtp-ports) of its own until the test ends. A range cannot be port 0, and every proxy walks
// its range from the bottom: nodes sharing one exhaust the proxy's 16 bind
// attempts once a dozen calls are up, and so does a range another program
// on the machine holds (a benchmark peer may hold thousands of ports). So
// the block is one no other node of this binary has, every port of it was
// free a moment ago, and the search starts at a random block; what
// another program binds later the proxy skips pair by pair.
func rtpRange(t *testing.T, n int) (lo, hi int) {
	t.Helper()
	rtpMu.Lock()
	defer rtpMu.Unlock()
	start := rand.IntN(rtpBlocks - n + 1)
blocks:
	for i := range rtpBlocks - n + 1 {
		b := (start + i) % (rtpBlocks - n + 1)
		for k := b; k < b+n; k++ {
			if rtpUsed[k] {
				continue blocks
			}
		}
		lo = rtpLow + 100*b
		hi = lo + 100*n - 1
		if !udpPortsFree(lo, hi) {
			continue
		}
		for k := b; k < b+n; k++ {
			rtpUsed[k] = true
		}
		t.Cleanup(func() {
			rtpMu.Lock()
			for k := b; k < b+n; k++ {
				delete(rtpUsed, k)
			}
			rtpMu.Unlock()
		})
		return lo, hi
	}
	t.Fatalf("no %d free blocks of 100 UDP ports in %d-%d", n, rtpLow, rtpLow+100*rtpBlocks-1)
	return 0, 0
}

// udpPortsFree reports whether every port in lo..hi can be bound on
// 127.0.0.1 now.
func udpPortsFree(lo, hi int) bool {
	var held []net.PacketConn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for p := lo; p <= hi; p++ {
		c, err := net.ListenPacket("udp4", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			return false
		}
		held = append(held, c)
	}
	return true
}

// readyLine is the line b2bua serve logs once it listens, with the
// addresses it bound.
var readyLine = regexp.MustCompile(`msg="b2bua ready" sip=(\S+) http=(\S+)`)

// waitReadyLine waits until the b2bua log at path shows the ready line and
// returns the SIP and HTTP addresses it names: the server binds port 0
// and reports the ports it got. exited is the process's exit.
func waitReadyLine(t *testing.T, path string, exited chan error) (sipAddr, httpAddr string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if m := readyLine.FindSubmatch(b); m != nil {
			return string(m[1]), string(m[2])
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("b2bua serve exited before it was ready: %v\n%s", err, tail(b, 40))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("b2bua logged no ready line within 15s:\n%s", tail(b, 40))
		}
	}
}

func (n *node) dumpLog() {
	b, _ := os.ReadFile(filepath.Join(n.dir, "b2bua.log"))
	n.t.Logf("b2bua log:\n%s", tail(b, 60))
}

func tail(b []byte, lines int) string {
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

// sipp is one running SIPp process.
type sipp struct {
	t         *testing.T
	name      string
	dir       string
	port      int // SIP, on 127.0.0.1
	mediaPort int // -mp, 0 when not asked for
	cmd       *exec.Cmd
	exited    chan struct{}
	err       error
}

// sippRun is one SIPp run to start.
type sippRun struct {
	name     string
	scenario string // file in testdata/sipp
	port     int    // SIP port; 0 picks one
	media    bool   // pick a port for SIPp's media (-mp)
	args     []string
	// files are copied into SIPp's run directory before it starts: name
	// there → source path (a pcap its scenario plays by a relative name).
	files map[string]string
}

// errAddrInUse is SIPp failing to bind a port it was given.
var errAddrInUse = errors.New("sipp: errno 98, address in use")

// startSipp runs SIPp, one call bounded by sippTimeout, and waits until it
// has bound its SIP socket. When a port it picked was taken in the moment
// between pickPort and SIPp's bind, it starts SIPp again on new ports; a
// port the caller fixed (a terminal that must answer where it registered)
// is not changed, and its loss fails the test.
func startSipp(t *testing.T, r sippRun) *sipp {
	t.Helper()
	for attempt := 1; ; attempt++ {
		port, mp := r.port, 0
		if port == 0 {
			port = pickPort(t)
		}
		if r.media {
			mp = pickPort(t)
		}
		s := launchSipp(t, r, port, mp, attempt)
		err := s.waitBound()
		if err == nil {
			return s
		}
		if errors.Is(err, errAddrInUse) && attempt < 5 && (r.port == 0 || !strings.Contains(s.screen(), "main socket")) {
			t.Logf("sipp %s: a picked port was taken before SIPp bound it; starting again", r.name)
			continue
		}
		t.Fatalf("sipp %s: %v\n%s", r.name, err, s.screen())
	}
}

func launchSipp(t *testing.T, r sippRun, port, mp, attempt int) *sipp {
	t.Helper()
	bin := testenv.NeedTool(t, "sipp")
	dir := filepath.Join(t.TempDir(), fmt.Sprintf("%s-%d", r.name, attempt))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, src := range r.files {
		b, err := os.ReadFile(src)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, name), b, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	full := []string{"-sf", scenario(r.scenario),
		"-i", "127.0.0.1", "-p", strconv.Itoa(port),
		"-m", "1", "-nostdin",
		"-timeout", strconv.Itoa(int(sippTimeout/time.Second)) + "s", "-timeout_error",
		"-trace_err", "-error_file", filepath.Join(dir, "errors.log"),
		"-trace_msg", "-message_file", filepath.Join(dir, "messages.log"),
		"-trace_logs", "-log_file", filepath.Join(dir, "actions.log"),
	}
	if mp != 0 {
		full = append(full, "-mp", strconv.Itoa(mp))
	}
	full = append(full, r.args...)
	cmd := exec.Command(bin, full...)
	cmd.Dir = dir
	out, err := os.Create(filepath.Join(dir, "screen.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &sipp{t: t, name: r.name, dir: dir, port: port, mediaPort: mp, cmd: cmd, exited: make(chan struct{})}
	go func() {
		s.err = cmd.Wait()
		out.Close()
		close(s.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			_ = cmd.Process.Kill()
			<-s.exited
		}
	})
	return s
}

// waitBound waits until SIPp holds its SIP socket, so that a terminal is
// listening before the call is placed. It returns errAddrInUse when SIPp
// exited because a port was taken, and nil when it exited otherwise (wait
// reports that).
func (s *sipp) waitBound() error {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			if strings.Contains(s.screen(), "errno = 98") {
				return errAddrInUse
			}
			return nil
		default:
		}
		owns, err := ownsUDPPort(s.cmd.Process.Pid, s.port)
		if err != nil {
			// No /proc (not Linux): a taken port is taken by SIPp.
			pc, lerr := net.ListenPacket("udp4", "127.0.0.1:"+strconv.Itoa(s.port))
			if owns = lerr != nil; !owns {
				pc.Close()
			}
		}
		if owns {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("did not bind 127.0.0.1:%d within 5s", s.port)
}

// ownsUDPPort reports whether process pid holds a UDP socket bound to port,
// from Linux's /proc: the socket inodes among its descriptors, looked up
// in /proc/net/udp.
func ownsUDPPort(pid, port int) (bool, error) {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return false, err
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	// UDP, or TCP for a SIPp on -t t1, whose one connection is bound to
	// its -p port.
	for _, file := range []string{"/proc/net/udp", "/proc/net/tcp"} {
		table, err := os.ReadFile(file)
		if err != nil {
			return false, err
		}
		for _, l := range strings.Split(string(table), "\n")[1:] {
			f := strings.Fields(l) // sl local_address rem_address st ... uid timeout inode
			if len(f) < 10 {
				continue
			}
			_, hexPort, _ := strings.Cut(f[1], ":")
			if p, err := strconv.ParseUint(hexPort, 16, 16); err == nil && int(p) == port && inodes[f[9]] {
				return true, nil
			}
		}
	}
	return false, nil
}

// screen is what SIPp printed (its bind errors go there).
func (s *sipp) screen() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "screen.log"))
	return string(b)
}

// wait requires SIPp to finish with exit code 0: every expected message
// arrived and every check passed.
func (s *sipp) wait() {
	s.t.Helper()
	select {
	case <-s.exited:
	case <-time.After(sippTimeout + waitSlack):
		_ = s.cmd.Process.Kill()
		<-s.exited
		s.t.Fatalf("sipp %s still running after %s\n%s", s.name, sippTimeout+waitSlack, s.logs())
	}
	if s.err != nil {
		s.t.Fatalf("sipp %s failed (%v)\n%s", s.name, s.err, s.logs())
	}
}

// actions is what the scenario's <log> actions wrote.
func (s *sipp) actions() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "actions.log"))
	return string(b)
}

func (s *sipp) logs() string {
	var b bytes.Buffer
	for _, f := range []string{"errors.log", "messages.log"} {
		data, err := os.ReadFile(filepath.Join(s.dir, f))
		if err != nil {
			continue
		}
		fmt.Fprintf(&b, "--- sipp %s %s:\n%s\n", s.name, f, tail(data, 120))
	}
	return b.String()
}

// call places a call from caller (authenticating with password) to callee
// through n with the caller scenario sf. The caller also runs notice.xml
// for the IM notice the B2BUA sends after a failed call.
func (n *node) call(sf, caller, password, callee string) *sipp {
	n.t.Helper()
	return startSipp(n.t, sippRun{name: strings.TrimSuffix(sf, ".xml"), scenario: sf, args: []string{
		"-s", callee,
		"-key", "caller", caller,
		"-key", "domain", domain,
		"-au", caller, "-ap", password,
		"-oocsf", scenario("notice.xml"),
		n.sipAddr}})
}

// terminal starts a SIPp UAS with scenario sf on a port of its own and
// waits until it listens; its port is term.port.
func terminal(t *testing.T, sf string) *sipp {
	t.Helper()
	return startSipp(t, sippRun{name: strings.TrimSuffix(sf, ".xml"), scenario: sf})
}

// terminalOn is terminal on a port fixed beforehand (where the terminal
// registered, or where a first run of it was).
func terminalOn(t *testing.T, sf string, port int) *sipp {
	t.Helper()
	return startSipp(t, sippRun{name: strings.TrimSuffix(sf, ".xml"), scenario: sf, port: port})
}

// closedPort is a TCP port on 127.0.0.1 where nothing listens: a socket
// bound and never listening holds it until the test ends, so connecting
// is refused and no other process can take it meanwhile.
func closedPort(t *testing.T) int {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return sa.(*syscall.SockaddrInet4).Port
}
