package sip

import (
	"net/netip"
	"strings"
	"testing"
)

func TestViaReceived(t *testing.T) {
	src := netip.MustParseAddr("127.0.0.1")
	msg := func(via string) string {
		return "OPTIONS sip:x@y SIP/2.0\r\nVia: " + via + "\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
	}
	for _, tc := range []struct{ via, want string }{
		{"SIP/2.0/TCP 127.0.0.2:5099;branch=z9hG4bK1", "SIP/2.0/TCP 127.0.0.2:5099;branch=z9hG4bK1;received=127.0.0.1"},
		{"SIP/2.0/TCP host5.example.net;branch=z9hG4bK1;received=192.0.2.15;rport=9", "SIP/2.0/TCP host5.example.net;branch=z9hG4bK1;received=127.0.0.1"},
		{"SIP/2.0/TCP a.example:5060;rport;branch=z9hG4bK1, SIP/2.0/UDP b", "SIP/2.0/TCP a.example:5060;rport;branch=z9hG4bK1;received=127.0.0.1, SIP/2.0/UDP b"},
		{"SIP/2.0/TCP 127.0.0.1:5099;branch=z9hG4bK1;received=127.0.0.1", ""},
		{"SIP/2.0/TCP 127.0.0.1:5099;branch=z9hG4bK1", ""}, // the source already
		{"SIP/2.0/TCP 127.0.0.1;branch=z9hG4bK1", ""},
	} {
		out := viaReceived([]byte(msg(tc.via)), src)
		if tc.want == "" {
			if out != nil {
				t.Errorf("%q rewritten to %q", tc.via, out)
			}
			continue
		}
		if string(out) != msg(tc.want) {
			t.Errorf("%q:\ngot  %q\nwant %q", tc.via, out, msg(tc.want))
		}
	}
	if out := viaReceived([]byte(strings.Replace(msg("SIP/2.0/TCP h"), "\r\nCSeq", "\r\n ;x=1\r\nCSeq", 1)), src); out != nil {
		t.Errorf("folded Via rewritten: %q", out)
	}
}
