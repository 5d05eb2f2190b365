package digest

import (
	"errors"
	"fmt"
	"strings"
)

// maxHeaderLen bounds the work one Authorization value can cause. Real
// credentials are a few hundred bytes; 8 KiB leaves room for long URIs.
const maxHeaderLen = 8 << 10

// maxParams bounds the number of parameters in one value.
const maxParams = 32

var errSyntax = errors.New("malformed credentials")

// credentials are the parameters of a Digest Authorization or
// Proxy-Authorization value (RFC 7616 section 3.4; RFC 3261 section 25.1
// "digest-response"), keyed by lower-case parameter name with quoted strings
// already unescaped.
type credentials map[string]string

// parseCredentials parses `Digest k=v, k="v", ...`. Parameter names are
// case-insensitive (RFC 7235 section 2.1); a name given twice is an error
// because two different answers to "which nonce?" must not be resolved by
// guessing. Unknown parameters are kept but never consulted. Empty list
// elements are allowed as in the HTTP #rule (RFC 7230 section 7).
func parseCredentials(s string) (credentials, error) {
	if len(s) > maxHeaderLen {
		return nil, fmt.Errorf("%w: longer than %d bytes", errSyntax, maxHeaderLen)
	}
	p := parser{s: s}
	p.skipLWS()
	scheme := p.token()
	if !strings.EqualFold(scheme, "Digest") {
		return nil, fmt.Errorf("%w: scheme %q is not Digest", errSyntax, scheme)
	}
	if p.i < len(p.s) && !isLWS(p.s[p.i]) {
		return nil, fmt.Errorf("%w: no space after scheme", errSyntax)
	}
	out := credentials{}
	for {
		p.skipLWS()
		if p.eof() {
			break
		}
		if p.peek() == ',' {
			p.i++
			continue
		}
		name := strings.ToLower(p.token())
		if name == "" {
			return nil, fmt.Errorf("%w: expected a parameter name at offset %d", errSyntax, p.i)
		}
		p.skipLWS()
		if p.eof() || p.peek() != '=' {
			return nil, fmt.Errorf("%w: parameter %q has no value", errSyntax, name)
		}
		p.i++
		p.skipLWS()
		var val string
		if !p.eof() && p.peek() == '"' {
			v, err := p.quoted()
			if err != nil {
				return nil, err
			}
			val = v
		} else {
			val = p.token()
			if val == "" {
				return nil, fmt.Errorf("%w: parameter %q has an empty value", errSyntax, name)
			}
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("%w: parameter %q given twice", errSyntax, name)
		}
		if len(out) >= maxParams {
			return nil, fmt.Errorf("%w: more than %d parameters", errSyntax, maxParams)
		}
		out[name] = val
		p.skipLWS()
		if p.eof() {
			break
		}
		if p.peek() != ',' {
			return nil, fmt.Errorf("%w: expected ',' after parameter %q", errSyntax, name)
		}
		p.i++
	}
	return out, nil
}

type parser struct {
	s string
	i int
}

func (p *parser) eof() bool  { return p.i >= len(p.s) }
func (p *parser) peek() byte { return p.s[p.i] }

func isLWS(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func (p *parser) skipLWS() {
	for !p.eof() && isLWS(p.peek()) {
		p.i++
	}
}

// isTokenChar follows RFC 3261 section 25.1 "token", which is a superset of
// the HTTP tchar set (it adds nothing harmful: no quote, comma, '=' or space).
func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("-.!%*_+`'~/:", c) >= 0
}

func (p *parser) token() string {
	start := p.i
	for !p.eof() && isTokenChar(p.peek()) {
		p.i++
	}
	return p.s[start:p.i]
}

// quoted reads a quoted-string, undoing quoted-pair escapes (RFC 3261
// section 25.1). The grammar lets a quoted-pair carry control characters
// (%x00-09 / %x0B-0C / %x0E-7F), but no credential needs one and a NUL or
// escape sequence in a username only helps log injection, so only
// printable characters and tab may be escaped, as in RFC 7230 section 3.2.6.
func (p *parser) quoted() (string, error) {
	p.i++ // opening quote
	var b strings.Builder
	for !p.eof() {
		c := p.peek()
		switch c {
		case '"':
			p.i++
			return b.String(), nil
		case '\\':
			if p.i+1 >= len(p.s) {
				return "", fmt.Errorf("%w: escape at end of input", errSyntax)
			}
			e := p.s[p.i+1]
			if (e < 0x20 && e != '\t') || e >= 0x7f {
				return "", fmt.Errorf("%w: invalid escaped character", errSyntax)
			}
			b.WriteByte(e)
			p.i += 2
		default:
			if (c < 0x20 && c != '\t') || c == 0x7f {
				return "", fmt.Errorf("%w: control character in quoted string", errSyntax)
			}
			b.WriteByte(c)
			p.i++
		}
	}
	return "", fmt.Errorf("%w: unterminated quoted string", errSyntax)
}

// quote renders s as a quoted-string, escaping '"' and '\'.
func quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// Username is the username of an Authorization or Proxy-Authorization
// value, "" when it has none or does not parse. It checks nothing: a
// caller uses it to key limits on guessing before Verify does the work.
func Username(headerValue string) string {
	c, err := parseCredentials(headerValue)
	if err != nil {
		return ""
	}
	return c["username"]
}
