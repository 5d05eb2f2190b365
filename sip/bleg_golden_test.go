package sip_test

import (
	"flag"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/scp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/sip with what the B2BUA sends now")

// goldenSep separates a golden file's A-leg INVITE from the B-leg INVITE
// expected for it.
const goldenSep = "\n----- B-leg INVITE -----\n"

// TestBLegInviteGolden: each ../testdata/sip/*.txt holds an INVITE a caller
// sends (with {{b2bua}} and {{caller}} for the addresses), the separator,
// and the INVITE the terminal must receive for it, with the values that
// change from run to run normalised (normaliseInvite). Content-Length of
// the input is recomputed. go test ./sip -run BLegInviteGolden -update
// rewrites the expected parts.
func TestBLegInviteGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "testdata", "sip", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			in, want, ok := strings.Cut(string(b), goldenSep)
			in = strings.TrimRight(in, "\n")
			if !ok && !*update {
				t.Fatalf("%s: no %q separator", f, strings.TrimSpace(goldenSep))
			}
			e := newEnv(t)
			caller, term := newRawPeer(t), newRawPeer(t)
			e.addUser("bob")
			e.addLegacy("bob", "001010000000001", term.addr, scp.Online)

			text := strings.NewReplacer("{{b2bua}}", e.addr, "{{caller}}", caller.addr).Replace(in)
			head, body, _ := strings.Cut(text, "\n\n")
			head = strings.TrimRight(head, "\n")
			m, err := sipmsg.ParseMessage([]byte(strings.ReplaceAll(head, "\n", "\r\n") + "\r\n\r\n"))
			if err != nil {
				t.Fatalf("input: %v", err)
			}
			req := m.(*sipmsg.Request)
			if body != "" {
				req.SetBody([]byte(strings.ReplaceAll(body, "\n", "\r\n")))
			}
			dst, _ := net.ResolveUDPAddr("udp", e.addr)
			caller.send(req, dst)

			inv := term.next(sipmsg.INVITE, 5*time.Second)
			got := normaliseInvite(inv.raw, map[string]string{e.addr: "{{b2bua}}", term.addr: "{{terminal}}", caller.addr: "{{caller}}"})
			term.respond(inv, 486, "Busy Here")
			caller.nextResponse(300, 5*time.Second)
			waitIdle(t, e)

			if *update {
				if err := os.WriteFile(f, []byte(in+goldenSep+got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got != want {
				t.Errorf("B-leg INVITE differs from %s (-update rewrites it)\n--- got\n%s\n--- want\n%s", f, got, want)
			}
		})
	}
}

var (
	reBranch = regexp.MustCompile(`branch=z9hG4bK[^;\s,]*`)
	reTag    = regexp.MustCompile(`tag=[^;\s,>]+`)
	reCallID = regexp.MustCompile(`(?m)^(Call-ID|i): .*$`)
)

// normaliseInvite turns the wire form of a request into the golden form:
// LF line ends, branches, tags and the Call-ID replaced by placeholders,
// and the addresses in addrs by their names.
func normaliseInvite(raw string, addrs map[string]string) string {
	s := strings.ReplaceAll(raw, "\r\n", "\n")
	for a, name := range addrs {
		s = strings.ReplaceAll(s, a, name)
	}
	s = reBranch.ReplaceAllString(s, "branch={{branch}}")
	s = reTag.ReplaceAllString(s, "tag={{tag}}")
	s = reCallID.ReplaceAllString(s, "$1: {{call-id}}")
	return s
}
