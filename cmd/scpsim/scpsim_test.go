package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imcall/b2bua/scp"
	"github.com/imcall/b2bua/scp/scphttp"
	"github.com/imcall/b2bua/scp/sim"
)

// binary is the real scpsim, built once for the package's tests (without
// -race: the server code runs under the race detector in scp/sim's tests).
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "scpsim-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "scpsim")
	if runtime.GOOS == "windows" {
		binary += ".exe"
	}
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building scpsim:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is a running `scpsim serve`.
type server struct {
	cmd  *exec.Cmd
	URL  string
	logs *bytes.Buffer
	done chan error
}

var listening = regexp.MustCompile(`msg="scpsim listening" proto=http addr=(\S+)`)

// startServer runs `scpsim serve --http 127.0.0.1:0 args...` and waits for
// it to say where it listens.
func startServer(t *testing.T, args ...string) *server {
	t.Helper()
	return startServerIn(t, "", append([]string{"serve", "--http", "127.0.0.1:0"}, args...)...)
}

// startServerIn runs scpsim with args (a serve command line) in dir.
func startServerIn(t *testing.T, dir string, args ...string) *server {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, logs: &bytes.Buffer{}, done: make(chan error, 1)}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			s.logs.WriteString(line + "\n")
			if m := listening.FindStringSubmatch(line); m != nil {
				addr <- m[1]
			}
		}
		s.done <- cmd.Wait()
	}()
	select {
	case a := <-addr:
		s.URL = "http://" + a
	case err := <-s.done:
		t.Fatalf("scpsim serve exited before listening: %v\n%s", err, s.logs)
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-s.done // the reader goroutine is done with logs
		t.Fatalf("scpsim serve did not start:\n%s", s.logs)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-s.done
		}
	})
	return s
}

// stop sends SIGTERM and expects a clean exit.
func (s *server) stop(t *testing.T) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("scpsim serve exited with %v after SIGTERM", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("scpsim serve ignored SIGTERM")
	}
}

// scpsim runs one command and returns stdout, stderr and the exit status.
func scpsim(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), errb.String(), 0
	case errors.As(err, &ee):
		return out.String(), errb.String(), ee.ExitCode()
	}
	t.Fatal(err)
	return "", "", -1
}

func TestSubscriberCommands(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state.json")
	srv := startServer(t, "--subscribers", filepath.Join("..", "..", "testdata", "scp", "subscribers.json"), "--state", state)
	env := []string{"SCPSIM_SERVER=" + srv.URL}
	steps := []struct {
		args    []string
		wantOut string
	}{
		{[]string{"subscriber", "attach", "--imsi", "001010000000042", "--addr", "127.0.0.1:6000"}, "attached imsi:001010000000042: online 127.0.0.1:6000\n"},
		{[]string{"subscriber", "move", "--imsi", "001010000000042", "--addr", "[::1]:6002"}, "moved imsi:001010000000042: online [::1]:6002\n"},
		{[]string{"subscriber", "state", "--imsi", "001010000000042", "busy"}, "set imsi:001010000000042: busy [::1]:6002\n"},
		{[]string{"subscriber", "attach", "--mac", "AA-BB-CC-DD-EE-FF", "--state", "absent"}, "attached mac:aa:bb:cc:dd:ee:ff: absent -\n"},
		{[]string{"subscriber", "detach", "--imsi", "001010000000003"}, "detached imsi:001010000000003\n"},
		{[]string{"subscriber", "attach", "--msisdn", "+441632960001", "--addr", "127.0.0.1:6004"}, "attached msisdn:+441632960001: online 127.0.0.1:6004\n"},
		{[]string{"subscriber", "state", "--msisdn", "+441632960001", "absent"}, "set msisdn:+441632960001: absent 127.0.0.1:6004\n"},
		{[]string{"subscriber", "list"}, "" +
			"ID                     STATE   ADDR\n" +
			"imsi:001010000000001   online  127.0.0.1:5062\n" +
			"imsi:001010000000002   busy    127.0.0.1:5064\n" +
			"imsi:001010000000042   busy    [::1]:6002\n" +
			"mac:00:1a:2b:3c:4d:5e  online  [::1]:5066\n" +
			"mac:aa:bb:cc:dd:ee:ff  absent  -\n" +
			"msisdn:+441632960001   absent  127.0.0.1:6004\n"},
	}
	for _, st := range steps {
		out, errOut, code := scpsim(t, env, st.args...)
		if code != 0 || out != st.wantOut {
			t.Fatalf("scpsim %s: exit %d\nstdout:\n%s\nstderr:\n%s\nwant stdout:\n%s", strings.Join(st.args, " "), code, out, errOut, st.wantOut)
		}
	}
	// --server overrides the environment.
	jsonOut, errOut, code := scpsim(t, []string{"SCPSIM_SERVER=http://127.0.0.1:1"}, "subscriber", "list", "--output", "json", "--server", srv.URL)
	if code != 0 {
		t.Fatalf("list json: %d %s", code, errOut)
	}
	listed, err := sim.DecodeSubscribers(strings.NewReader(jsonOut))
	if err != nil || len(listed) != 6 {
		t.Fatalf("list --output json is not a subscribers file: %v\n%s", err, jsonOut)
	}

	// The http backend sees what the commands did.
	c, err := scphttp.New(scphttp.Config{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if loc, err := c.Locate(context.Background(), "imsi:001010000000042"); err != nil || loc.State != scp.Busy || loc.Addr.String() != "[::1]:6002" {
		t.Fatalf("locate: %+v, %v", loc, err)
	}
	if loc, err := c.Locate(context.Background(), "msisdn:+441632960001"); err != nil || loc.State != scp.Absent {
		t.Fatalf("locate msisdn: %+v, %v", loc, err)
	}

	// Restart from the state file alone: the changes are kept, even though
	// the server is killed without a chance to save anything at exit.
	srv.cmd.Process.Kill()
	<-srv.done
	srv2 := startServer(t, "--state", state)
	out, errOut, code := scpsim(t, nil, "subscriber", "list", "-o", "json", "--server", srv2.URL)
	if code != 0 || out != jsonOut {
		t.Fatalf("after restart (exit %d, %s):\n%s\nwant:\n%s", code, errOut, out, jsonOut)
	}
	// The state file wins over --subscribers once it exists.
	srv2.stop(t)
	srv3 := startServer(t, "--state", state, "--subscribers", filepath.Join("..", "..", "testdata", "scp", "subscribers.json"))
	if out, _, _ := scpsim(t, nil, "subscriber", "list", "-o", "json", "--server", srv3.URL); out != jsonOut {
		t.Fatalf("--subscribers overrode --state:\n%s", out)
	}
	srv3.stop(t)
}

func TestBadArguments(t *testing.T) {
	srv := startServer(t)
	env := []string{"SCPSIM_SERVER=" + srv.URL}
	tests := []struct {
		args     []string
		wantCode int
		wantErr  string
	}{
		{[]string{"subscriber", "attach", "--imsi", "12", "--addr", "127.0.0.1:6000"}, 2, "scpsim: imsi: must be 6 to 15 digits"},
		{[]string{"subscriber", "attach", "--addr", "127.0.0.1:6000"}, 2, "scpsim: imsi: is required"},
		{[]string{"subscriber", "attach", "--imsi", "001010000000001", "--mac", "00:1a:2b:3c:4d:5e", "--addr", "127.0.0.1:6000"}, 2, "scpsim: imsi: give one of --imsi, --mac or --msisdn"},
		{[]string{"subscriber", "attach", "--mac", "00:1a:2b:3c:4d:5e", "--msisdn", "+441632960001", "--addr", "127.0.0.1:6000"}, 2, "scpsim: imsi: give one of --imsi, --mac or --msisdn"},
		{[]string{"subscriber", "attach", "--msisdn", "441632960001", "--addr", "127.0.0.1:6000"}, 2, "scpsim: msisdn: must be an E.164 number"},
		{[]string{"subscriber", "attach", "--mac", "00:1a", "--addr", "127.0.0.1:6000"}, 2, "scpsim: mac: must be an EUI-48 address"},
		{[]string{"subscriber", "attach", "--imsi", "001010000000001"}, 2, "scpsim: addr: is required for an online subscriber"},
		{[]string{"subscriber", "attach", "--imsi", "001010000000001", "--addr", "host:5060"}, 2, "scpsim: addr: must be IP:PORT"},
		{[]string{"subscriber", "attach", "--imsi", "001010000000001", "--addr", "127.0.0.1:6000", "--state", "gone"}, 2, "scpsim: state: must be online, busy or absent"},
		{[]string{"subscriber", "move", "--imsi", "001010000000001"}, 2, "scpsim: addr: is required"},
		{[]string{"subscriber", "move", "--imsi", "001010000000001", "--addr", "127.0.0.1:0"}, 2, "scpsim: addr: port must be 1 to 65535"},
		{[]string{"subscriber", "state", "--imsi", "001010000000001"}, 2, "scpsim: state: give exactly one of online, busy, absent"},
		{[]string{"subscriber", "state", "--imsi", "001010000000001", "sleeping"}, 2, "scpsim: state: must be online, busy or absent"},
		{[]string{"subscriber", "list", "--output", "yaml"}, 2, "scpsim: output: must be text or json"},
		{[]string{"subscriber", "list", "--server", "127.0.0.1:8070"}, 2, "scpsim: server: must be an http:// or https:// URL"},
		{[]string{"subscriber", "list", "--colour"}, 2, "scpsim: unknown flag: --colour"},
		{[]string{"subscriber", "detach", "--imsi", "001010000000777"}, 1, "scpsim: imsi:001010000000777: scp: unknown subscriber"},
		{[]string{"subscriber", "move", "--imsi", "001010000000777", "--addr", "127.0.0.1:6000"}, 1, "unknown subscriber"},
		{[]string{"subscriber", "list", "--server", "http://127.0.0.1:1"}, 1, "connection refused"},
		{[]string{"serve", "extra"}, 2, `scpsim: unexpected argument "extra"`},
		{[]string{"serve", "--http", "127.0.0.1:0", "--subscribers", filepath.Join("..", "..", "testdata", "scp", "missing.json")}, 1, "missing.json"},
		// A busy port is no mistake in the command line (exit 1), named once.
		{[]string{"serve", "--http", strings.TrimPrefix(srv.URL, "http://")}, 1, "scpsim: http: listen tcp " + strings.TrimPrefix(srv.URL, "http://") + ": bind: address already in use"},
		{[]string{"serve", "--http", "127.0.0.1:0", "--cap", strings.TrimPrefix(srv.URL, "http://")}, 1, "scpsim: cap: capscp: listen tcp " + strings.TrimPrefix(srv.URL, "http://") + ": bind: address already in use"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, errOut, code := scpsim(t, env, tt.args...)
			if code != tt.wantCode || !strings.Contains(errOut, tt.wantErr) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, errOut, tt.wantCode, tt.wantErr)
			}
			// serve logs before it fails; the failure is still one line.
			if tt.args[0] == "serve" {
				lines := strings.Split(strings.TrimSpace(errOut), "\n")
				errOut = lines[len(lines)-1] + "\n"
			}
			if strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "scpsim: ") || out != "" {
				t.Fatalf("want one line on stderr and nothing on stdout, got %q / %q", out, errOut)
			}
		})
	}
}

func TestServeRejectsBadSubscribersFile(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "subs.json")
	os.WriteFile(bad, []byte(`[{"imsi":"001010000000001","addr":"127.0.0.1:5062"},{"imsi":"001010000000002","state":"online"}]`), 0o600)
	_, errOut, code := scpsim(t, nil, "serve", "--http", "127.0.0.1:0", "--subscribers", bad)
	want := "subscribers: " + bad + ": subscribers[1]: addr: is required for an online subscriber"
	if code == 0 || !strings.Contains(errOut, want) {
		t.Fatalf("exit %d, stderr %q; want %q", code, errOut, want)
	}
}
