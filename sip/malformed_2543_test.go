package sip

import (
	"strings"
	"testing"

	sipmsg "github.com/emiago/sipgo/sip"
)

func TestRFC2543Branch(t *testing.T) {
	inv := "INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060\r\nFrom: <sip:a@example.net>\r\nTo: <sip:bob@example.com>\r\nCall-ID: c1\r\nCSeq: 4 INVITE\r\nContent-Length: 0\r\n\r\n"
	branch := func(msg string) string {
		out := rfc2543Branch([]byte(msg))
		if out == nil {
			return ""
		}
		m, err := sipmsg.ParseMessage(out)
		if err != nil {
			t.Fatalf("rewritten request does not parse: %v\n%s", err, out)
		}
		b, _ := m.Via().Params.Get("branch")
		return b
	}
	b := branch(inv)
	if !strings.HasPrefix(b, "z9hG4bK2543-") {
		t.Fatalf("INVITE in RFC 2543 form: branch %q", b)
	}
	// RFC 3261 §17.2.3: the ACK of a non-2xx and the CANCEL match the INVITE.
	ack := strings.NewReplacer("INVITE sip:", "ACK sip:", "4 INVITE", "4 ACK", "To: <sip:bob@example.com>", "To: <sip:bob@example.com>;tag=x").Replace(inv)
	cancel := strings.NewReplacer("INVITE sip:", "CANCEL sip:", "4 INVITE", "4 CANCEL").Replace(inv)
	if branch(ack) != b || branch(cancel) != b {
		t.Errorf("ACK %q and CANCEL %q, want the INVITE's %q", branch(ack), branch(cancel), b)
	}
	if other := branch(strings.Replace(inv, "CSeq: 4", "CSeq: 5", 1)); other == b || other == "" {
		t.Errorf("a new request got branch %q", other)
	}
	for name, msg := range map[string]string{
		"RFC 3261 branch": strings.Replace(inv, "5060\r\n", "5060;branch=z9hG4bKabc\r\n", 1),
		"From tag":        strings.Replace(inv, "<sip:a@example.net>", "<sip:a@example.net>;tag=f", 1),
		"Via list":        strings.Replace(inv, "5060\r\n", "5060, SIP/2.0/UDP 192.0.2.2\r\n", 1),
	} {
		if out := rfc2543Branch([]byte(msg)); out != nil {
			t.Errorf("%s: rewritten to\n%s", name, out)
		}
	}
}
