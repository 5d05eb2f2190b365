package mixer

import "math/bits"

// Law is a G.711 companding law (ITU-T G.711).
type Law uint8

// The two G.711 laws; the zero Law is invalid so that a Participant must say which it uses.
const (
	PCMU Law = iota + 1 // µ-law, RTP static payload type 0 (RFC 3551 §6)
	PCMA                // A-law, RTP static payload type 8 (RFC 3551 §6)
)

// String returns the RTP encoding name of the law.
func (l Law) String() string {
	switch l {
	case PCMU:
		return "PCMU"
	case PCMA:
		return "PCMA"
	}
	return "invalid"
}

// payloadType is the law's static RTP payload type (RFC 3551 §6).
func (l Law) payloadType() uint8 {
	if l == PCMA {
		return 8
	}
	return 0
}

// silence is the law's code for a zero sample: what a silent frame carries.
func (l Law) silence() byte {
	if l == PCMA {
		return 0xD5
	}
	return 0xFF
}

// The tables are computed once from the G.711 formulas and never written again:
// decoding is one lookup per sample; A-law encoding one lookup on the top 13
// bits, all that A-law quantises. µ-law is computed (a few instructions): its
// reference coder works on sign and magnitude, so negative samples do not group
// by their top 14 two's-complement bits.
var (
	ulawDecode = buildDecode(ulawToLinear)
	alawDecode = buildDecode(alawToLinear)
	alawEncode = buildEncode(1<<13, 3, linearToAlaw)
)

// DecodeUlaw expands µ-law codes into 16-bit linear samples; dst must be as long as src.
func DecodeUlaw(dst []int16, src []byte) {
	for i, c := range src {
		dst[i] = ulawDecode[c]
	}
}

// DecodeAlaw expands A-law codes into 16-bit linear samples; dst must be as long as src.
func DecodeAlaw(dst []int16, src []byte) {
	for i, c := range src {
		dst[i] = alawDecode[c]
	}
}

// EncodeUlaw compresses 16-bit linear samples into µ-law; dst must be as long as src.
func EncodeUlaw(dst []byte, src []int16) {
	for i, s := range src {
		dst[i] = linearToUlaw(s)
	}
}

// EncodeAlaw compresses 16-bit linear samples into A-law; dst must be as long as src.
func EncodeAlaw(dst []byte, src []int16) {
	for i, s := range src {
		dst[i] = alawEncode[uint16(s)>>3]
	}
}

func (l Law) decode(dst []int16, src []byte) {
	if l == PCMA {
		DecodeAlaw(dst, src)
		return
	}
	DecodeUlaw(dst, src)
}

func buildDecode(f func(byte) int16) *[256]int16 {
	var t [256]int16
	for c := range 256 {
		t[c] = f(byte(c))
	}
	return &t
}

// buildEncode indexes by the sample's top bits taken as unsigned, so that a
// negative sample needs no branch in the encoder.
func buildEncode(n int, shift uint, f func(int16) byte) []byte {
	t := make([]byte, n)
	for i := range n {
		t[i] = f(int16(uint16(i << shift)))
	}
	return t
}

// ulawToLinear is G.711 §3 (Table 2) decoding, scaled from 14 to 16 bits.
func ulawToLinear(c byte) int16 {
	c = ^c
	t := (int(c&0x0F) << 3) + 0x84
	t <<= (c & 0x70) >> 4
	if c&0x80 != 0 {
		return int16(0x84 - t)
	}
	return int16(t - 0x84)
}

// linearToUlaw is G.711 µ-law encoding of a 16-bit sample, as the CCITT
// reference coder does it: sign and magnitude, the magnitude clipped at 32635
// and biased by 132 (33 in G.711's 14-bit units, Table 2), then segment and
// four step bits, all inverted on the line.
func linearToUlaw(s int16) byte {
	v := int(s)
	sign := 0
	if v < 0 {
		v = -v
		sign = 0x80
	}
	v = min(v, 32635) + 132
	seg := max(bits.Len(uint(v>>7))-1, 0)
	return ^byte(sign | seg<<4 | (v>>(seg+3))&0x0F)
}

// alawToLinear is G.711 §2 (Table 1) decoding, scaled from 13 to 16 bits; the
// even bits are inverted on the line (G.711 §2, "character signal").
func alawToLinear(c byte) int16 {
	c ^= 0x55
	t := int(c&0x0F) << 4
	seg := (c & 0x70) >> 4
	switch seg {
	case 0:
		t += 8
	case 1:
		t += 0x108
	default:
		t += 0x108
		t <<= seg - 1
	}
	if c&0x80 != 0 {
		return int16(t)
	}
	return int16(-t)
}

// linearToAlaw is G.711 A-law encoding of a 16-bit sample on its top 13 bits.
func linearToAlaw(s int16) byte {
	v := int(s) >> 3
	mask := byte(0xD5)
	if v < 0 {
		mask = 0x55
		v = -v - 1
	}
	seg := 0
	for x := v >> 5; x > 0; x >>= 1 {
		seg++
	}
	if seg > 7 {
		return 0x7F ^ mask
	}
	var a int
	if seg < 2 {
		a = seg<<4 | (v>>1)&0x0F
	} else {
		a = seg<<4 | (v>>seg)&0x0F
	}
	return byte(a) ^ mask
}

func (l Law) encode(dst []byte, src []int16) {
	if l == PCMA {
		EncodeAlaw(dst, src)
		return
	}
	EncodeUlaw(dst, src)
}
