package sip

import (
	"bytes"
	"net"
	"strings"

	sipmsg "github.com/emiago/sipgo/sip"
)

// badRequestFilter is a transport read filter for UDP. sipgo drops a
// datagram it cannot parse without a word, so the sender retransmits it to
// no end; RFC 3261 §8.2.2 and §16.3 want a 400. The filter parses the
// datagram first (sipgo parses it again after; about 4µs a message) and
// answers one that fails with a 400 built from its raw Via, From, To,
// Call-ID and CSeq lines. It lets everything else through unchanged.
//
// Over TCP sipgo closes a connection whose stream it cannot frame, which is
// the only safe move there (no message boundary to resync on); requests
// that parse but lack a Via or CSeq get sipgo's own stateless 400.
func (s *Server) badRequestFilter(props sipmsg.TransportReadProps, data []byte) ([]byte, error) {
	if props.Transport != "UDP" || len(data) <= 4 || bytes.HasPrefix(data, []byte("SIP/")) {
		return data, nil
	}
	_, err := s.parser.ParseSIP(data)
	if err == nil {
		return data, nil
	}
	s.mu.Lock()
	udp := s.udp
	s.mu.Unlock()
	if udp == nil || props.LocalAddr == nil || props.LocalAddr.String() != udp.LocalAddr().String() {
		return nil, nil
	}
	if res := badRequest(data, err.Error()); res != nil {
		if ua, ok := props.RemoteAddr.(*net.UDPAddr); ok {
			_, _ = udp.WriteTo(res, ua)
		}
	}
	s.log.Debug("malformed request answered with 400", "from", props.RemoteAddr.String(), "err", err)
	return nil, nil
}

// badRequest builds a 400 for a request that does not parse, from the raw
// header lines a response must echo (RFC 3261 §8.2.6.2). Without a Via there
// is nowhere to send a response, and it returns nil.
func badRequest(data []byte, why string) []byte {
	head, _, _ := bytes.Cut(data, []byte("\r\n\r\n"))
	lines := strings.Split(string(head), "\n")
	var b strings.Builder
	b.WriteString("SIP/2.0 400 Bad Request\r\n")
	hasVia := false
	for _, l := range lines[1:] {
		l = strings.TrimRight(l, "\r")
		name, _, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "via", "v":
			hasVia = true
		case "from", "f", "to", "t", "call-id", "i", "cseq":
		default:
			continue
		}
		b.WriteString(l)
		b.WriteString("\r\n")
	}
	if !hasVia {
		return nil
	}
	why = strings.NewReplacer(`"`, "'", "\r", " ", "\n", " ").Replace(why)
	if len(why) > 120 {
		why = why[:120]
	}
	b.WriteString(`Warning: 399 b2bua "malformed request: ` + why + "\"\r\n")
	b.WriteString("Content-Length: 0\r\n\r\n")
	return []byte(b.String())
}
