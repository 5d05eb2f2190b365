package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// run runs the binary in dir with env added to a clean environment.
func run(t *testing.T, dir string, env []string, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A serve that wrongly starts must fail the test, not hang it.
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	code := 0
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("running b2bua %s: %v", strings.Join(args, " "), err)
	}
	return result{out.String(), errb.String(), code}
}

// TestDBSpec: --db takes a plain path or sqlite:PATH, from the flag or the
// environment, and they name the same registry.
func TestDBSpec(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "b2bua.db")
	steps := []struct {
		name  string
		env   []string
		stdin string
		args  []string
		want  string // substring of stdout
	}{
		{"add through sqlite:", nil, "pw\n", []string{"--db", "sqlite:" + path, "user", "add", "alice", "--password-stdin"}, ""},
		{"add through a relative sqlite:", nil, "pw\n", []string{"--db", "sqlite:b2bua.db", "user", "add", "bob", "--password-stdin"}, ""},
		{"list through the plain path", nil, "", []string{"--db", path, "user", "list"}, "alice"},
		{"list through the environment", []string{"B2BUA_DB=sqlite:./b2bua.db"}, "", []string{"user", "list"}, "bob"},
	}
	for _, s := range steps {
		r := run(t, dir, s.env, s.stdin, s.args...)
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("%s: exit %d, stderr %q", s.name, r.code, r.stderr)
		}
		if !strings.Contains(r.stdout, s.want) {
			t.Errorf("%s: stdout %q, want %q in it", s.name, r.stdout, s.want)
		}
	}
}

// TestDBErrors: a --db in a missing directory is refused with a line that
// names the directory, by the CLI and by serve, and nothing is created; an
// unknown scheme names the ones that exist.
func TestDBErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "no", "such")
	serve := []string{"serve", "--sip-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"}
	for _, tc := range []struct {
		name  string
		db    string
		args  []string
		stdin string
		want  string
	}{
		{"user list", filepath.Join(missing, "b2bua.db"), []string{"user", "list"}, "", "directory " + missing + " does not exist"},
		{"user add", filepath.Join(missing, "b2bua.db"), []string{"user", "add", "alice", "--password-stdin"}, "pw\n", "directory " + missing + " does not exist"},
		{"serve", filepath.Join(missing, "b2bua.db"), serve, "", "directory " + missing + " does not exist"},
		{"serve through sqlite:", "sqlite:" + filepath.Join(missing, "b2bua.db"), serve, "", "directory " + missing + " does not exist"},
		{"unknown scheme", "mongodb://db.example/b2bua", []string{"user", "list"}, "", "unknown store: the scheme must be one of postgres:, postgresql:, sqlite:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, dir, nil, tc.stdin, append([]string{"--db", tc.db}, tc.args...)...)
			if r.code == 0 {
				t.Fatalf("exit 0, stdout %q", r.stdout)
			}
			if !strings.Contains(r.stderr, tc.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
				t.Errorf("stderr %q, want one line containing %q", r.stderr, tc.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "no")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing directory was created: %v", err)
	}
}
