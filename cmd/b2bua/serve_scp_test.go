package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imcall/b2bua/scp"
	"github.com/imcall/b2bua/scp/sim"
)

// lockedBuffer collects a child process's stderr while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestServeSCPToken runs b2bua serve against an SCP that requires a bearer
// token, all over real loopback listeners: with the right token (from
// --scp-token-file or B2BUA_SCP_TOKEN) the call reaches the terminal where
// the SCP says it is; with a wrong one the caller gets 503. The token never
// appears in the log, even at debug level.
func TestServeSCPToken(t *testing.T) {
	const token = "operator-scp-Secret-7f3a9c"
	terminal, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer terminal.Close()
	s, err := sim.New(sim.Config{Subscribers: []sim.Subscriber{{
		ID: "imsi:001010000000001", State: scp.Online,
		Addr: netip.MustParseAddrPort(terminal.LocalAddr().String()),
	}}})
	if err != nil {
		t.Fatal(err)
	}
	scpSrv := httptest.NewServer(sim.RequireToken(token, sim.NewHandler(s, nil)))
	defer scpSrv.Close()

	db := newDB(t)
	ok(t, db, "bob-pw\n", "user", "add", "bob", "--password-stdin")
	ok(t, db, "", "terminal", "add", "--im", "bob", "--imsi", "001010000000001", "--active")
	dir := filepath.Dir(db)
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	right, wrong := write("scp.token", token+"\n"), write("wrong.token", token+"x\n")

	for _, tc := range []struct {
		name    string
		args    []string
		env     string
		reaches bool
	}{
		{"right token file", []string{"--scp-token-file", right}, "", true},
		{"right token in B2BUA_SCP_TOKEN", nil, "B2BUA_SCP_TOKEN=" + token, true},
		{"wrong token file", []string{"--scp-token-file", wrong}, "", false},
		{"no token", nil, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--db", db, "serve", "--sip-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
				"--scp", scpSrv.URL, "--trusted", "127.0.0.0/8", "--media", "passthrough", "--log-level", "debug",
				"--api-token-file", filepath.Join(dir, "api.token")}, tc.args...)
			cmd := exec.Command(binary, args...)
			cmd.Dir = dir
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
			if tc.env != "" {
				cmd.Env = append(cmd.Env, tc.env)
			}
			var stderr lockedBuffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			stopped := false
			stop := func() {
				if !stopped {
					stopped = true
					// The second signal ends what the first would wait
					// for (the unanswered call, the caller's IM notice).
					cmd.Process.Signal(syscall.SIGTERM)
					time.Sleep(200 * time.Millisecond)
					cmd.Process.Signal(syscall.SIGTERM)
					cmd.Wait()
				}
			}
			defer stop()
			sipAddr, httpAddr := readyAddrs(t, &stderr)
			waitReady(t, httpAddr, &stderr)

			caller, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer caller.Close()
			to, _ := net.ResolveUDPAddr("udp", sipAddr)
			if _, err := caller.WriteTo([]byte(invite(caller.LocalAddr().String(), tc.name)), to); err != nil {
				t.Fatal(err)
			}
			if tc.reaches {
				got, from := readSIP(t, terminal, "INVITE ")
				if !strings.HasPrefix(got, "INVITE ") {
					t.Fatalf("the terminal got no INVITE\nlog:\n%s", stderr.String())
				}
				// Busy, so that no transaction outlives the test.
				terminal.WriteTo([]byte(answer(got, "486 Busy Here")), from)
				if got, _ := readSIP(t, caller, "SIP/2.0 486"); !strings.HasPrefix(got, "SIP/2.0 486") {
					t.Errorf("caller got %q, want the terminal's 486", got)
				}
			} else {
				if got, _ := readSIP(t, caller, "SIP/2.0 503"); !strings.HasPrefix(got, "SIP/2.0 503") {
					t.Fatalf("caller got %q, want 503\nlog:\n%s", got, stderr.String())
				}
			}
			stop() // the log is complete once the process has exited
			if !tc.reaches && !strings.Contains(stderr.String(), "SCP refused our token") {
				t.Errorf("the log does not say why:\n%s", stderr.String())
			}
			if strings.Contains(stderr.String(), token) {
				t.Errorf("the SCP token appears in the log:\n%s", stderr.String())
			}
		})
	}
}

// TestServeSCPTokenErrors: a token that cannot be used stops the start,
// and the message names the flag, never the token.
func TestServeSCPTokenErrors(t *testing.T) {
	db := newDB(t)
	dir := filepath.Dir(db)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	tok := filepath.Join(dir, "tok")
	os.WriteFile(tok, []byte("file-secret\n"), 0o600)
	for _, tc := range []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"--scp-token-file", filepath.Join(dir, "missing")}, "", "--scp-token-file: open"},
		{[]string{"--scp-token-file", empty}, "", "is empty"},
		{[]string{"--scp-token-file", tok}, "B2BUA_SCP_TOKEN=env-secret", "give the SCP token one way"},
		{[]string{"--scp", "sim", "--scp-token-file", tok}, "", "the sim backend sends no token"},
		{[]string{"--scp", "http://127.0.0.1:1?token=url-secret"}, "", "does not belong in the URL"},
	} {
		cmd := exec.Command(binary, append([]string{"--db", db, "serve", "--sip-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"}, tc.args...)...)
		cmd.Dir = dir
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
		if tc.env != "" {
			cmd.Env = append(cmd.Env, tc.env)
		}
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("%v: err %v, output %s", tc.args, err, out)
		}
		for _, secret := range []string{"file-secret", "env-secret", "url-secret"} {
			if strings.Contains(string(out), secret) {
				t.Errorf("%v: the output shows %s:\n%s", tc.args, secret, out)
			}
		}
	}
}

func waitReady(t *testing.T, httpAddr string, log *lockedBuffer) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		res, err := http.Get("http://" + httpAddr + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("b2bua serve did not become ready\nlog:\n%s", log.String())
}

// readSIP reads datagrams until one starts with prefix or 10 s pass, and
// returns the last one read and its sender.
func readSIP(t *testing.T, c net.PacketConn, prefix string) (string, net.Addr) {
	t.Helper()
	buf := make([]byte, 65535)
	last := ""
	var from net.Addr
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.SetReadDeadline(deadline)
		n, addr, err := c.ReadFrom(buf)
		if err != nil {
			return last, from
		}
		last, from = string(buf[:n]), addr
		if strings.HasPrefix(last, prefix) {
			return last, from
		}
	}
}

// answer is a final response to req with status, e.g. "486 Busy Here"
// (RFC 3261 section 8.2.6: the request's Via, From, Call-ID and CSeq, its
// To with a tag).
func answer(req, status string) string {
	lines := []string{"SIP/2.0 " + status}
	head, _, _ := strings.Cut(req, "\r\n\r\n")
	for _, l := range strings.Split(head, "\r\n")[1:] {
		name, _, _ := strings.Cut(l, ":")
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "via", "v", "from", "f", "call-id", "i", "cseq":
			lines = append(lines, l)
		case "to", "t":
			lines = append(lines, l+";tag=busy1")
		}
	}
	return strings.Join(append(lines, "Content-Length: 0"), "\r\n") + "\r\n\r\n"
}

// invite is a trusted caller's INVITE to bob, with an audio offer.
func invite(local, callID string) string {
	callID = strings.ReplaceAll(callID, " ", "-")
	sdp := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
	return strings.Join([]string{
		"INVITE sip:bob@127.0.0.1 SIP/2.0",
		"Via: SIP/2.0/UDP " + local + ";branch=z9hG4bK-" + callID,
		"From: <sip:alice@127.0.0.1>;tag=a1",
		"To: <sip:bob@127.0.0.1>",
		"Call-ID: " + callID,
		"CSeq: 1 INVITE",
		"Contact: <sip:alice@" + local + ">",
		"Max-Forwards: 70",
		"Content-Type: application/sdp",
		fmt.Sprintf("Content-Length: %d", len(sdp)),
	}, "\r\n") + "\r\n\r\n" + sdp
}
