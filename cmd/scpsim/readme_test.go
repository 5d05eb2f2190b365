package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imcall/b2bua/internal/testenv"
	"github.com/imcall/b2bua/scp/sim"
)

// block is a fenced block of README.md.
type block struct {
	line       int
	lang, text string
	want       *string // for an sh block, the text block right after it
}

// readmeBlocks returns the fenced blocks of the README section titled title
// (up to the next "## " heading).
func readmeBlocks(t *testing.T, title string) []*block {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var (
		out     []*block
		in      bool
		cur     *block
		lastSh  *block
		lines   []string
		section bool
	)
	for i, l := range strings.Split(string(b), "\n") {
		if cur == nil && strings.HasPrefix(l, "## ") {
			in = l == "## "+title
			section = section || in
			continue
		}
		if !in {
			continue
		}
		switch {
		case strings.HasPrefix(l, "```") && cur == nil:
			cur, lines = &block{line: i + 1, lang: strings.TrimPrefix(l, "```")}, nil
		case strings.HasPrefix(l, "```"):
			cur.text = strings.Join(lines, "\n") + "\n"
			switch {
			case cur.lang == "text" && lastSh != nil:
				lastSh.want = &cur.text
				lastSh = nil
			case cur.lang == "sh":
				lastSh = cur
			default:
				lastSh = nil
			}
			out = append(out, cur)
			cur = nil
		case cur != nil:
			lines = append(lines, l)
		case strings.TrimSpace(l) != "":
			lastSh = nil
		}
	}
	if !section || len(out) == 0 {
		t.Fatalf("README.md has no blocks under %q", title)
	}
	return out
}

// TestREADME runs the examples of the README's scpsim section as a user
// would, in order, and checks the output it shows. The server runs on a
// free port; the default address in the examples is rewritten to it.
func TestREADME(t *testing.T) {
	const defaultURL = "http://127.0.0.1:8070"
	dir := t.TempDir()
	fixture, err := os.ReadFile(filepath.Join("..", "..", "testdata", "scp", "subscribers.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "testdata", "scp"), 0o755)
	os.WriteFile(filepath.Join(dir, "testdata", "scp", "subscribers.json"), fixture, 0o644)

	// The server belongs to the whole test (the blocks after it talk to
	// it); every other block is a subtest of its own, so that one needing
	// a tool that is missing shows as a skip, and under CI as a failure.
	var srv *server
	for _, b := range readmeBlocks(t, "SCP simulator (scpsim)") {
		if b.lang == "sh" && strings.HasPrefix(b.text, "scpsim serve ") {
			args := strings.Fields(b.text)[1:]
			for i := 1; i < len(args); i++ {
				if args[i-1] == "--http" {
					args[i] = "127.0.0.1:0"
				}
			}
			srv = startServerIn(t, dir, args...)
			continue
		}
		ok := t.Run(fmt.Sprintf("README.md:%d", b.line), func(t *testing.T) {
			switch b.lang {
			case "json":
				if _, err := sim.DecodeSubscribers(strings.NewReader(b.text)); err != nil {
					t.Errorf("the example subscribers file is invalid: %v", err)
				}
			case "sh":
				if srv == nil {
					t.Fatal("example before scpsim serve")
				}
				if strings.Contains(b.text, "curl ") {
					testenv.NeedTool(t, "curl")
				}
				cmd := exec.Command("sh", "-e", "-c", strings.ReplaceAll(b.text, defaultURL, srv.URL))
				cmd.Dir = dir
				cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(binary)+string(os.PathListSeparator)+os.Getenv("PATH"), "SCPSIM_SERVER="+srv.URL)
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				if err := cmd.Run(); err != nil {
					t.Fatalf("%v\n%s\nstderr: %s", err, b.text, stderr.String())
				}
				if b.want != nil && stdout.String() != *b.want {
					t.Errorf("output\n%s\nREADME shows\n%s", stdout.String(), *b.want)
				}
			}
		})
		if !ok {
			// The later examples build on this one's effect.
			t.FailNow()
		}
	}
	if srv == nil {
		t.Fatal("README.md: no scpsim serve example")
	}
	srv.stop(t)
	if _, err := os.Stat(filepath.Join(dir, "scpsim-state.json")); err != nil {
		t.Fatalf("the README's --state file was not written: %v", err)
	}
}
