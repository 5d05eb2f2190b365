package provision

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/imcall/b2bua/internal/testenv"
	"github.com/imcall/b2bua/registry/sqlite"
)

// shExample is a ```sh block of README.md and the ```text block that
// follows it, if any.
type shExample struct {
	line         int
	script, want string
	hasWant      bool
}

// readmeExamples returns the ```sh blocks under the "## title" heading of
// the README, up to the next "## " heading.
func readmeExamples(t *testing.T, path, title string) []shExample {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var (
		out         []shExample
		in, fenced  bool
		info        string
		body        []string
		start, last = 0, -1
	)
	for i, l := range strings.Split(string(b), "\n") {
		if !fenced && strings.HasPrefix(l, "## ") {
			in = l == "## "+title
			continue
		}
		if !in {
			continue
		}
		switch {
		case strings.HasPrefix(l, "```") && !fenced:
			fenced, info, body, start = true, strings.TrimPrefix(l, "```"), nil, i+1
		case strings.HasPrefix(l, "```"):
			fenced = false
			text := strings.Join(body, "\n") + "\n"
			switch {
			case info == "sh":
				out = append(out, shExample{line: start, script: text})
				last = len(out) - 1
			case info == "text" && last >= 0:
				out[last].want, out[last].hasWant = text, true
				last = -1
			default:
				last = -1
			}
		case fenced:
			body = append(body, l)
		case strings.TrimSpace(l) != "":
			last = -1
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s: no sh examples under %q", path, title)
	}
	return out
}

// withoutTimes decodes a JSON line and drops every created_at, the one
// value an example cannot predict.
func withoutTimes(t *testing.T, line string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(line), &v); err != nil {
		t.Fatalf("not JSON: %q: %v", line, err)
	}
	var strip func(any)
	strip = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			delete(x, "created_at")
			for _, e := range x {
				strip(e)
			}
		case []any:
			for _, e := range x {
				strip(e)
			}
		}
	}
	strip(v)
	return v
}

// TestREADMEAPIExamples runs the README's curl examples against the API on
// a loopback listener with a real store and compares the JSON they print
// with the README's, creation times aside.
func TestREADMEAPIExamples(t *testing.T) {
	testenv.NeedTool(t, "curl")
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "reg.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv := newServer(t, NewHandler(Config{Store: st, Token: token}))
	for _, ex := range readmeExamples(t, filepath.Join("..", "README.md"), "Provisioning API") {
		cmd := exec.Command("sh", "-e", "-c", ex.script)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "API=" + srv.URL, "B2BUA_API_TOKEN=" + token}
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("README.md:%d: %v\n%s\nstderr: %s", ex.line, err, ex.script, stderr.String())
		}
		if !ex.hasWant {
			continue
		}
		got := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
		want := strings.Split(strings.TrimSuffix(ex.want, "\n"), "\n")
		if len(got) != len(want) {
			t.Fatalf("README.md:%d: output\n%s\nREADME shows\n%s", ex.line, stdout.String(), ex.want)
		}
		for i := range got {
			if !reflect.DeepEqual(withoutTimes(t, got[i]), withoutTimes(t, want[i])) {
				t.Errorf("README.md:%d: output line\n%s\nREADME shows\n%s", ex.line, got[i], want[i])
			}
		}
	}
}
