package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeTokenFile runs scpsim serve with --token-file over a real
// listener: every /scp/v1/ route, locate included, needs the token, which
// the subscriber commands send from --token or SCPSIM_TOKEN; /healthz stays
// open.
func TestServeTokenFile(t *testing.T) {
	dir := t.TempDir()
	const token = "scpsim-admin-token"
	tf := filepath.Join(dir, "token")
	if err := os.WriteFile(tf, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServerIn(t, dir, "serve", "--http", "127.0.0.1:0", "--token-file", tf)
	defer srv.stop(t)

	for _, tc := range []struct {
		name     string
		args     []string
		env      map[string]string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{"attach without token", []string{"attach", "--imsi", "001010000000042", "--addr", "127.0.0.1:6000"}, nil, 1, "", "a bearer token is required"},
		{"attach with wrong token", []string{"attach", "--imsi", "001010000000042", "--addr", "127.0.0.1:6000", "--token", "nope"}, nil, 1, "", "the bearer token is not valid"},
		{"attach with --token", []string{"attach", "--imsi", "001010000000042", "--addr", "127.0.0.1:6000", "--token", token}, nil, 0, "attached imsi:001010000000042: online 127.0.0.1:6000\n", ""},
		{"list with SCPSIM_TOKEN", []string{"list"}, map[string]string{"SCPSIM_TOKEN": token}, 0, "imsi:001010000000042", ""},
		{"list without token", []string{"list"}, nil, 1, "", "a bearer token is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"SCPSIM_SERVER": srv.URL}
			for k, v := range tc.env {
				env[k] = v
			}
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"subscriber"}, tc.args...), &stdout, &stderr, func(k string) string { return env[k] })
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d; stderr %s", code, tc.wantCode, stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.wantOut) || !strings.Contains(stderr.String(), tc.wantErr) {
				t.Errorf("stdout %q stderr %q; want %q / %q", stdout.String(), stderr.String(), tc.wantOut, tc.wantErr)
			}
		})
	}

	// Locate, which the b2bua's http backend asks, takes the token too.
	for _, tc := range []struct {
		path, auth string
		want       int
		body       string
	}{
		{"/scp/v1/locate?id=imsi:001010000000042", "", 401, "a bearer token is required"},
		{"/scp/v1/locate?id=imsi:001010000000042", "Bearer nope", 401, "the bearer token is not valid"},
		{"/scp/v1/locate?id=imsi:001010000000042", "Bearer " + token, 200, "127.0.0.1:6000"},
		{"/healthz", "", 200, "ok"},
	} {
		req, _ := http.NewRequest("GET", srv.URL+tc.path, nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != tc.want || !strings.Contains(string(body), tc.body) {
			t.Errorf("GET %s with %q: %d %s", tc.path, tc.auth, res.StatusCode, body)
		}
	}
	// The help does not show a token taken from the environment.
	var out bytes.Buffer
	run(context.Background(), []string{"subscriber", "list", "--help"}, &out, &out, func(k string) string {
		if k == "SCPSIM_TOKEN" {
			return token
		}
		return ""
	})
	if strings.Contains(out.String(), token) {
		t.Errorf("--help shows the token:\n%s", out.String())
	}
}

// TestServeTokenFileErrors: a token file that cannot be used (empty, or
// a directory) stops the start rather than leaving the admin routes open.
func TestServeTokenFileErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	for _, tf := range []string{empty, dir, filepath.Join(dir, "no-such-dir", "token")} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"serve", "--http", "127.0.0.1:0", "--token-file", tf}, &stdout, &stderr, func(string) string { return "" })
		if code == 0 || !strings.Contains(stderr.String(), "token-file") {
			t.Errorf("%s: exit %d, stderr %q", tf, code, stderr.String())
		}
	}
}

// TestServeCreatesTokenFile: a --token-file that does not exist is created
// with a random token, mode 0600, which the routes then require, so the
// README's `scpsim serve --token-file scp.token` followed by `b2bua serve
// --scp-token-file scp.token` works from nothing.
func TestServeCreatesTokenFile(t *testing.T) {
	dir := t.TempDir()
	tf := filepath.Join(dir, "scp.token")
	srv := startServerIn(t, dir, "serve", "--http", "127.0.0.1:0", "--token-file", tf)
	fi, err := os.Stat(tf)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", fi, err)
	}
	b, _ := os.ReadFile(tf)
	tok := strings.TrimSpace(string(b))
	if len(tok) < 32 {
		t.Fatalf("token %q", tok)
	}
	for auth, want := range map[string]int{"": 401, "Bearer " + tok: 200} {
		req, _ := http.NewRequest("GET", srv.URL+"/scp/v1/subscribers", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("with %q: %d, want %d", auth, res.StatusCode, want)
		}
	}
	if !strings.Contains(srv.logs.String(), "token file created") || strings.Contains(srv.logs.String(), tok) {
		t.Errorf("log names the file without the token? %s", srv.logs)
	}
}
