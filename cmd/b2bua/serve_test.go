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

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// The same number is very likely free for UDP too.
	return l.Addr().String()
}

// TestREADMEServeExamples runs the sh examples of "Running the B2BUA" as one
// shell session (the server is a background job the last example stops),
// on free ports and a registry in a temporary directory.
func TestREADMEServeExamples(t *testing.T) {
	dir := t.TempDir()
	sipAddr, httpAddr := freePort(t), freePort(t)
	examples := readmeExamples(t, filepath.Join("..", "..", "README.md"), "Running the B2BUA")
	var script strings.Builder
	var want strings.Builder
	for i, ex := range examples {
		s := strings.ReplaceAll(ex.script, "127.0.0.1:8080", httpAddr)
		script.WriteString(s)
		if i == 0 {
			// Glue, not part of the example: wait until the server is up.
			script.WriteString("trap 'kill -TERM %1 2>/dev/null || true' EXIT\n")
			script.WriteString("for i in $(seq 100); do curl -sf http://" + httpAddr + "/healthz >/dev/null && break; sleep 0.1; done\n")
		}
		if ex.hasWantOutput {
			want.WriteString(ex.want)
		}
	}
	cmd := exec.Command("bash", "-e", "-c", script.String())
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = []string{
		"PATH=" + filepath.Dir(binary) + string(os.PathListSeparator) + os.Getenv("PATH"),
		"HOME=" + dir,
		"B2BUA_DB=" + filepath.Join(dir, "b2bua.db"),
		"B2BUA_SIP_LISTEN=" + sipAddr,
		"B2BUA_HTTP_LISTEN=" + httpAddr,
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("README examples: %v\n%s\nstderr: %s", err, script.String(), stderr.String())
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("README examples did not finish\nstderr: %s", stderr.String())
	}
	if stdout.String() != want.String() {
		t.Errorf("output\n%s\nREADME shows\n%s", stdout.String(), want.String())
	}
	log := stderr.String()
	for _, line := range []string{"b2bua ready", "shutting down", "b2bua stopped"} {
		if !strings.Contains(log, line) {
			t.Errorf("log lacks %q:\n%s", line, log)
		}
	}
	if strings.Contains(log, readToken(t, filepath.Join(dir, "b2bua.token"))) {
		t.Error("the API token appears in the log")
	}
}

func readToken(t *testing.T, path string) string {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestParseCIDRs(t *testing.T) {
	got, err := parseCIDRs("--trusted", "127.0.0.0/8, 10.1.2.3 ,::1/128")
	if err != nil || len(got) != 3 || got[1].String() != "10.1.2.3/32" {
		t.Fatalf("parseCIDRs = %v, %v", got, err)
	}
	if _, err := parseCIDRs("--proxies", "10.0.0.0/33"); err == nil {
		t.Error("a bad prefix was accepted")
	}
}
