package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// example is a shell block from README.md and the output the README shows
// for it (the text block right after it), if any.
type example struct {
	line          int
	script, want  string
	hasWantOutput bool
}

// readmeExamples returns the ```sh blocks of the README section whose
// heading is title (up to the next "## " heading).
func readmeExamples(t *testing.T, path, title string) []example {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	var (
		out      []example
		in       bool
		fence    string // info string of the open fence; "" when outside one
		body     []string
		start    int
		lastSh   = -1 // index in out of an sh block not yet followed by prose
		inFenced bool
	)
	for i, l := range lines {
		if !inFenced && strings.HasPrefix(l, "## ") {
			in = l == "## "+title
			continue
		}
		if !in {
			continue
		}
		if strings.HasPrefix(l, "```") {
			if !inFenced {
				inFenced, fence, body, start = true, strings.TrimPrefix(l, "```"), nil, i+1
				continue
			}
			inFenced = false
			text := strings.Join(body, "\n") + "\n"
			switch {
			case fence == "sh":
				out = append(out, example{line: start, script: text})
				lastSh = len(out) - 1
			case fence == "text" && lastSh >= 0:
				out[lastSh].want, out[lastSh].hasWantOutput = text, true
				lastSh = -1
			default:
				lastSh = -1
			}
			continue
		}
		if inFenced {
			body = append(body, l)
		} else if strings.TrimSpace(l) != "" {
			lastSh = -1
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s: no sh examples under %q", path, title)
	}
	return out
}

// TestREADMECLIExamples runs the CLI examples of README.md in order, in one
// directory, as a user would type them, and checks the output the README
// shows.
func TestREADMECLIExamples(t *testing.T) {
	dir := t.TempDir()
	env := []string{"PATH=" + filepath.Dir(binary) + string(os.PathListSeparator) + os.Getenv("PATH"), "HOME=" + dir}
	for _, ex := range readmeExamples(t, filepath.Join("..", "..", "README.md"), "Managing users and terminals (CLI)") {
		cmd := exec.Command("sh", "-e", "-c", ex.script)
		cmd.Dir = dir
		cmd.Env = env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("README.md:%d: %v\n%s\nstderr: %s", ex.line, err, ex.script, stderr.String())
		}
		if stderr.Len() != 0 {
			t.Errorf("README.md:%d: stderr %q", ex.line, stderr.String())
		}
		if ex.hasWantOutput && stdout.String() != ex.want {
			t.Errorf("README.md:%d: output\n%s\nREADME shows\n%s", ex.line, stdout.String(), ex.want)
		}
	}
}
