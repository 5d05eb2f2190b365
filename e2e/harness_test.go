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
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
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

// requireSipp skips the test when sipp is missing, or fails it under
// CI=true, and returns the path of sipp.
func requireSipp(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("sipp")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("sipp is required under CI=true (apt-get install sip-tester): %v", err)
		}
		t.Skipf("sipp not installed (apt-get install sip-tester): %v", err)
	}
	return p
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

// freePort returns a port that was free on 127.0.0.1 for both UDP and TCP
// (the B2BUA listens on both). Another process may take it before we use
// it; the window is short and the kernel does not hand it out again at once.
func freePort(t *testing.T) int {
	t.Helper()
	for i := 0; i < 50; i++ {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(port))
		pc.Close()
		if err != nil {
			continue
		}
		l.Close()
		return port
	}
	t.Fatal("no free port")
	return 0
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
	log      *os.File
	proc     *os.Process // the latest serve
}

// newNode prepares a registry in a fresh directory; provision it with
// cli, then call serve.
func newNode(t *testing.T) *node {
	t.Helper()
	requireSipp(t)
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
	n.sipAddr = "127.0.0.1:" + strconv.Itoa(freePort(t))
	n.httpAddr = "127.0.0.1:" + strconv.Itoa(freePort(t))
	args := []string{"--db", n.db, "--domain", domain, "serve",
		"--sip-listen", n.sipAddr,
		"--http-listen", n.httpAddr,
		"--scp", o.scp,
		"--scp-subscribers", subs,
		"--ring-timeout", o.ringTimeout.String(),
		// SIPp 3.6 reads only the first challenge's algorithm and knows
		// only MD5 (SHA-256 came with SIPp 3.7).
		"--digest-algorithms", "MD5,SHA-256",
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
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			n.dumpLog()
			t.Fatalf("b2bua serve exited before it was ready: %v", err)
		default:
		}
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
	t      *testing.T
	name   string
	dir    string
	port   int
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

// startSipp runs SIPp with scenario file sf on 127.0.0.1:port (0: a free
// port), one call, bounded by sippTimeout; args are the flow's own flags
// (and, for a UAC, the target last).
func startSipp(t *testing.T, name string, port int, sf string, args ...string) *sipp {
	t.Helper()
	bin := requireSipp(t)
	if port == 0 {
		port = freePort(t)
	}
	dir := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	full := []string{"-sf", scenario(sf),
		"-i", "127.0.0.1", "-p", strconv.Itoa(port),
		"-m", "1", "-nostdin",
		"-timeout", strconv.Itoa(int(sippTimeout/time.Second)) + "s", "-timeout_error",
		"-trace_err", "-error_file", filepath.Join(dir, "errors.log"),
		"-trace_msg", "-message_file", filepath.Join(dir, "messages.log"),
		"-trace_logs", "-log_file", filepath.Join(dir, "actions.log"),
	}
	full = append(full, args...)
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
	s := &sipp{t: t, name: name, dir: dir, port: port, cmd: cmd, exited: make(chan struct{})}
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

// waitBound waits until SIPp's UDP socket is bound, so that a terminal is
// listening before the call is placed.
func (s *sipp) waitBound() {
	s.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:"+strconv.Itoa(s.port))
		if err != nil {
			return // taken: SIPp has it
		}
		pc.Close()
		select {
		case <-s.exited:
			s.t.Fatalf("sipp %s exited before binding: %v\n%s", s.name, s.err, s.logs())
		case <-time.After(20 * time.Millisecond):
		}
	}
	s.t.Fatalf("sipp %s did not bind 127.0.0.1:%d within 5s", s.name, s.port)
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
	return startSipp(n.t, strings.TrimSuffix(sf, ".xml"), 0, sf,
		"-s", callee,
		"-key", "caller", caller,
		"-key", "domain", domain,
		"-au", caller, "-ap", password,
		// SIPp 3.6 puts remote_ip:remote_port in the digest uri unless
		// told; the Request-URI is sip:callee@domain.
		"-auth_uri", callee+"@"+domain,
		"-oocsf", scenario("notice.xml"),
		n.sipAddr)
}

// terminal starts a SIPp UAS with scenario sf and waits until it listens.
func terminal(t *testing.T, sf string, port int) *sipp {
	t.Helper()
	s := startSipp(t, strings.TrimSuffix(sf, ".xml"), port, sf)
	s.waitBound()
	return s
}

// closedPort is a TCP port on 127.0.0.1 where nothing listens.
func closedPort(t *testing.T) int {
	t.Helper()
	return freePort(t)
}
