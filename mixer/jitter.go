package mixer

// jitterSlots bounds how far ahead of the playout point a frame may arrive and
// still be kept; a power of two so that the slot is the sequence number's low bits.
const jitterSlots = 8

// jitter is a per-leg playout buffer of decoded 20 ms frames, indexed by RTP
// sequence number. It reorders frames that arrive within its window and plays
// them out one per tick, delay frames behind the newest sequence number it
// started from. A frame for a slot already played out is late: it is counted
// and dropped, never queued, so a late leg never delays the conference.
type jitter struct {
	delay   uint16 // playout delay in frames, < jitterSlots
	started bool
	playing bool // a real frame has been played since the last (re)start
	ssrc    uint32
	next    uint16 // sequence number of the frame the next tick plays
	slots   [jitterSlots]jitterSlot

	lateRun int // late frames in a row

	received, late, lost, dups, resyncs uint64
}

// lateResync is how many late frames in a row make the buffer restart playout:
// a sender whose clock runs slower than ours, or whose path delay grew, would
// otherwise have every frame dropped as late from then on.
const lateResync = 3

type jitterSlot struct {
	seq  uint16
	full bool
	pcm  [FrameSamples]int16
}

// reset restarts playout from seq: a new source, or a jump beyond the window.
func (j *jitter) reset(ssrc uint32, seq uint16) {
	j.started, j.playing, j.lateRun = true, false, 0
	j.ssrc = ssrc
	j.next = seq - j.delay
	for i := range j.slots {
		j.slots[i].full = false
	}
}

// push stores one frame's payload, decoded with law. payload must hold exactly
// one frame (FrameSamples codes).
func (j *jitter) push(law Law, ssrc uint32, seq uint16, payload []byte) {
	if !j.started || ssrc != j.ssrc {
		// RFC 3550 §8.2: a new SSRC is a new source whose sequence space is its own.
		j.reset(ssrc, seq)
	}
	d := int16(seq - j.next)
	if d < 0 {
		j.late++
		if j.lateRun++; j.lateRun < lateResync {
			return
		}
		j.resyncs++
		j.reset(ssrc, seq)
		d = int16(seq - j.next)
	}
	j.lateRun = 0
	if d >= jitterSlots {
		// The sender is ahead of the window: a gap, or a clock faster than ours.
		// Restart playout behind this frame rather than keep stale slots.
		j.resyncs++
		j.reset(ssrc, seq)
	}
	s := &j.slots[seq%jitterSlots]
	if s.full && s.seq == seq {
		j.dups++
		return
	}
	j.received++
	s.seq, s.full = seq, true
	law.decode(s.pcm[:], payload)
}

// pop plays out the frame due at this tick into dst and reports whether there
// was one; a missing frame is lost (dst untouched), and its slot is skipped.
func (j *jitter) pop(dst *[FrameSamples]int16) bool {
	if !j.started {
		return false
	}
	seq := j.next
	j.next++
	s := &j.slots[seq%jitterSlots]
	if !s.full || s.seq != seq {
		if j.playing {
			j.lost++
		}
		return false
	}
	s.full = false
	j.playing = true
	*dst = s.pcm
	return true
}
