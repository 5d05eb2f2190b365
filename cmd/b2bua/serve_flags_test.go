package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestServeBadFlags: a bad serve flag is one line on stderr naming the flag,
// a non-zero exit, and nothing started (no log line, no registry file).
func TestServeBadFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--sip-listen", "nonsense"}, `--sip-listen: "nonsense": must be HOST:PORT`},
		{[]string{"--sip-listen", "127.0.0.1:99999"}, `--sip-listen: "127.0.0.1:99999": must be HOST:PORT`},
		{[]string{"--http-listen", "8080"}, `--http-listen: "8080": must be HOST:PORT`},
		{[]string{"--tls-listen", "127.0.0.1"}, `--tls-listen: "127.0.0.1": must be HOST:PORT`},
		{[]string{"--sip-listen", "localhost:5060"}, `--sip-listen: host "localhost" is not an IPv4 address, which the RTP proxy binds by default: give --rtp-bind IP`},
		{[]string{"--sip-listen", ":5060"}, `--sip-listen: host "" is not an IPv4 address`},
		{[]string{"--sip-listen", "0.0.0.0:5060"}, `--sip-listen: host 0.0.0.0 makes the RTP proxy bind 0.0.0.0, which needs --rtp-advertise IP`},
		{[]string{"--digest-algorithms", "SHA-1"}, `--digest-algorithms: "SHA-1": must be SHA-256 or MD5`},
		{[]string{"--digest-algorithms", "MD5,md5"}, `--digest-algorithms: "md5": listed twice`},
		{[]string{"--digest-algorithms", ","}, `--digest-algorithms: ",": must list SHA-256, MD5 or both`},
		{[]string{"--pprof", "nonsense"}, `--pprof: listen tcp: address nonsense: missing port in address`},
		{[]string{"--sip-udp-readers", "-1"}, `--sip-udp-readers: -1: must be 0 (one per CPU) or more`},
		{[]string{"--max-calls", "-5"}, `--max-calls: -5: must be 0 (no limit) or more`},
		{[]string{"--overload-retry-after", "500ms"}, `--overload-retry-after: 500ms: must be at least 1s`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(binary, append([]string{"serve"}, tt.args...)...)
			cmd.Dir = dir
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("exit: %v, want a non-zero status", err)
			}
			lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "b2bua: ") || !strings.Contains(lines[0], tt.want) {
				t.Fatalf("stderr %q, want one line \"b2bua: ...%s...\"", stderr.String(), tt.want)
			}
			if _, err := os.Stat(dir + "/b2bua.db"); !os.IsNotExist(err) {
				t.Errorf("a bad flag created the registry (%v)", err)
			}
		})
	}
}

func TestParseDigestAlgorithms(t *testing.T) {
	for in, want := range map[string]string{
		"SHA-256,MD5":  "SHA-256,MD5",
		"MD5, SHA-256": "MD5,SHA-256",
		"md5":          "md5",
	} {
		got, err := parseDigestAlgorithms(in)
		if err != nil || strings.Join(got, ",") != want {
			t.Errorf("parseDigestAlgorithms(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
}
