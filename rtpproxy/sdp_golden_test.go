package rtpproxy

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the expected output of the golden SDP files")

// goldenStep is one SDP passed through a call and what must come out.
type goldenStep struct {
	kind  string // "offer" or "answer"
	from  Leg
	input string
	want  string
}

const goldenDir = "../testdata/sdp"

// TestGoldenSDP replays each file of testdata/sdp through one call: a file
// is a sequence of "--- offer a" / "--- answer b" sections, each followed by
// "--- want" and the SDP the other side must get (or "ERROR <status>
// <warning>"). Run with -update to rewrite the want sections.
func TestGoldenSDP(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for i, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			head, steps, err := parseGolden(string(raw))
			if err != nil {
				t.Fatal(err)
			}
			p := newTestProxy(t, 30000+i*200, nil)
			c := newTestCall(t, p)
			for n, st := range steps {
				var out []byte
				var err error
				in := []byte(strings.ReplaceAll(st.input, "\n", "\r\n"))
				if st.kind == "offer" {
					out, err = c.RewriteOffer(st.from, other(st.from), in)
				} else {
					out, err = c.RewriteAnswer(st.from, other(st.from), in)
				}
				got := strings.ReplaceAll(string(out), "\r\n", "\n")
				var e *Error
				if errors.As(err, &e) {
					got = fmt.Sprintf("ERROR %d %s\n", e.StatusCode(), e.Warning("b2bua"))
				} else if err != nil {
					t.Fatalf("step %d: untyped error %v", n+1, err)
				}
				if *update {
					steps[n].want = got
					continue
				}
				if got != st.want {
					t.Errorf("step %d (%s %v):\n--- got\n%s--- want\n%s", n+1, st.kind, st.from, got, st.want)
				}
			}
			if *update {
				if err := os.WriteFile(f, []byte(formatGolden(head, steps)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func parseGolden(s string) (head string, steps []goldenStep, err error) {
	parts := strings.Split("\n"+s, "\n--- ")
	if head = strings.TrimPrefix(parts[0], "\n"); head != "" {
		head += "\n"
	}
	for _, p := range parts[1:] {
		title, body, _ := strings.Cut(p, "\n")
		body = strings.TrimSuffix(body, "\n") + "\n"
		fs := strings.Fields(title)
		switch {
		case len(fs) == 2 && (fs[0] == "offer" || fs[0] == "answer") && (fs[1] == "a" || fs[1] == "b"):
			steps = append(steps, goldenStep{kind: fs[0], from: Leg(fs[1]), input: body})
		case len(fs) == 1 && fs[0] == "want" && len(steps) > 0:
			steps[len(steps)-1].want = body
		default:
			return "", nil, fmt.Errorf("bad section title %q", title)
		}
	}
	return head, steps, nil
}

func formatGolden(head string, steps []goldenStep) string {
	var b strings.Builder
	b.WriteString(head)
	for _, st := range steps {
		fmt.Fprintf(&b, "--- %s %v\n%s--- want\n%s", st.kind, st.from, st.input, st.want)
	}
	return b.String()
}
