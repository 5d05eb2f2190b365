// Package cpim reads and writes message/cpim (RFC 3862), the Common
// Presence and Instant Messaging format that IM clients wrap a MESSAGE body
// in: message headers (From, To, DateTime, ...), a blank line, the MIME
// headers of the encapsulated content, a blank line, the content.
package cpim

import (
	"bytes"
	"errors"
	"fmt"
	"mime"
	"strings"
)

// MediaType is the Content-Type of a CPIM body.
const MediaType = "message/cpim"

// Limits that keep a hostile body from costing more than its size.
const (
	MaxHeaders    = 64   // per section
	MaxHeaderLine = 4096 // bytes of one header after unfolding
)

// ErrMalformed is wrapped by every parse error.
var ErrMalformed = errors.New("cpim: malformed message")

// Header is one header field, in the order it appeared.
type Header struct {
	Name  string
	Value string
}

// Message is a parsed message/cpim body.
type Message struct {
	// Headers are the CPIM message headers (RFC 3862 §3.1): From, To, cc,
	// DateTime, Subject, NS, Require and namespaced ones such as
	// "imdn.Message-ID".
	Headers []Header
	// Content are the MIME headers of the encapsulated object (RFC 3862
	// §3.2): Content-Type, Content-ID, ...
	Content []Header
	// Body is the encapsulated object itself.
	Body []byte
}

// Get gives the first message header called name. RFC 3862 §3.1 makes
// message header names case-sensitive.
func (m *Message) Get(name string) string {
	for _, h := range m.Headers {
		if h.Name == name {
			return h.Value
		}
	}
	return ""
}

// ContentType is the encapsulated object's media type, lower-cased and
// without parameters; "" when absent or unparseable. MIME header names are
// case-insensitive (RFC 2045 §5).
func (m *Message) ContentType() string {
	for _, h := range m.Content {
		if strings.EqualFold(h.Name, "Content-Type") {
			mt, _, err := mime.ParseMediaType(h.Value)
			if err != nil {
				return ""
			}
			return mt
		}
	}
	return ""
}

// RawContentType is the encapsulated Content-Type value as written, with
// its parameters (e.g. "text/plain; charset=utf-8").
func (m *Message) RawContentType() string {
	for _, h := range m.Content {
		if strings.EqualFold(h.Name, "Content-Type") {
			return h.Value
		}
	}
	return ""
}

// Parse reads a message/cpim body. Lines end in CRLF (RFC 3862 §3); a bare
// LF is accepted too, because senders get this wrong and nothing is lost
// by being lenient. Folded header lines are unfolded.
func Parse(b []byte) (*Message, error) {
	m := &Message{}
	rest := b
	var err error
	if m.Headers, rest, err = parseSection(rest, "message"); err != nil {
		return nil, err
	}
	if m.Content, rest, err = parseSection(rest, "content"); err != nil {
		return nil, err
	}
	m.Body = rest
	return m, nil
}

// parseSection reads header lines up to and including the empty line that
// ends them.
func parseSection(b []byte, what string) ([]Header, []byte, error) {
	var out []Header
	for {
		line, rest, ok := cutLine(b)
		if !ok {
			return nil, nil, fmt.Errorf("%w: %s headers not ended by an empty line", ErrMalformed, what)
		}
		b = rest
		if len(line) == 0 {
			return out, b, nil
		}
		if bytes.IndexByte(line, '\r') >= 0 {
			// RFC 3862 §3: CR only as part of CRLF.
			return nil, nil, fmt.Errorf("%w: bare CR in %s headers", ErrMalformed, what)
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(out) == 0 {
				return nil, nil, fmt.Errorf("%w: %s headers start with a continuation line", ErrMalformed, what)
			}
			h := &out[len(out)-1]
			h.Value = strings.TrimSpace(h.Value + " " + strings.TrimSpace(string(line)))
			if encodedLen(*h) > MaxHeaderLine {
				return nil, nil, fmt.Errorf("%w: %s header %q too long", ErrMalformed, what, h.Name)
			}
			continue
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || !validName(string(name)) {
			return nil, nil, fmt.Errorf("%w: bad %s header line", ErrMalformed, what)
		}
		h := Header{Name: string(name), Value: strings.TrimSpace(string(value))}
		if encodedLen(h) > MaxHeaderLine {
			return nil, nil, fmt.Errorf("%w: %s header %q too long", ErrMalformed, what, name)
		}
		if len(out) == MaxHeaders {
			return nil, nil, fmt.Errorf("%w: more than %d %s headers", ErrMalformed, MaxHeaders, what)
		}
		out = append(out, h)
	}
}

// cutLine splits off one line ending in CRLF or LF.
func cutLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return nil, nil, false
	}
	line = b[:i]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, b[i+1:], true
}

// validName: a header name is a token of letters, digits and "-._" (RFC
// 3862 §3.1 allows a namespace prefix and a dot: "imdn.Message-ID").
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '.', c == '_':
		default:
			return false
		}
	}
	return true
}

// encodedLen is the length of h's line as Encode writes it, without CRLF.
func encodedLen(h Header) int { return len(h.Name) + 2 + len(h.Value) }

func validValue(s string) bool {
	return !strings.ContainsAny(s, "\r\n") && s == strings.TrimSpace(s)
}

// Encode writes m with CRLF line ends. It refuses headers that would not
// read back as written.
func (m *Message) Encode() ([]byte, error) {
	var b bytes.Buffer
	for _, sec := range [][]Header{m.Headers, m.Content} {
		if len(sec) > MaxHeaders {
			return nil, fmt.Errorf("cpim: more than %d headers", MaxHeaders)
		}
		for _, h := range sec {
			if !validName(h.Name) || !validValue(h.Value) || encodedLen(h) > MaxHeaderLine {
				return nil, fmt.Errorf("cpim: header %q cannot be encoded", h.Name)
			}
			b.WriteString(h.Name)
			b.WriteString(": ")
			b.WriteString(h.Value)
			b.WriteString("\r\n")
		}
		b.WriteString("\r\n")
	}
	b.Write(m.Body)
	return b.Bytes(), nil
}
