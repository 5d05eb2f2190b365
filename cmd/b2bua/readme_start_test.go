package main

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestREADMEStartStop runs the start-and-stop example of "The two
// commands" with the built binary as bin/b2bua (the example's go build is
// what the test binary's own build did): the server answers, and after
// `kill %1` and `wait` its SIP and HTTP ports are free again, so the job
// that was killed was the server itself.
func TestREADMEStartStop(t *testing.T) {
	examples := readmeExamples(t, filepath.Join("..", "..", "README.md"), "The two commands")
	var ex *example
	for i := range examples {
		if strings.Contains(examples[i].script, "kill %1") {
			ex = &examples[i]
		}
	}
	if ex == nil || !strings.Contains(examples[0].script, "go build") {
		t.Fatalf("README's start/stop example not found: %+v", examples)
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(binary, filepath.Join(dir, "bin", "b2bua")); err != nil {
		t.Fatal(err)
	}
	sipAddr, httpAddr := freePort(t), freePort(t)
	cmd := exec.Command("bash", "-e", "-c", strings.ReplaceAll(ex.script, "127.0.0.1:8080", httpAddr))
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "B2BUA_SIP_LISTEN=" + sipAddr, "B2BUA_HTTP_LISTEN=" + httpAddr,
		"B2BUA_RTP_PORTS=39100-39109"}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		// bash's wait gives the killed job's status: SIGTERM's 143.
		if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() != 143) {
			t.Fatalf("example: %v\nstderr: %s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("example did not finish\nstderr: %s", stderr.String())
	}
	if ex.hasWantOutput && stdout.String() != ex.want {
		t.Errorf("output %q, README shows %q", stdout.String(), ex.want)
	}
	for _, a := range []struct{ network, addr string }{{"tcp", httpAddr}, {"tcp", sipAddr}, {"udp", sipAddr}} {
		var err error
		if a.network == "udp" {
			var c net.PacketConn
			if c, err = net.ListenPacket("udp", a.addr); err == nil {
				c.Close()
			}
		} else {
			var l net.Listener
			if l, err = net.Listen("tcp", a.addr); err == nil {
				l.Close()
			}
		}
		if err != nil {
			t.Errorf("after kill %%1 and wait, %s %s is still taken: %v", a.network, a.addr, err)
		}
	}
}
