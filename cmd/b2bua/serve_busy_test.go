package main

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestServeBusyPort: a SIP or HTTP port another process holds stops serve
// with exit status 1 and one line that names the address once.
func TestServeBusyPort(t *testing.T) {
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	sipBusy, httpBusy := udp.LocalAddr().String(), tcp.Addr().String()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--sip-listen", sipBusy, "--http-listen", "127.0.0.1:0"}, "b2bua: sip: listen udp " + sipBusy + ": bind: address already in use"},
		{[]string{"--sip-listen", "127.0.0.1:0", "--http-listen", httpBusy}, "b2bua: http: listen tcp " + httpBusy + ": bind: address already in use"},
	}
	for _, tt := range tests {
		dir := t.TempDir()
		cmd := exec.Command(binary, append([]string{"serve", "--rtp-ports", "39000-39009"}, tt.args...)...)
		cmd.Dir = dir
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		last := strings.TrimSpace(stderr.String())
		if i := strings.LastIndex(last, "\n"); i >= 0 {
			last = last[i+1:]
		}
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || last != tt.want {
			t.Errorf("%v: %v, last line %q; want exit 1 and %q", tt.args, err, last, tt.want)
		}
	}
}
