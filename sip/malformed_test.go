package sip

import (
	"strings"
	"testing"
)

const goodOptions = "OPTIONS sip:b2bua@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:b2bua@127.0.0.1>\r\nCall-ID: x\r\nCSeq: 7 OPTIONS\r\nContent-Length: 0\r\n\r\n"

func TestCheckRequest(t *testing.T) {
	tests := []struct {
		name string
		msg  string
		ok   bool
	}{
		{"valid", goodOptions, true},
		{"compact and tabbed CSeq", strings.Replace(goodOptions, "CSeq: 7 OPTIONS", "cseq :\t7\tOPTIONS", 1), true},
		// A token, so a method (unknown: 405, RFC 4475 §3.1.1.2).
		{"lower-case method", strings.Replace(goodOptions, "OPTIONS sip:", "options sip:", 1), true},
		{"no URI", strings.Replace(goodOptions, "OPTIONS sip:b2bua@127.0.0.1 SIP/2.0", "OPTIONS SIP/2.0", 1), false},
		{"space in URI", strings.Replace(goodOptions, "sip:b2bua@127.0.0.1", "sip:b2 bua@127.0.0.1", 1), false},
		{"wrong version", strings.Replace(goodOptions, "SIP/2.0\r\nVia", "SIP/3.0\r\nVia", 1), false},
		{"CSeq without number", strings.Replace(goodOptions, "CSeq: 7 OPTIONS", "CSeq: OPTIONS", 1), false},
		{"CSeq without method", strings.Replace(goodOptions, "CSeq: 7 OPTIONS", "CSeq: 7", 1), false},
		{"cut short", goodOptions[:60], false},
	}
	for _, tc := range tests {
		if err := checkRequest([]byte(tc.msg), true); (err == nil) != tc.ok {
			t.Errorf("%s: checkRequest = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
	// A well-formed version other than 2.0 gets 505 (RFC 3261 §21.5.7); a
	// malformed one is a malformed request line (400).
	for v, want := range map[string]int{"SIP/3.0": 505, "sip/99999.0": 505, "SIP/2.": 400, "SIP/2.0a": 400, "/2.0": 400} {
		bad := checkRequest([]byte(strings.Replace(goodOptions, "SIP/2.0\r\nVia", v+"\r\nVia", 1)), true)
		if bad == nil || bad.status != want {
			t.Errorf("version %q: checkRequest = %+v, want status %d", v, bad, want)
		}
	}
}

func TestBadRequestEchoesTransactionHeaders(t *testing.T) {
	res := string(badRequest([]byte(strings.Replace(goodOptions, "CSeq: 7 OPTIONS", "CSeq: x", 1)), `why "not"`))
	for _, want := range []string{"SIP/2.0 400 Bad Request\r\n", "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n", "Call-ID: x\r\n", "CSeq: x\r\n", `Warning: 399 b2bua "malformed request: why 'not'"`, "Content-Length: 0\r\n\r\n"} {
		if !strings.Contains(res, want) {
			t.Errorf("400 lacks %q:\n%s", want, res)
		}
	}
	if badRequest([]byte("OPTIONS x SIP/2.0\r\nCall-ID: y\r\n\r\n"), "no via") != nil {
		t.Error("a 400 without a Via to send it to")
	}
}

func FuzzCheckRequest(f *testing.F) {
	f.Add([]byte(goodOptions))
	f.Add([]byte("INVITE sip:x SIP/2.0\r\nCSeq: 1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = checkRequest(data, true)
		if res := badRequest(data, "fuzz"); res != nil && !strings.HasPrefix(string(res), "SIP/2.0 400 ") {
			t.Fatalf("bad response %q", res)
		}
	})
}
