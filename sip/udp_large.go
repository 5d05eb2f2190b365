package sip

import (
	"fmt"
	"strings"

	sipmsg "github.com/emiago/sipgo/sip"
)

// maxUDPRequest is RFC 3261 §18.1.1's bound on a request sent over UDP
// when the path MTU is unknown: anything larger must go over a
// congestion-controlled transport.
const maxUDPRequest = 1300

// sipgo refuses to write any UDP message over UDPMTUSize-200 bytes, a
// response as well as a request. §18.1.1 bounds requests only: a response
// goes back over the transport its request came on (§18.2.2, whose
// procedures have no size rule), and one over the MTU is fragmented by IP
// rather than lost (RFC 4475 §3.1.1.7, longreq). The bound is sipgo's one
// process-wide knob and every write of the transport reads it, so it is
// set once, before any goroutine runs; for requests, fitsUDP applies the
// §18.1.1 bound in its place. 65535 is the largest UDP datagram.
func init() { sipmsg.UDPMTUSize = 65535 + 200 }

// fitsUDP refuses a request over UDP that is larger than maxUDPRequest
// (RFC 3261 §18.1.1), with sipgo's own error, as sipgo did before its
// bound was raised for responses.
func fitsUDP(r *sipmsg.Request) error {
	if !strings.EqualFold(r.Transport(), "UDP") {
		return nil
	}
	var n byteCount
	r.StringWrite(&n)
	if n > maxUDPRequest {
		return fmt.Errorf("sip: %s of %d bytes over UDP: %w", r.Method, n, sipmsg.ErrUDPMTUCongestion)
	}
	return nil
}

// byteCount counts what is written to it.
type byteCount int

func (n *byteCount) WriteString(s string) (int, error) {
	*n += byteCount(len(s))
	return len(s), nil
}
