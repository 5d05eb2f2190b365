package rtpproxy

import "encoding/binary"

// outState is what one party was last sent on one stream, so that a source
// switch is invisible to it. A receiver takes a new SSRC for a new
// participant and a jump in sequence numbers for loss (RFC 3550 §8.2,
// A.1), so when the table makes it hear another source, the packets keep
// the SSRC the party saw first and continue its sequence numbers and
// timestamps; the timestamp gap is the time that passed at the clock rate
// of the new source (RFC 7160 §4.1: timestamps follow the sender's clock).
type outState struct {
	started bool
	ssrc    uint32    // what the party sees, fixed at the first packet
	src     *endpoint // source of the last packet
	inSSRC  uint32    // its SSRC
	seqOff  uint16
	tsOff   uint32
	seq     uint16 // highest sequence number sent
	ts      uint32 // timestamp sent with it
	at      int64  // proxy clock when seq was sent
}

// rewrite rewrites the header of b, an RTP packet of at least 12 bytes
// that src's party sent, for this party.
func (o *outState) rewrite(src *endpoint, b []byte, now int64) {
	seq := binary.BigEndian.Uint16(b[2:])
	ts := binary.BigEndian.Uint32(b[4:])
	ssrc := binary.BigEndian.Uint32(b[8:])
	first := !o.started
	switch {
	case first:
		*o = outState{started: true, ssrc: ssrc, src: src, inSSRC: ssrc}
	case src != o.src || ssrc != o.inSSRC:
		clock := src.clock.Load()
		if clock == 0 {
			clock = 8000
		}
		gap := uint32(uint64(max(now-o.at, 0)) * uint64(clock) / 1e9)
		o.seqOff = o.seq + 1 - seq
		o.tsOff = o.ts + max(gap, 1) - ts
		o.src, o.inSSRC = src, ssrc
	}
	oseq, ots := seq+o.seqOff, ts+o.tsOff
	binary.BigEndian.PutUint16(b[2:], oseq)
	binary.BigEndian.PutUint32(b[4:], ots)
	binary.BigEndian.PutUint32(b[8:], o.ssrc)
	if d := oseq - o.seq; first || (d != 0 && d < 0x8000) {
		// the gap at a switch is counted from the packet whose
		// timestamp it continues, not from a late one
		o.seq, o.ts, o.at = oseq, ots, now
	}
}
