package sip

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"

	sipmsg "github.com/emiago/sipgo/sip"
)

// badRequestFilter is a transport read filter. sipgo drops a datagram it
// cannot parse without a word, so the sender retransmits it to no end, and
// over TCP it closes the connection; RFC 3261 §8.2.2 and §16.3 want an
// answer (RFC 4475 §3.1.2: 400 where a response can be framed). The filter
// checks a request with a scan that allocates nothing in the common case (a
// full parse here would double the cost of every message on the one
// goroutine that reads the socket, checkRequest) and answers one that fails
// with a response built from its raw Via, From, To, Call-ID and CSeq lines.
// Everything else goes on unchanged; what sipgo still cannot parse it drops.
//
// Over TCP and TLS a read is a piece of a stream: only a read that holds
// exactly one whole request is checked (the common case); anything else is
// left to sipgo, which closes a connection whose stream it cannot frame (no
// message boundary to resync on).
func (s *Server) badRequestFilter(props sipmsg.TransportReadProps, data []byte) ([]byte, error) {
	if len(data) <= 4 || bytes.HasPrefix(data, []byte("SIP/")) {
		return data, nil
	}
	stream := props.Transport != "UDP"
	if stream && !oneMessage(data) {
		return data, nil
	}
	if s.shed(props, data) { // overload.go
		return nil, nil
	}
	bad := checkRequest(data, !stream)
	if bad == nil {
		if fixed := rfc2543Branch(data); fixed != nil {
			data = fixed
		}
		if stream {
			if ap, err := netip.ParseAddrPort(props.RemoteAddr.String()); err == nil {
				if fixed := viaReceived(data, ap.Addr()); fixed != nil {
					data = fixed
				}
			}
		}
		return data, nil
	}
	res := refusal(data, bad)
	if res == nil {
		if stream {
			// No Via, so no response can be framed: sipgo fails to parse
			// it and closes the connection, as it should (RFC 4475 §3.1.2).
			return data, nil
		}
		return nil, nil
	}
	s.answerRaw(props, res)
	s.log.Debug("malformed request refused", "from", props.RemoteAddr.String(), "status", bad.status, "err", bad.err)
	return nil, nil
}

// answerRaw sends res, a response built from raw bytes, back where the
// request came from, before sipgo has seen the request.
func (s *Server) answerRaw(props sipmsg.TransportReadProps, res []byte) {
	if props.Transport != "UDP" {
		c, err := s.ua.TransportLayer().GetConnection(props.Transport, props.RemoteAddr.String())
		if err != nil {
			return
		}
		defer c.TryClose()
		if w, ok := c.(io.Writer); ok {
			_, _ = w.Write(res)
		}
		return
	}
	ln := s.ln.Load()
	if ln == nil || props.LocalAddr == nil || props.LocalAddr.String() != ln.udp[0].LocalAddr().String() {
		return
	}
	if ua, ok := props.RemoteAddr.(*net.UDPAddr); ok {
		_, _ = ln.udp[0].WriteTo(res, ua)
	}
}

// oneMessage reports whether a stream read holds exactly one request: its
// headers end and its Content-Length covers the rest.
func oneMessage(data []byte) bool {
	end := bytes.Index(data, []byte("\r\n\r\n"))
	if end < 0 {
		return false
	}
	cl, ok := contentLength(data[:end+2])
	return ok && end+4+cl == len(data)
}

// contentLength is the first Content-Length (or l) of a header block, and
// false when there is none or it is not a number.
func contentLength(head []byte) (int, bool) {
	for _, l := range bytes.Split(head, []byte("\r\n"))[1:] {
		name, v, ok := bytes.Cut(l, []byte(":"))
		if !ok {
			continue
		}
		name = bytes.TrimSpace(name)
		if bytes.EqualFold(name, []byte("content-length")) || bytes.EqualFold(name, []byte("l")) {
			n, err := strconv.Atoi(string(bytes.TrimSpace(v)))
			return n, err == nil && n >= 0
		}
	}
	return 0, true
}

// refusal builds the answer to a request that does not parse, from the raw
// header lines a response must echo (RFC 3261 §8.2.6.2). Without a Via there
// is nowhere to send a response, and it returns nil. The status line is
// always SIP/2.0, whatever version the request claimed (RFC 3261 §7.1).
func refusal(data []byte, bad *rawRefusal) []byte {
	why := strings.NewReplacer(`"`, "'", "\r", " ", "\n", " ").Replace(bad.err.Error())
	if len(why) > 120 {
		why = why[:120]
	}
	return rawResponse(data, bad.status, "", `Warning: 399 b2bua "malformed request: `+why+`"`)
}

// rawResponse is a response to the raw request data: its Via, From, To,
// Call-ID and CSeq lines, toTag added to a To without a tag (RFC 3261
// §8.2.6.2; "" adds none), then extra lines. nil without a Via.
func rawResponse(data []byte, status int, toTag string, extra ...string) []byte {
	head, _, _ := bytes.Cut(data, []byte("\r\n\r\n"))
	lines := strings.Split(string(head), "\n")
	var b strings.Builder
	b.Grow(len(head) + 128)
	b.WriteString("SIP/2.0 " + strconv.Itoa(status) + " " + reasonPhrase(status) + "\r\n")
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
		case "to", "t":
			if toTag != "" && !hasTagParam(l) {
				l += ";tag=" + toTag
			}
		case "from", "f", "call-id", "i", "cseq":
		default:
			continue
		}
		b.WriteString(l)
		b.WriteString("\r\n")
	}
	if !hasVia {
		return nil
	}
	for _, e := range extra {
		b.WriteString(e)
		b.WriteString("\r\n")
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return []byte(b.String())
}

// badRequest is refusal with 400.
func badRequest(data []byte, why string) []byte {
	return refusal(data, &rawRefusal{status: 400, err: errors.New(why)})
}

// rawRefusal is why checkRequest refuses a request, and its status.
type rawRefusal struct {
	status int
	err    error
}

var (
	errRequestLine = errors.New("bad request line")
	errVersion     = errors.New("SIP version not supported")
	errScheme      = errors.New("Request-URI scheme not supported")
	errIPv6Host    = errors.New("IPv6 address without brackets")
	errCSeq        = errors.New("bad CSeq")
	errNoHeaders   = errors.New("no end of headers")
	errAddr        = errors.New("unbalanced <> in From, To or Contact")
	errEmptyParam  = errors.New("empty parameter in Via, From, To or Contact")
	errCLen        = errors.New("bad Content-Length")
	errCLenTwice   = errors.New("Content-Length given twice, differently")
	errCLenPast    = errors.New("Content-Length past the end of the datagram")
)

func refuse(status int, err error) *rawRefusal { return &rawRefusal{status: status, err: err} }

// checkRequest is the cheap validation of a request: the request line
// (checkRequestLine), the CSeq "number SP method" with a number below 2**31
// (RFC 3261 §20.16, RFC 4475 §3.1.2.4), balanced brackets and no empty
// parameters in From, To, Contact and Via (§25.1, RFC 4475 §3.1.2.1), and
// one Content-Length, a number that, in a datagram, stays inside it (RFC
// 3261 §18.3, RFC 4475 §3.1.2.2, §3.1.2.3, §3.3.9).
func checkRequest(data []byte, datagram bool) *rawRefusal {
	end := bytes.Index(data, []byte("\r\n"))
	if end < 0 {
		return refuse(400, errNoHeaders)
	}
	if bad := checkRequestLine(data[:end]); bad != nil {
		return bad
	}
	rest := data[end+2:]
	clen, clenSeen := -1, false
	for len(rest) > 0 {
		i := bytes.Index(rest, []byte("\r\n"))
		if i < 0 {
			return refuse(400, errNoHeaders)
		}
		if i == 0 {
			if datagram && clen > len(rest)-2 {
				return refuse(400, errCLenPast)
			}
			return nil // end of headers
		}
		h := rest[:i]
		rest = rest[i+2:]
		// A folded header (§7.3.1) is joined to its continuation lines;
		// only then is it whole. Folding is rare, and only it allocates.
		if len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
			full := append([]byte(nil), h...)
			for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
				j := bytes.Index(rest, []byte("\r\n"))
				if j < 0 {
					return refuse(400, errNoHeaders)
				}
				full = append(append(full, ' '), rest[:j]...)
				rest = rest[j+2:]
			}
			h = full
		}
		if err := checkAddrHeader(h); err != nil {
			return refuse(400, err)
		}
		colon := bytes.IndexByte(h, ':')
		if colon <= 0 {
			continue
		}
		name := bytes.TrimRight(h[:colon], " \t")
		v := bytes.TrimSpace(h[colon+1:])
		switch {
		case bytes.EqualFold(name, []byte("cseq")):
			if !validCSeq(v) {
				return refuse(400, errCSeq)
			}
		case bytes.EqualFold(name, []byte("content-length")), len(name) == 1 && name[0]|0x20 == 'l':
			n, err := strconv.Atoi(string(v))
			switch {
			case err != nil || n < 0:
				return refuse(400, errCLen)
			case clenSeen && n != clen:
				return refuse(400, errCLenTwice)
			}
			clen, clenSeen = n, true
		}
	}
	return refuse(400, errNoHeaders)
}

// validCSeq checks "number SP method", the number below 2**31 (§8.1.1.5).
func validCSeq(v []byte) bool {
	n := 0
	for n < len(v) && v[n] >= '0' && v[n] <= '9' {
		n++
	}
	if n == 0 || n >= len(v) || (v[n] != ' ' && v[n] != '\t') || len(bytes.TrimSpace(v[n:])) == 0 {
		return false
	}
	num, err := strconv.ParseUint(string(v[:n]), 10, 32)
	return err == nil && num < 1<<31
}

// checkRequestLine checks "Method SP Request-URI SP SIP-Version" (RFC 3261
// §7.1, §25.1): the method a token, the version SIP/2.0 (another version,
// well formed: 505, §8.2.2.1 and RFC 4475 §3.1.2.16), a Request-URI with a
// scheme we serve (sip, sips, tel; other schemes: 416, §8.2.2.1) and, in a
// SIP URI, an IPv6 host in brackets (RFC 5118 §4.2).
func checkRequestLine(line []byte) *rawRefusal {
	sp1 := bytes.IndexByte(line, ' ')
	sp2 := bytes.LastIndexByte(line, ' ')
	if sp1 <= 0 || sp2 <= sp1+1 || bytes.IndexByte(line[sp1+1:sp2], ' ') >= 0 {
		return refuse(400, errRequestLine)
	}
	for _, c := range line[:sp1] {
		if !isToken(c) {
			return refuse(400, errRequestLine)
		}
	}
	// RFC 3261 §7.1: the SIP-Version string is case-insensitive.
	if v := line[sp2+1:]; !bytes.EqualFold(v, []byte("SIP/2.0")) {
		if wellFormedVersion(v) {
			return refuse(505, errVersion)
		}
		return refuse(400, errRequestLine)
	}
	uri := line[sp1+1 : sp2]
	colon := bytes.IndexByte(uri, ':')
	if colon <= 0 {
		return refuse(400, errRequestLine)
	}
	scheme := uri[:colon]
	for i, c := range scheme {
		alpha := (c|0x20) >= 'a' && (c|0x20) <= 'z'
		if !alpha && (i == 0 || !(c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return refuse(400, errRequestLine)
		}
	}
	switch {
	case bytes.EqualFold(scheme, []byte("sip")), bytes.EqualFold(scheme, []byte("sips")):
	case bytes.EqualFold(scheme, []byte("tel")):
		return nil
	default:
		return refuse(416, errScheme)
	}
	host := uri[colon+1:]
	if at := bytes.LastIndexByte(host, '@'); at >= 0 {
		host = host[at+1:]
	}
	if i := bytes.IndexAny(host, ";?"); i >= 0 {
		host = host[:i]
	}
	if len(host) > 0 && host[0] != '[' && bytes.Count(host, []byte(":")) > 1 {
		return refuse(400, errIPv6Host)
	}
	return nil
}

// wellFormedVersion: "SIP/" 1*DIGIT "." 1*DIGIT (RFC 3261 §25.1).
func wellFormedVersion(v []byte) bool {
	if len(v) < 4 || !bytes.EqualFold(v[:4], []byte("SIP/")) {
		return false
	}
	rest := v[4:]
	major, minor, ok := bytes.Cut(rest, []byte("."))
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

// isToken: alphanum and -.!%*_+`'~ (RFC 3261 §25.1 token).
func isToken(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("-.!%*_+`'~", c) >= 0
}
