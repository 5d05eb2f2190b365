// Package ber is a strict, allocation-light codec for the Basic Encoding
// Rules (ITU-T X.690) as the SS7 layers above it need them: TLVs are encoded
// with definite, minimal lengths, and decoded from definite or indefinite
// lengths, short or long form, with low or high tag numbers. Anything else —
// a length running past the data, trailing bytes, an indefinite primitive, a
// non-minimal tag — is an error; the decoder never guesses and never panics.
package ber

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Class is the tag class (X.690 §8.1.2.2).
type Class uint8

// Tag classes.
const (
	Universal   Class = 0
	Application Class = 1
	Context     Class = 2
	Private     Class = 3
)

func (c Class) String() string {
	return [...]string{"universal", "application", "context", "private"}[c&3]
}

// Universal tag numbers used by the SS7 layers.
const (
	TagBoolean     = 1
	TagInteger     = 2
	TagBitString   = 3
	TagOctetString = 4
	TagNull        = 5
	TagOID         = 6
	TagExternal    = 8
	TagEnumerated  = 10
	TagSequence    = 16
	TagSet         = 17
)

// Limits that bound the work a hostile input can cause.
const (
	// MaxDepth is the deepest nesting of indefinite-length elements the
	// decoder follows while looking for their end-of-contents.
	MaxDepth = 32
	// maxLengthOctets bounds long-form length fields: 4 octets already
	// describe more than any signalling message can carry.
	maxLengthOctets = 4
	// maxTagOctets bounds high tag numbers (28 bits).
	maxTagOctets = 4
)

// Decoding errors, wrapped with the offset where they were found.
var (
	ErrTruncated  = errors.New("ber: truncated")
	ErrTrailing   = errors.New("ber: trailing bytes")
	ErrLength     = errors.New("ber: invalid length")
	ErrTag        = errors.New("ber: invalid tag")
	ErrDepth      = errors.New("ber: nesting too deep")
	ErrUnexpected = errors.New("ber: unexpected element")
	ErrValue      = errors.New("ber: invalid value")
)

// TLV is one decoded element.
type TLV struct {
	Class       Class
	Constructed bool
	Tag         uint32
	// Value holds the content octets. For an indefinite-length element it
	// excludes the end-of-contents octets.
	Value []byte
	// Raw is the whole element as received: identifier, length, content
	// (and end-of-contents when indefinite).
	Raw []byte
	// Indefinite is set when the element used the indefinite length form.
	Indefinite bool
}

// Is reports whether t has the given identifier.
func (t TLV) Is(class Class, constructed bool, tag uint32) bool {
	return t.Class == class && t.Constructed == constructed && t.Tag == tag
}

// String names the identifier as e.g. "[context 2] cons".
func (t TLV) String() string {
	s := "prim"
	if t.Constructed {
		s = "cons"
	}
	return fmt.Sprintf("[%s %d] %s", t.Class, t.Tag, s)
}

// Decode parses exactly one element; bytes after it are an error.
func Decode(b []byte) (TLV, error) {
	t, rest, err := Parse(b)
	if err != nil {
		return TLV{}, err
	}
	if len(rest) != 0 {
		return TLV{}, fmt.Errorf("%w: %d after %s", ErrTrailing, len(rest), t)
	}
	return t, nil
}

// Parse parses the first element of b and returns the bytes after it.
func Parse(b []byte) (TLV, []byte, error) {
	return parse(b, 0)
}

func parse(b []byte, depth int) (TLV, []byte, error) {
	if depth > MaxDepth {
		return TLV{}, nil, ErrDepth
	}
	if len(b) == 0 {
		return TLV{}, nil, fmt.Errorf("%w: no identifier", ErrTruncated)
	}
	t := TLV{Class: Class(b[0] >> 6), Constructed: b[0]&0x20 != 0, Tag: uint32(b[0] & 0x1f)}
	i := 1
	if t.Tag == 0x1f {
		// High tag number form (X.690 §8.1.2.4): base-128, no leading 0x80
		// octet, and only for numbers above 30.
		t.Tag = 0
		for n := 0; ; n++ {
			if i >= len(b) {
				return TLV{}, nil, fmt.Errorf("%w: in tag", ErrTruncated)
			}
			if n == 0 && b[i] == 0x80 {
				return TLV{}, nil, fmt.Errorf("%w: leading zero in high tag", ErrTag)
			}
			if n == maxTagOctets {
				return TLV{}, nil, fmt.Errorf("%w: tag number too large", ErrTag)
			}
			t.Tag = t.Tag<<7 | uint32(b[i]&0x7f)
			i++
			if b[i-1]&0x80 == 0 {
				break
			}
		}
		if t.Tag < 0x1f {
			return TLV{}, nil, fmt.Errorf("%w: high form for tag %d", ErrTag, t.Tag)
		}
	}
	if t.Class == Universal && t.Tag == 0 {
		// X.690 §8.1.5: end-of-contents only closes an indefinite length,
		// where the loop below consumes it; anywhere else it is an error.
		return TLV{}, nil, fmt.Errorf("%w: end-of-contents outside an indefinite length", ErrUnexpected)
	}
	if i >= len(b) {
		return TLV{}, nil, fmt.Errorf("%w: no length after %s", ErrTruncated, t)
	}
	l := int(b[i])
	i++
	switch {
	case l < 0x80: // short form
	case l == 0x80: // indefinite (X.690 §8.1.3.6): constructed only
		if !t.Constructed {
			return TLV{}, nil, fmt.Errorf("%w: indefinite length on primitive %s", ErrLength, t)
		}
		start := i
		for {
			if i+2 <= len(b) && b[i] == 0 && b[i+1] == 0 {
				t.Value = b[start:i:i]
				t.Raw = b[: i+2 : i+2]
				t.Indefinite = true
				return t, b[i+2:], nil
			}
			_, rest, err := parse(b[i:], depth+1)
			if err != nil {
				return TLV{}, nil, fmt.Errorf("in indefinite %s: %w", t, err)
			}
			i = len(b) - len(rest)
		}
	case l == 0xff: // reserved (X.690 §8.1.3.5 c)
		return TLV{}, nil, fmt.Errorf("%w: reserved length octet", ErrLength)
	default: // long form
		n := l & 0x7f
		if n > maxLengthOctets {
			return TLV{}, nil, fmt.Errorf("%w: %d length octets", ErrLength, n)
		}
		if i+n > len(b) {
			return TLV{}, nil, fmt.Errorf("%w: in length of %s", ErrTruncated, t)
		}
		l = 0
		for _, c := range b[i : i+n] {
			l = l<<8 | int(c)
		}
		i += n
	}
	if l > len(b)-i {
		return TLV{}, nil, fmt.Errorf("%w: %s needs %d content octets, %d present", ErrTruncated, t, l, len(b)-i)
	}
	t.Value = b[i : i+l : i+l]
	t.Raw = b[: i+l : i+l]
	return t, b[i+l:], nil
}

// Children parses the content of a constructed element as a sequence of
// elements that must fill it exactly.
func (t TLV) Children() ([]TLV, error) {
	if !t.Constructed {
		return nil, fmt.Errorf("%w: %s is primitive", ErrUnexpected, t)
	}
	return DecodeAll(t.Value)
}

// DecodeAll parses b as a sequence of elements that fills it exactly.
func DecodeAll(b []byte) ([]TLV, error) {
	var out []TLV
	for len(b) > 0 {
		c, rest, err := Parse(b)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
		b = rest
	}
	return out, nil
}

// Append appends one element with a definite, minimal length to dst.
func Append(dst []byte, class Class, constructed bool, tag uint32, content []byte) []byte {
	id := byte(class) << 6
	if constructed {
		id |= 0x20
	}
	if tag < 0x1f {
		dst = append(dst, id|byte(tag))
	} else {
		dst = append(dst, id|0x1f)
		var tmp [5]byte
		n := len(tmp)
		for v := tag; ; v >>= 7 {
			n--
			tmp[n] = byte(v&0x7f) | 0x80
			if v < 0x80 {
				break
			}
		}
		tmp[len(tmp)-1] &^= 0x80
		dst = append(dst, tmp[n:]...)
	}
	dst = appendLength(dst, len(content))
	return append(dst, content...)
}

func appendLength(dst []byte, l int) []byte {
	if l < 0x80 {
		return append(dst, byte(l))
	}
	n := 0
	for v := l; v > 0; v >>= 8 {
		n++
	}
	dst = append(dst, 0x80|byte(n))
	for k := n - 1; k >= 0; k-- {
		dst = append(dst, byte(l>>(8*k)))
	}
	return dst
}

// Encode returns one element with a definite, minimal length; the content
// is the concatenation of parts.
func Encode(class Class, constructed bool, tag uint32, parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	content := make([]byte, 0, n)
	for _, p := range parts {
		content = append(content, p...)
	}
	return Append(make([]byte, 0, n+8), class, constructed, tag, content)
}

// Seq encodes a universal SEQUENCE of the given encoded elements.
func Seq(parts ...[]byte) []byte { return Encode(Universal, true, TagSequence, parts...) }

// Prim encodes a primitive element.
func Prim(class Class, tag uint32, content []byte) []byte {
	return Append(nil, class, false, tag, content)
}

// Cons encodes a constructed element around encoded elements.
func Cons(class Class, tag uint32, parts ...[]byte) []byte {
	return Encode(class, true, tag, parts...)
}

// IntContent returns the minimal two's-complement content octets of v.
func IntContent(v int64) []byte {
	n := 1
	for w := v; w > 127 || w < -128; w >>= 8 {
		n++
	}
	out := make([]byte, n)
	for k := n - 1; k >= 0; k-- {
		out[k] = byte(v)
		v >>= 8
	}
	return out
}

// Int encodes a universal INTEGER.
func Int(v int64) []byte { return Prim(Universal, TagInteger, IntContent(v)) }

// ParseInt decodes INTEGER or ENUMERATED content octets (X.690 §8.3):
// at least one octet, at most eight.
func ParseInt(b []byte) (int64, error) {
	if len(b) == 0 || len(b) > 8 {
		return 0, fmt.Errorf("%w: integer of %d octets", ErrValue, len(b))
	}
	v := int64(int8(b[0]))
	for _, c := range b[1:] {
		v = v<<8 | int64(c)
	}
	return v, nil
}

// OIDContent encodes a dotted object identifier such as "0.4.0.0.1.0.50.1"
// into content octets (X.690 §8.19).
func OIDContent(oid string) ([]byte, error) {
	parts := strings.Split(oid, ".")
	if len(parts) < 2 {
		return nil, fmt.Errorf("%w: OID %q needs two arcs", ErrValue, oid)
	}
	arcs := make([]uint64, len(parts))
	for i, p := range parts {
		v, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%w: OID %q: %v", ErrValue, oid, err)
		}
		arcs[i] = v
	}
	if arcs[0] > 2 || (arcs[0] < 2 && arcs[1] > 39) {
		return nil, fmt.Errorf("%w: OID %q: first arcs out of range", ErrValue, oid)
	}
	out := appendBase128(nil, arcs[0]*40+arcs[1])
	for _, a := range arcs[2:] {
		out = appendBase128(out, a)
	}
	return out, nil
}

func appendBase128(dst []byte, v uint64) []byte {
	var tmp [10]byte
	n := len(tmp)
	for {
		n--
		tmp[n] = byte(v&0x7f) | 0x80
		v >>= 7
		if v == 0 {
			break
		}
	}
	tmp[len(tmp)-1] &^= 0x80
	return append(dst, tmp[n:]...)
}

// OID encodes a universal OBJECT IDENTIFIER; it panics on a malformed
// literal, so use it only with constants.
func OID(oid string) []byte {
	c, err := OIDContent(oid)
	if err != nil {
		panic(err)
	}
	return Prim(Universal, TagOID, c)
}

// ParseOID decodes OBJECT IDENTIFIER content octets to dotted form.
func ParseOID(b []byte) (string, error) {
	if len(b) == 0 {
		return "", fmt.Errorf("%w: empty OID", ErrValue)
	}
	var sb strings.Builder
	first := true
	var v uint64
	start := true
	for i, c := range b {
		if start && c == 0x80 {
			return "", fmt.Errorf("%w: OID arc with leading zero", ErrValue)
		}
		start = false
		if v > 1<<56 {
			return "", fmt.Errorf("%w: OID arc too large", ErrValue)
		}
		v = v<<7 | uint64(c&0x7f)
		if c&0x80 != 0 {
			if i == len(b)-1 {
				return "", fmt.Errorf("%w: OID truncated", ErrValue)
			}
			continue
		}
		if first {
			x := min(v/40, 2)
			fmt.Fprintf(&sb, "%d.%d", x, v-40*x)
			first = false
		} else {
			fmt.Fprintf(&sb, ".%d", v)
		}
		v = 0
		start = true
	}
	return sb.String(), nil
}
