package mixer

import "encoding/binary"

// FrameSamples is the number of samples in one 20 ms frame at 8 kHz, the G.711
// clock rate (RFC 3551 §4.5.14): also the RTP timestamp step per frame.
const FrameSamples = 160

// rtpHeaderLen is the fixed RTP header without CSRCs (RFC 3550 §5.1).
const rtpHeaderLen = 12

// rtpPacket is the part of an RTP header the mixer needs, read in place.
type rtpPacket struct {
	pt      uint8
	seq     uint16
	ssrc    uint32
	payload []byte // aliases the caller's packet
}

// parseRTP reads an RTP header (RFC 3550 §5.1), skipping CSRCs and the header
// extension (§5.3.1) and removing padding (§5.1, P bit). It reports false for
// anything that is not RTP version 2.
func parseRTP(b []byte) (rtpPacket, bool) {
	if len(b) < rtpHeaderLen || b[0]>>6 != 2 {
		return rtpPacket{}, false
	}
	n := rtpHeaderLen + 4*int(b[0]&0x0F)
	if b[0]&0x10 != 0 {
		if len(b) < n+4 {
			return rtpPacket{}, false
		}
		n += 4 + 4*int(binary.BigEndian.Uint16(b[n+2:]))
	}
	end := len(b)
	if b[0]&0x20 != 0 && end > 0 {
		end -= int(b[end-1])
	}
	if n > end {
		return rtpPacket{}, false
	}
	return rtpPacket{
		pt:      b[1] & 0x7F,
		seq:     binary.BigEndian.Uint16(b[2:]),
		ssrc:    binary.BigEndian.Uint32(b[8:]),
		payload: b[n:end],
	}, true
}

// putRTPHeader writes a fixed RTP header (RFC 3550 §5.1) into b[:12].
func putRTPHeader(b []byte, marker bool, pt uint8, seq uint16, ts, ssrc uint32) {
	b[0] = 2 << 6
	b[1] = pt & 0x7F
	if marker {
		b[1] |= 0x80
	}
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], ts)
	binary.BigEndian.PutUint32(b[8:], ssrc)
}
