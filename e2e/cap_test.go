package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
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

// The CAP test's terminals, one per SCP answer, and the called number the
// B2BUA puts in every InitialDP.
const (
	capOnlineIMSI  = "001010000000011"
	capBusyIMSI    = "001010000000012"
	capAbsentIMSI  = "001010000000013"
	capUnknownIMSI = "001010000000019" // provisioned in the registry, unknown to the SCP
	capCalled      = "491701234567"
	// scpTimeout is b2bua serve's --scp-timeout default, which the harness
	// keeps.
	scpTimeout = 2 * time.Second
)

var (
	scpsimOnce sync.Once
	scpsimPath string
	scpsimErr  error
)

// scpsimBin builds ./cmd/scpsim once per test binary, beside the b2bua.
func scpsimBin(t *testing.T) string {
	t.Helper()
	b2buaBin(t) // makes binDir
	scpsimOnce.Do(func() {
		scpsimPath = filepath.Join(binDir, "scpsim")
		cmd := exec.Command("go", "build", "-o", scpsimPath, "./cmd/scpsim")
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			scpsimErr = fmt.Errorf("go build ./cmd/scpsim: %v\n%s", err, out)
		}
	})
	if scpsimErr != nil {
		t.Fatal(scpsimErr)
	}
	return scpsimPath
}

// scpsimProc is one running `scpsim serve` with CAP.
type scpsimProc struct {
	t       *testing.T
	capPort int // where CAP listens
	log     string
	cmd     *exec.Cmd
	exited  chan struct{}
	err     error
}

// startScpsim runs scpsim serving CAP over TCP on 127.0.0.1:capPort (0:
// a port the kernel picks) from the subscribers file subs, and waits until
// the CAP listener is open and logged its address. Its log goes to
// logPath.
func startScpsim(t *testing.T, subs string, capPort int, logPath string) *scpsimProc {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(scpsimBin(t), "serve", "--http", "127.0.0.1:0",
		"--cap", "tcp://127.0.0.1:"+strconv.Itoa(capPort), "--subscribers", subs, "--log-level", "debug")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &scpsimProc{t: t, log: logPath, cmd: cmd, exited: make(chan struct{})}
	go func() {
		s.err = cmd.Wait()
		logf.Close()
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
	capListening := regexp.MustCompile(`msg="scpsim listening" .*proto=cap .*addr=127\.0\.0\.1:(\d+)`)
	deadline := time.Now().Add(15 * time.Second)
	for {
		if m := capListening.FindStringSubmatch(readFile(logPath)); m != nil {
			s.capPort, _ = strconv.Atoi(m[1])
			break
		}
		select {
		case <-s.exited:
			t.Fatalf("scpsim serve exited before listening: %v\n%s", s.err, readFile(logPath))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("scpsim did not listen on CAP within 15s:\n%s", readFile(logPath))
		}
	}
	return s
}

// stop sends SIGTERM and waits for scpsim to exit.
func (s *scpsimProc) stop() {
	s.t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
		s.t.Fatalf("scpsim did not stop within 5s of SIGTERM:\n%s", readFile(s.log))
	}
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// waitLog waits until the file at path holds at least n lines containing
// substr.
func waitLog(t *testing.T, path, substr string, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for strings.Count(readFile(path), substr) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: fewer than %d lines with %q after %s:\n%s", filepath.Base(path), n, substr, within, tail([]byte(readFile(path)), 40))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var unavailableTimes = regexp.MustCompile(`scp-unavailable sent=([0-9.]+) ([0-9.]+) answered=([0-9.]+) ([0-9.]+)`)

// answerDelay reads how long the B2BUA took to answer the authenticated
// INVITE, as caller_scp_unavailable.xml logged it.
func answerDelay(t *testing.T, caller *sipp) time.Duration {
	t.Helper()
	m := unavailableTimes.FindStringSubmatch(caller.actions())
	if m == nil {
		t.Fatalf("no timing line in the caller's log:\n%s", caller.actions())
	}
	var v [4]float64
	for i := range v {
		f, err := strconv.ParseFloat(m[i+1], 64)
		if err != nil {
			t.Fatalf("timing %q: %v", m[0], err)
		}
		v[i] = f
	}
	return time.Duration(((v[2]-v[0])*1e6 + (v[3] - v[1])) * float64(time.Microsecond))
}

// TestCAPSCP runs the B2BUA against scpsim over CAP on loopback TCP, the
// B2BUA writing its signalling to a pcap file: each SCP answer gives the
// call core's SIP answer, a stopped SCP fails calls at once and a restarted
// one serves them again. Then two independent readers decode the capture:
// tshark (no malformed frame, no warning, the full ip:sctp:m3ua:sccp:tcap:
// camel stack, the field values of every dialogue) and scpsim decode.
func TestCAPSCP(t *testing.T) {
	t.Parallel()
	tsharkBin := testenv.NeedTool(t, "tshark")
	n := newNode(t)
	n.addUser("alice", "secret")
	for _, u := range []struct{ im, imsi string }{
		{"bob", capOnlineIMSI}, {"carol", capBusyIMSI}, {"dave", capAbsentIMSI}, {"erin", capUnknownIMSI},
	} {
		n.addUser(u.im, "secret")
		n.addTerminal(u.im, u.imsi, "legacy", true)
	}

	// The terminal scpsim names must listen before scpsim starts; its
	// second run, after the SCP restarts, takes the same port again.
	firstTerm := terminal(t, "terminal_answer.xml")
	termPort := firstTerm.port
	termAddr := "127.0.0.1:" + strconv.Itoa(termPort)
	subs := filepath.Join(n.dir, "scpsim-subscribers.json")
	b, _ := json.Marshal([]subscriber{
		{IMSI: capOnlineIMSI, Addr: termAddr, State: "online"},
		{IMSI: capBusyIMSI, State: "busy"},
		{IMSI: capAbsentIMSI, State: "absent"},
	})
	if err := os.WriteFile(subs, b, 0o644); err != nil {
		t.Fatal(err)
	}
	sim := startScpsim(t, subs, 0, filepath.Join(n.dir, "scpsim-1.log"))
	capPort := sim.capPort

	capture := filepath.Join(n.dir, "b2bua-cap.pcap")
	n.serve(serveOpts{scp: fmt.Sprintf("cap+tcp://127.0.0.1:%d?opc=1&dpc=2&sk=100&called=%s&pcap=%s",
		capPort, capCalled, url.QueryEscape(capture))})
	b2buaLog := filepath.Join(n.dir, "b2bua.log")
	// A lookup made before the association is up fails at once (503).
	waitLog(t, b2buaLog, "m3ua association active", 1, 15*time.Second)

	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.FailNow()
		}
	}
	// The terminal is a SIPp UAS at the address scpsim gave: the call is
	// answered and hung up only if the B2BUA sent it there.
	onlineCall := func(t *testing.T, term *sipp) {
		n.call("caller_call_bye.xml", "alice", "secret", "bob").wait()
		term.wait()
	}
	step("online", func(t *testing.T) { onlineCall(t, firstTerm) })
	step("busy", func(t *testing.T) { n.call("caller_busy.xml", "alice", "secret", "carol").wait() })
	step("absent", func(t *testing.T) { n.call("caller_absent.xml", "alice", "secret", "dave").wait() })
	step("unknown IMSI", func(t *testing.T) { n.call("caller_unknown_terminal.xml", "alice", "secret", "erin").wait() })
	step("SCP stopped", func(t *testing.T) {
		sim.stop()
		waitLog(t, b2buaLog, "m3ua association down", 1, 10*time.Second)
		caller := n.call("caller_scp_unavailable.xml", "alice", "secret", "bob")
		caller.wait()
		// Cause 38 (checked by the scenario) rather than 41 already says
		// the lookup failed rather than timed out; the delay confirms the
		// caller did not wait for the deadline.
		d := answerDelay(t, caller)
		t.Logf("503 with the association down after %s (--scp-timeout %s)", d, scpTimeout)
		if d >= scpTimeout/2 {
			t.Errorf("503 took %s, want well under --scp-timeout %s", d, scpTimeout)
		}
	})
	step("SCP restarted", func(t *testing.T) {
		// The B2BUA dials the address it was given: the same port again.
		startScpsim(t, subs, capPort, filepath.Join(n.dir, "scpsim-2.log"))
		waitLog(t, b2buaLog, "m3ua association active", 2, 20*time.Second)
		onlineCall(t, terminalOn(t, "terminal_answer.xml", termPort))
	})

	// The dialogues the capture must hold, in order: the scp-down call sent
	// nothing, so the second online lookup follows the unknown one.
	routing := "9127000000001" + fmt.Sprintf("%05d", termPort)
	checkTshark(t, tsharkBin, capture, []dialogue{
		{capOnlineIMSI, "connect " + routing},
		{capBusyIMSI, "release 17"},
		{capAbsentIMSI, "release 20"},
		{capUnknownIMSI, "missingCustomerRecord"},
		{capOnlineIMSI, "connect " + routing},
	})

	out, err := exec.Command(scpsimBin(t), "decode", capture).CombinedOutput()
	if err != nil {
		t.Fatalf("scpsim decode: %v\n%s", err, out)
	}
	for _, imsi := range []string{capOnlineIMSI, capBusyIMSI, capAbsentIMSI, capUnknownIMSI} {
		if !strings.Contains(string(out), imsi) {
			t.Errorf("scpsim decode does not print IMSI %s:\n%s", imsi, out)
		}
	}
	if !strings.Contains(string(out), routing) {
		t.Errorf("scpsim decode does not print routing number %s:\n%s", routing, out)
	}
}

// dialogue is one lookup as the capture must show it: the IMSI of the
// InitialDP and the SCP's answer ("connect DIGITS", "release CAUSE" or
// "missingCustomerRecord").
type dialogue struct{ imsi, answer string }

// checkTshark decodes the capture with tshark and requires: no malformed
// frame, no expert warning or error other than the documented one for our
// extension OID, the stack ip:sctp:m3ua:sccp:tcap:camel for every TCAP
// frame, and the dialogues want in order, each Begin answered by an End
// with its transaction ID.
func checkTshark(t *testing.T, bin, capture string, want []dialogue) {
	t.Helper()
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, append([]string{"-r", capture}, args...)...).Output() // stderr: "Running as user root"
		if err != nil {
			t.Fatalf("tshark %v: %v", args, err)
		}
		return string(out)
	}
	full := run("-V")
	if strings.Contains(full, "Malformed") {
		t.Errorf("tshark -V reports a malformed frame:\n%s", full)
	}
	for _, line := range strings.Split(full, "\n") {
		if (strings.Contains(line, "Expert Info (Warning") || strings.Contains(line, "Expert Info (Error")) &&
			!strings.Contains(line, "Dissector for OID not implemented") {
			t.Errorf("tshark expert info: %s", strings.TrimSpace(line))
		}
	}
	if out := run("-Y", "_ws.malformed"); strings.TrimSpace(out) != "" {
		t.Errorf("malformed frames:\n%s", out)
	}
	if t.Failed() {
		t.Logf("tshark -V:\n%s", full)
		t.FailNow()
	}

	stacks := strings.Split(strings.TrimSpace(run("-Y", "tcap", "-T", "fields", "-e", "frame.protocols")), "\n")
	if len(stacks) != 2*len(want) {
		t.Errorf("%d TCAP frames, want %d", len(stacks), 2*len(want))
	}
	for _, s := range stacks {
		if !strings.HasSuffix(s, ":ip:sctp:m3ua:sccp:tcap:camel") {
			t.Errorf("protocol stack %q, want ...:ip:sctp:m3ua:sccp:tcap:camel", s)
		}
	}

	// One line per TCAP frame: otid|dtid|opcode|imsi|eventTypeBCSM|called|cause.
	rows := strings.Split(strings.TrimSpace(run("-Y", "tcap", "-T", "fields", "-E", "separator=|",
		"-e", "tcap.otid", "-e", "tcap.dtid", "-e", "camel.local", "-e", "e212.imsi",
		"-e", "camel.eventTypeBCSM", "-e", "isup.called", "-e", "camel.cause_indicator")), "\n")
	var begins [][]string
	ends := map[string][]string{}
	for _, r := range rows {
		f := strings.Split(r, "|")
		if len(f) != 7 {
			t.Fatalf("tshark fields row %q", r)
		}
		switch {
		case f[0] != "" && f[1] == "":
			begins = append(begins, f)
		case f[0] == "" && f[1] != "":
			ends[f[1]] = f
		default:
			t.Errorf("TCAP frame neither Begin nor End: %q", r)
		}
	}
	if len(begins) != len(want) {
		t.Fatalf("%d InitialDPs, want %d:\n%s", len(begins), len(want), strings.Join(rows, "\n"))
	}
	for i, w := range want {
		b := begins[i]
		// InitialDP is operation 0; termAttemptAuthorized is event 12.
		if b[2] != "0" || b[3] != w.imsi || b[4] != "12" || b[5] != capCalled {
			t.Errorf("Begin %d: opcode|imsi|event|called = %s|%s|%s|%s, want 0|%s|12|%s", i, b[2], b[3], b[4], b[5], w.imsi, capCalled)
		}
		e, ok := ends[b[0]]
		if !ok {
			t.Errorf("Begin %d (otid %s, IMSI %s) has no End", i, b[0], w.imsi)
			continue
		}
		var got string
		switch e[2] {
		case "20":
			got = "connect " + e[5]
		case "22":
			got = "release " + e[6]
		case "":
			if v := run("-V", "-Y", "tcap.dtid == "+colonHex(b[0])); strings.Contains(v, "missingCustomerRecord") {
				got = "missingCustomerRecord"
			}
		}
		if got != w.answer {
			t.Errorf("End for IMSI %s (dtid %s): %q (row %q), want %q", w.imsi, b[0], got, strings.Join(e, "|"), w.answer)
		}
	}
}

// colonHex writes a hex string as tshark's byte-string literal (00:00:00:01).
func colonHex(h string) string {
	var parts []string
	for i := 0; i+2 <= len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}
