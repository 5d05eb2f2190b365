// Package digits packs decimal digit strings into the semi-octet (BCD)
// forms the SS7 layers use: the first digit in the low nibble of the first
// octet, the second in its high nibble, and so on.
package digits

import (
	"errors"
	"fmt"
)

// ErrDigit reports a character or nibble that is not an allowed digit.
var ErrDigit = errors.New("invalid digit")

// Pack packs s two digits an octet; an odd count gets filler in the last
// high nibble.
func Pack(s string, filler byte) ([]byte, error) {
	out := make([]byte, (len(s)+1)/2)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return nil, fmt.Errorf("%w %q", ErrDigit, c)
		}
		if i%2 == 0 {
			out[i/2] = c - '0'
		} else {
			out[i/2] |= (c - '0') << 4
		}
	}
	if len(s)%2 == 1 {
		out[len(out)-1] |= filler << 4
	}
	return out, nil
}

// Unpack reads n digits from b (n ≤ 2·len(b)); nibbles above 9 are errors
// unless allowHex is set, which maps them to 'a'..'f' (GT digits may carry
// the Q.713 codes 11 and 12).
func Unpack(b []byte, n int, allowHex bool) (string, error) {
	if n > 2*len(b) || n < 0 {
		return "", fmt.Errorf("%w: %d digits in %d octets", ErrDigit, n, len(b))
	}
	out := make([]byte, n)
	for i := range n {
		d := b[i/2] & 0x0f
		if i%2 == 1 {
			d = b[i/2] >> 4
		}
		switch {
		case d <= 9:
			out[i] = '0' + d
		case allowHex:
			out[i] = 'a' + d - 10
		default:
			return "", fmt.Errorf("%w: nibble %x at %d", ErrDigit, d, i)
		}
	}
	return string(out), nil
}
