package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestREADMEConferenceExamples runs the sh examples of the conference
// section as one shell session against a real serve (a background job the
// last example stops), on free ports and a registry in a temporary
// directory.
func TestREADMEConferenceExamples(t *testing.T) {
	if _, err := exec.LookPath("jq"); err != nil && os.Getenv("CI") != "true" {
		t.Skip("jq is not installed")
	}
	dir := t.TempDir()
	sipAddr, httpAddr := freePort(t), freePort(t)
	var script, want strings.Builder
	for i, ex := range readmeExamples(t, filepath.Join("..", "..", "README.md"), "Conferences (in progress)") {
		script.WriteString(ex.script)
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
	cmd.Dir = dir
	cmd.Env = []string{
		"PATH=" + filepath.Dir(binary) + string(os.PathListSeparator) + os.Getenv("PATH"),
		"HOME=" + dir,
		"B2BUA_DB=" + filepath.Join(dir, "b2bua.db"),
		"B2BUA_SIP_LISTEN=" + sipAddr,
		"B2BUA_HTTP_LISTEN=" + httpAddr,
		"B2BUA_API=" + httpAddr,
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
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
	if !strings.Contains(stderr.String(), "conference created") {
		t.Errorf("log lacks the conference:\n%s", stderr.String())
	}
}

// TestConferenceCLIBadArguments: mistakes are reported before any request,
// so no server needs to run (none listens on the --api given).
func TestConferenceCLIBadArguments(t *testing.T) {
	db := newDB(t)
	dead := freePort(t) // closed again: nothing listens there
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"conference", "create"}, "owner: --owner is required"},
		{[]string{"conference", "create", "--owner", "alice", "--output", "xml"}, "must be table or json"},
		{[]string{"conference", "show"}, "ID: argument is required"},
		{[]string{"conference", "add", "abc"}, "PARTICIPANT: argument is required"},
		{[]string{"conference", "add", "abc", "not a number"}, "must be an IM ID or an E.164 number"},
		{[]string{"conference", "mute", "abc", "p1", "extra"}, `unexpected "extra"`},
		{[]string{"conference", "list"}, "api token"}, // no serve ever wrote a token beside this db
	} {
		r := cli(t, db, "", append(tc.args, "--api", dead)...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("b2bua %s: exit %d, stderr %q, want %q", strings.Join(tc.args, " "), r.code, r.stderr, tc.want)
		}
	}
}
