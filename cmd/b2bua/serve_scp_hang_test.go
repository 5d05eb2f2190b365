package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imcall/b2bua/scp"
)

// TestServeSCPHangs runs b2bua serve against an SCP that takes connections
// and never answers, as a stopped (SIGSTOP) or wedged one does: the kernel
// completes the handshake, nothing reads. The caller gets 503 with
// Retry-After and Q.850 cause 41 within --scp-timeout, its default
// included, and after 5 timeouts in a row the breaker answers at once.
func TestServeSCPHangs(t *testing.T) {
	hung, err := net.Listen("tcp", "127.0.0.1:0") // never accepted
	if err != nil {
		t.Fatal(err)
	}
	defer hung.Close()
	db := newDB(t)
	ok(t, db, "bob-pw\n", "user", "add", "bob", "--password-stdin")
	ok(t, db, "", "terminal", "add", "--im", "bob", "--imsi", "001010000000001", "--active")
	dir := filepath.Dir(db)
	// slack covers a loaded machine; the wait it bounds is the deadline.
	const slack = 1500 * time.Millisecond

	for _, tc := range []struct {
		name    string
		args    []string
		timeout time.Duration
		calls   int // past DefaultBreakerThreshold, the breaker is checked
	}{
		{"default --scp-timeout", nil, scp.DefaultTimeout, 1},
		{"--scp-timeout 300ms", []string{"--scp-timeout", "300ms"}, 300 * time.Millisecond, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--db", db, "serve", "--sip-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
				"--scp", "http://" + hung.Addr().String(), "--trusted", "127.0.0.0/8", "--media", "passthrough",
				"--api-token-file", filepath.Join(dir, "api.token")}, tc.args...)
			cmd := exec.Command(binary, args...)
			cmd.Dir = dir
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
			var stderr lockedBuffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				cmd.Process.Signal(syscall.SIGTERM)
				time.Sleep(100 * time.Millisecond)
				cmd.Process.Signal(syscall.SIGTERM)
				cmd.Wait()
			}()
			sipAddr := readyAddr(t, &stderr)

			caller, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer caller.Close()
			to, _ := net.ResolveUDPAddr("udp", sipAddr)
			for i := range tc.calls {
				start := time.Now()
				inv := invite(caller.LocalAddr().String(), tc.name+strconv.Itoa(i))
				if _, err := caller.WriteTo([]byte(inv), to); err != nil {
					t.Fatal(err)
				}
				got := readFinal(t, caller, inv)
				took := time.Since(start)
				// RFC 3261 section 17.1.1.3: ACK the final answer, which
				// stops its retransmissions.
				caller.WriteTo([]byte(ackFor(inv, got)), to)
				if !strings.HasPrefix(got, "SIP/2.0 503") || !strings.Contains(got, "Retry-After:") {
					t.Fatalf("call %d: caller got %q, want 503 with Retry-After\nlog:\n%s", i, got, stderr.String())
				}
				if i < 5 {
					// The deadline holds: not before it, and not long after.
					if took < tc.timeout-50*time.Millisecond || took > tc.timeout+slack || !strings.Contains(got, "cause=41") {
						t.Fatalf("call %d: 503 after %v, want cause 41 after the %v deadline:\n%s", i, took, tc.timeout, got)
					}
				} else if took >= tc.timeout/2 {
					t.Fatalf("call %d, breaker open: 503 after %v, want at once", i, took)
				}
				t.Logf("call %d: 503 after %v", i, took.Round(time.Millisecond))
			}
		})
	}
}

// readFinal reads answers until the final one to inv (same Call-ID) comes,
// skipping provisional answers and retransmissions for earlier calls.
func readFinal(t *testing.T, c net.PacketConn, inv string) string {
	t.Helper()
	callID := header(inv, "Call-ID")
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		got, _ := readSIP(t, c, "SIP/2.0 ")
		if header(got, "Call-ID") == callID && !strings.HasPrefix(got, "SIP/2.0 1") {
			return got
		}
	}
	t.Fatalf("no final answer to %s", callID)
	return ""
}

// header is the value of the first header called name in msg.
func header(msg, name string) string {
	head, _, _ := strings.Cut(msg, "\r\n\r\n")
	for _, l := range strings.Split(head, "\r\n")[1:] {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// ackFor is the ACK of a non-2xx answer to inv (RFC 3261 section
// 17.1.1.3: the INVITE's Via, From, Call-ID and Request-URI, the answer's
// To).
func ackFor(inv, resp string) string {
	reqLine, _, _ := strings.Cut(inv, "\r\n")
	return strings.Join([]string{
		strings.Replace(reqLine, "INVITE", "ACK", 1),
		"Via: " + header(inv, "Via"),
		"From: " + header(inv, "From"),
		"To: " + header(resp, "To"),
		"Call-ID: " + header(inv, "Call-ID"),
		"CSeq: 1 ACK",
		"Max-Forwards: 70",
		"Content-Length: 0",
	}, "\r\n") + "\r\n\r\n"
}

var readyLine = regexp.MustCompile(`msg="b2bua ready" sip=(\S+) http=(\S+)`)

// readyAddr waits for serve's ready line and returns its SIP address, so
// that serve can listen on port 0.
func readyAddr(t *testing.T, log *lockedBuffer) string {
	t.Helper()
	sip, _ := readyAddrs(t, log)
	return sip
}

// readyAddrs is readyAddr with the HTTP address too.
func readyAddrs(t *testing.T, log *lockedBuffer) (sip, http string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := readyLine.FindStringSubmatch(log.String()); m != nil {
			return m[1], m[2]
		}
	}
	t.Fatalf("b2bua serve did not become ready\nlog:\n%s", log.String())
	return "", ""
}

// TestSCPTimeoutDocumented: the README gives the default that serve uses.
func TestSCPTimeoutDocumented(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	flag := newServeCmd(&rootOptions{}).Flags().Lookup("scp-timeout")
	row := "| `--scp-timeout D` | | `" + scp.DefaultTimeout.String() + "` |"
	if flag == nil || flag.DefValue != scp.DefaultTimeout.String() || !strings.Contains(string(b), row) {
		t.Fatalf("--scp-timeout default %v, scp.DefaultTimeout %v: README.md must have the row %q", flag, scp.DefaultTimeout, row)
	}
}
