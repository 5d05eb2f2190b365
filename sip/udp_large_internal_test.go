package sip

import (
	"errors"
	"strings"
	"testing"

	sipmsg "github.com/emiago/sipgo/sip"
)

// TestFitsUDP: a request over UDP is refused past 1300 bytes, as RFC 3261
// §18.1.1 says and sipgo did; over TCP any size goes.
func TestFitsUDP(t *testing.T) {
	build := func(transport string, size int) *sipmsg.Request {
		req := sipmsg.NewRequest(sipmsg.MESSAGE, sipmsg.Uri{Scheme: "sip", User: "bob", Host: "im.test"})
		req.AppendHeader(sipmsg.NewHeader("Call-ID", "c1"))
		req.SetTransport(transport)
		req.SetBody(nil)
		pad := size - len(req.String())
		req.SetBody([]byte(strings.Repeat("x", pad)))
		// Content-Length grew with the body's digits: trim to size.
		req.SetBody([]byte(strings.Repeat("x", pad-(len(req.String())-size))))
		if n := len(req.String()); n != size {
			t.Fatalf("built %d bytes, want %d", n, size)
		}
		return req
	}
	for _, tc := range []struct {
		transport string
		size      int
		refused   bool
	}{
		{"UDP", 1300, false},
		{"UDP", 1301, true},
		{"udp", 4000, true},
		{"TCP", 4000, false},
		{"TLS", 70000, false},
	} {
		err := fitsUDP(build(tc.transport, tc.size))
		if got := errors.Is(err, sipmsg.ErrUDPMTUCongestion); got != tc.refused {
			t.Errorf("%s, %d bytes: refused %v (%v), want %v", tc.transport, tc.size, got, err, tc.refused)
		}
	}
}
