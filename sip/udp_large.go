package sip

import (
	"net"
	"net/netip"
	"strings"

	sipmsg "github.com/emiago/sipgo/sip"
)

// sendLargeUDP sends a response to a UDP request that sipgo refused to
// send because it is over 1300 bytes (ErrUDPMTUCongestion). That bound is
// RFC 3261 §18.1.1's for requests, which a client can move to TCP; a
// response goes back over the transport the request came on (§18.2.2), and
// a large one is fragmented by IP rather than lost (RFC 4475 §3.1.1.7,
// longreq). The destination is the one sipgo chose from the source address
// (§18.2.2, RFC 3581), never a name: anything but an address is refused.
func (s *Server) sendLargeUDP(res *sipmsg.Response) bool {
	if !strings.EqualFold(res.Transport(), "UDP") {
		return false
	}
	ap, err := netip.ParseAddrPort(res.Destination())
	if err != nil {
		return false
	}
	ln := s.ln.Load()
	if ln == nil {
		return false
	}
	_, err = ln.udp[0].WriteTo([]byte(res.String()), net.UDPAddrFromAddrPort(ap))
	return err == nil
}
