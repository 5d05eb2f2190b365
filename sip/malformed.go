package sip

import (
	"bytes"
	"errors"
	"net"
	"strings"

	sipmsg "github.com/emiago/sipgo/sip"
)

// badRequestFilter is a transport read filter for UDP. sipgo drops a
// datagram it cannot parse without a word, so the sender retransmits it to
// no end; RFC 3261 §8.2.2 and §16.3 want a 400. The filter checks the
// request line and the CSeq with a scan that allocates nothing (a full
// parse here would double the cost of every message on the one goroutine
// that reads the socket) and answers a request that fails with a 400 (505
// for a SIP version it does not speak) built from its raw Via, From, To, Call-ID and CSeq lines. Everything else goes
// on unchanged; what sipgo still cannot parse it drops.
//
// Over TCP sipgo closes a connection whose stream it cannot frame, which is
// the only safe move there (no message boundary to resync on); requests
// that parse but lack a Via or CSeq get sipgo's own stateless 400.
func (s *Server) badRequestFilter(props sipmsg.TransportReadProps, data []byte) ([]byte, error) {
	if props.Transport != "UDP" || len(data) <= 4 || bytes.HasPrefix(data, []byte("SIP/")) {
		return data, nil
	}
	err := checkRequest(data)
	if err == nil {
		return data, nil
	}
	s.mu.Lock()
	udp := s.udp
	s.mu.Unlock()
	if udp == nil || props.LocalAddr == nil || props.LocalAddr.String() != udp.LocalAddr().String() {
		return nil, nil
	}
	status := "400 Bad Request"
	if errors.Is(err, errVersion) {
		status = "505 Version Not Supported" // RFC 3261 §21.5.6
	}
	if res := rejectRequest(data, status, err.Error()); res != nil {
		if ua, ok := props.RemoteAddr.(*net.UDPAddr); ok {
			_, _ = udp.WriteTo(res, ua)
		}
	}
	s.log.Debug("malformed request answered with "+status[:3], "from", props.RemoteAddr.String(), "err", err)
	return nil, nil
}

// badRequest builds a 400 for a request that does not parse.
func badRequest(data []byte, why string) []byte { return rejectRequest(data, "400 Bad Request", why) }

// rejectRequest builds a response with status ("400 Bad Request") for a
// request that does not parse, from the raw header lines a response must
// echo (RFC 3261 §8.2.6.2). Without a Via there is nowhere to send a
// response, and it returns nil.
func rejectRequest(data []byte, status, why string) []byte {
	head, _, _ := bytes.Cut(data, []byte("\r\n\r\n"))
	lines := strings.Split(string(head), "\n")
	var b strings.Builder
	b.WriteString("SIP/2.0 " + status + "\r\n")
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

var (
	errRequestLine = errors.New("bad request line")
	errVersion     = errors.New("SIP version not supported")
	errCSeq        = errors.New("bad CSeq")
	errNoHeaders   = errors.New("no end of headers")
	errAddr        = errors.New("unbalanced <> in From, To or Contact")
)

// wellFormedVersion reports whether v is a SIP-Version by the grammar,
// "SIP" "/" 1*DIGIT "." 1*DIGIT (RFC 3261 §25.1): one this server does not
// speak gets 505, not 400.
func wellFormedVersion(v []byte) bool {
	if len(v) < 7 || !bytes.EqualFold(v[:4], []byte("SIP/")) {
		return false
	}
	major, minor, ok := bytes.Cut(v[4:], []byte("."))
	return ok && allDigits(major) && allDigits(minor)
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// checkRequest is the cheap validation of a request datagram: a request
// line "METHOD SP Request-URI SP SIP/2.0" (RFC 3261 §7.1) and a CSeq of
// "number SP method" (§20.16).
func checkRequest(data []byte) error {
	end := bytes.Index(data, []byte("\r\n"))
	if end < 0 {
		return errNoHeaders
	}
	line := data[:end]
	sp1 := bytes.IndexByte(line, ' ')
	sp2 := bytes.LastIndexByte(line, ' ')
	if sp1 <= 0 || sp2 <= sp1+1 || bytes.IndexByte(line[sp1+1:sp2], ' ') >= 0 {
		return errRequestLine
	}
	if v := line[sp2+1:]; !bytes.Equal(v, []byte("SIP/2.0")) {
		if wellFormedVersion(v) {
			return errVersion
		}
		return errRequestLine
	}
	for _, c := range line[:sp1] {
		if c < 'A' || c > 'Z' {
			return errRequestLine
		}
	}
	rest := data[end+2:]
	for len(rest) > 0 {
		i := bytes.Index(rest, []byte("\r\n"))
		if i < 0 {
			return errNoHeaders
		}
		if i == 0 {
			return nil // end of headers
		}
		h := rest[:i]
		rest = rest[i+2:]
		if len(rest) > 0 && rest[0] != ' ' && rest[0] != '\t' { // not folded (§7.3.1)
			if err := checkAddrHeader(h); err != nil {
				return err
			}
		}
		if len(h) < 5 || (h[0]|0x20) != 'c' || (h[1]|0x20) != 's' || (h[2]|0x20) != 'e' || (h[3]|0x20) != 'q' {
			continue
		}
		v := bytes.TrimLeft(h[4:], " \t")
		if len(v) == 0 || v[0] != ':' {
			continue
		}
		v = bytes.TrimSpace(v[1:])
		n := 0
		for n < len(v) && v[n] >= '0' && v[n] <= '9' {
			n++
		}
		if n == 0 || n > 10 || n >= len(v) || (v[n] != ' ' && v[n] != '\t') || len(bytes.TrimSpace(v[n:])) == 0 {
			return errCSeq
		}
	}
	return errNoHeaders
}
