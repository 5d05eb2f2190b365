package provision

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/imcall/b2bua/registry"
)

// checkStrict walks a body that encoding/json has already parsed and
// refuses what that parser accepts silently:
//   - a name given twice in one object (RFC 8259 section 4 says names
//     SHOULD be unique; encoding/json keeps the last, so a client and a
//     proxy in front of us may read different requests);
//   - a top-level name that is not exactly one of names (encoding/json
//     matches names case-insensitively, even "\u212aind" for "kind");
//   - text that is not UTF-8 (RFC 8259 section 8.1) or holds a \u escape of
//     a lone surrogate (section 8.2): encoding/json stores either as U+FFFD.
//
// Errors name the top-level field they are in, or "body".
func checkStrict(b []byte, names map[string]bool) error {
	s := &scanner{b: b, names: names}
	return s.value(0)
}

type scanner struct {
	b     []byte
	i     int
	names map[string]bool
	field string // the top-level name being read, for errors
}

func (s *scanner) fail(rule string) error {
	f := s.field
	if f == "" {
		f = "body"
	}
	return &registry.ValidationError{Field: f, Rule: rule}
}

func (s *scanner) ws() {
	for s.i < len(s.b) && strings.IndexByte(" \t\r\n", s.b[s.i]) >= 0 {
		s.i++
	}
}

func (s *scanner) value(depth int) error {
	s.ws()
	if s.i >= len(s.b) {
		return nil
	}
	switch s.b[s.i] {
	case '{':
		return s.object(depth)
	case '[':
		s.i++
		for {
			s.ws()
			if s.i < len(s.b) && s.b[s.i] == ']' {
				s.i++
				return nil
			}
			if err := s.value(depth + 1); err != nil {
				return err
			}
			s.ws()
			if s.i < len(s.b) && s.b[s.i] == ',' {
				s.i++
			}
		}
	case '"':
		_, err := s.str()
		return err
	}
	// A number or a literal: up to the next delimiter.
	for s.i < len(s.b) && strings.IndexByte(",]} \t\r\n", s.b[s.i]) < 0 {
		s.i++
	}
	return nil
}

func (s *scanner) object(depth int) error {
	s.i++ // '{'
	seen := map[string]bool{}
	for {
		s.ws()
		if s.i >= len(s.b) {
			return nil
		}
		switch s.b[s.i] {
		case '}':
			s.i++
			return nil
		case ',':
			s.i++
			continue
		}
		name, err := s.str()
		if err != nil {
			return err
		}
		if depth == 0 {
			s.field = name
			if !s.names[name] {
				return s.fail("is not a known field (names are case-sensitive)")
			}
		}
		if seen[name] {
			return &registry.ValidationError{Field: name, Rule: "is given twice: each name must appear once"}
		}
		seen[name] = true
		s.ws()
		s.i++ // ':'
		if err := s.value(depth + 1); err != nil {
			return err
		}
		if depth == 0 {
			s.field = ""
		}
	}
}

// str reads a string at s.b[s.i] == '"' and returns it decoded.
func (s *scanner) str() (string, error) {
	var out strings.Builder
	s.i++
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return out.String(), nil
		case c == '\\':
			r, err := s.escape()
			if err != nil {
				return "", err
			}
			out.WriteRune(r)
		case c < utf8.RuneSelf:
			out.WriteByte(c)
			s.i++
		default:
			r, n := utf8.DecodeRune(s.b[s.i:])
			if r == utf8.RuneError && n == 1 {
				return "", s.fail(fmt.Sprintf("must be UTF-8 text: byte %#x at offset %d is not (RFC 8259 section 8.1)", c, s.i))
			}
			out.WriteRune(r)
			s.i += n
		}
	}
	return out.String(), nil
}

// escape reads the escape at s.b[s.i] == '\\', joining a surrogate pair.
func (s *scanner) escape() (rune, error) {
	if s.i+1 >= len(s.b) {
		s.i = len(s.b)
		return 0, nil
	}
	c := s.b[s.i+1]
	if c != 'u' {
		s.i += 2
		switch c {
		case 'n':
			return '\n', nil
		case 't':
			return '\t', nil
		case 'r':
			return '\r', nil
		case 'b':
			return '\b', nil
		case 'f':
			return '\f', nil
		}
		return rune(c), nil // '"', '\\', '/'
	}
	r1, ok := s.hex4(s.i + 2)
	if !ok {
		return 0, s.fail("must hold valid \\u escapes")
	}
	s.i += 6
	if !utf16.IsSurrogate(r1) {
		return r1, nil
	}
	lone := s.fail(fmt.Sprintf(`must be Unicode text: \u%04x is a lone surrogate (RFC 8259 section 8.2)`, r1))
	if r1 >= 0xdc00 || s.i+1 >= len(s.b) || s.b[s.i] != '\\' || s.b[s.i+1] != 'u' {
		return 0, lone
	}
	r2, ok := s.hex4(s.i + 2)
	if !ok || r2 < 0xdc00 || r2 > 0xdfff {
		return 0, lone
	}
	s.i += 6
	return utf16.DecodeRune(r1, r2), nil
}

func (s *scanner) hex4(at int) (rune, bool) {
	if at+4 > len(s.b) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(s.b[at:at+4]), 16, 16)
	return rune(v), err == nil
}
