//go:build linux

package rtpproxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// childMode is set in the environment of the unprivileged child process
// TestKernelWithoutPrivilege starts: the child runs unprivilegedChild.
const childMode = "RTPPROXY_TEST_KERNEL_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childMode); mode != "" {
		os.Exit(unprivilegedChild(mode))
	}
	os.Exit(m.Run())
}

// TestKernelWithoutPrivilege runs the proxy in a child process without
// any capability (as nobody, where the kernel refuses BPF): "on" must fail
// with an error that says what is missing, "auto" must relay in userspace.
func TestKernelWithoutPrivilege(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to start a child as another user") // CI runs as root
	}
	needKernel(t) // so the child's failure is the privilege, not the kernel
	// the child must be able to execute the test binary
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "rtpproxy.test")
	copyFile(t, self, bin)

	for _, tc := range []struct {
		mode string
		want string
	}{
		{"on", "ERR rtpproxy: in-kernel forwarding: forwarding map: needs CAP_BPF and CAP_NET_ADMIN (or root)"},
		{"auto", "OK relayed in userspace; kernel: forwarding map: needs CAP_BPF and CAP_NET_ADMIN (or root)"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			cmd := exec.CommandContext(context.Background(), bin, "-test.run=^$")
			cmd.Env = append(os.Environ(), childMode+"="+tc.mode)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("child: %v\n%s%s", err, out, stderr.String())
			}
			if got := strings.TrimSpace(string(out)); !strings.HasPrefix(got, tc.want) {
				t.Fatalf("child said\n  %s\nwant it to start with\n  %s", got, tc.want)
			}
		})
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// unprivilegedChild is the child's side: it prints one line for the parent.
func unprivilegedChild(mode string) int {
	m, err := ParseKernelMode(mode)
	if err != nil {
		os.Stdout.WriteString("ERR " + err.Error() + "\n")
		return 0
	}
	var ct childT
	p, err := New(Config{PortMin: 45000, PortMax: 45199, Kernel: m})
	if err != nil {
		os.Stdout.WriteString("ERR " + err.Error() + "\n")
		return 0
	}
	defer p.Close()
	ok := ct.relayOnce(p)
	if !ok || p.Kernel().Active {
		os.Stdout.WriteString("FAIL relay " + ct.msg + "\n")
		return 0
	}
	os.Stdout.WriteString("OK relayed in userspace; kernel: " + p.Kernel().Reason + "\n")
	return 0
}

// childT relays one packet through a call without a *testing.T.
type childT struct{ msg string }

func (ct *childT) relayOnce(p *Proxy) bool {
	fail := func(err error) bool { ct.msg = err.Error(); return false }
	c, err := p.NewCall(context.Background(), CallConfig{ID: "child"})
	if err != nil {
		return fail(err)
	}
	defer c.Close()
	var socks [2]*net.UDPConn
	for i := range socks {
		if socks[i], err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
			return fail(err)
		}
		defer socks[i].Close()
	}
	sdp := func(s *net.UDPConn) []byte {
		return fmt.Appendf(nil, "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio %d RTP/AVP 0\r\na=rtcp-mux\r\n", port(s))
	}
	if _, err := c.RewriteOffer(legA, legB, sdp(socks[0])); err != nil {
		return fail(err)
	}
	if _, err := c.RewriteAnswer(legB, legA, sdp(socks[1])); err != nil {
		return fail(err)
	}
	pkt := make([]byte, 172)
	pkt[0] = 0x80
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: c.LocalPorts(legA)[0]}
	if _, err := socks[0].WriteToUDP(pkt, to); err != nil {
		return fail(err)
	}
	socks[1].SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 2048)
	if _, err := socks[1].Read(buf); err != nil {
		return fail(err)
	}
	return true
}
