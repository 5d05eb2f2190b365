package mixer

import (
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// leg is one participant: its input (jitter buffer, fed from the packet path)
// and its output (an RTP stream of its own, written by the loop).
type leg struct {
	id      string
	law     Law
	pt      uint8
	eventPT uint8
	dst     Output

	muted   atomic.Bool
	removed atomic.Bool
	talking atomic.Bool

	mu      sync.Mutex // guards jb and the input counters: the packet path against the loop
	jb      jitter
	events  uint64
	ignored uint64

	// Loop-only state, set by playout for the tick under way.
	frame       [FrameSamples]int16
	contributes bool
	energy      int64
	talk        *talkDetector
	mixed       [FrameSamples]int16
	out         [rtpHeaderLen + FrameSamples]byte
	first       bool
	seq         uint16
	ts          uint32
	ssrc        uint32
	writeErrs   atomic.Uint64
}

func newLeg(id string, p Participant, pt uint8, delay uint16, talk *talkDetector) *leg {
	return &leg{
		id:      id,
		law:     p.Law,
		pt:      pt,
		eventPT: p.EventPT,
		dst:     p.Output,
		jb:      jitter{delay: delay},
		talk:    talk,
		first:   true,
		// RFC 3550 §5.1: random initial sequence number, timestamp and SSRC.
		seq:  uint16(rand.Uint32()),
		ts:   rand.Uint32(),
		ssrc: rand.Uint32(),
	}
}

// input files one packet from the participant. Only 20 ms frames of the
// negotiated audio payload type are mixed; telephone-events (RFC 4733 §2.1:
// identified by their payload type) and anything else are counted and dropped.
func (l *leg) input(pkt []byte) {
	p, ok := parseRTP(pkt)
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case ok && p.pt == l.pt && len(p.payload) == FrameSamples:
		l.jb.push(l.law, p.ssrc, p.seq, p.payload)
	case ok && l.eventPT != 0 && p.pt == l.eventPT:
		l.events++
	default:
		l.ignored++
	}
}

// playout takes the frame due at this tick, if any, and decides whether it
// is mixed: a muted participant's frames are not, and do not count as talking.
func (l *leg) playout() {
	l.mu.Lock()
	has := l.jb.pop(&l.frame)
	l.mu.Unlock()
	l.contributes = has && !l.muted.Load()
	l.energy = 0
	if l.contributes {
		l.energy = meanSquare(&l.frame)
	}
}

// send writes the mixed frame in l.out as the next packet of the leg's stream:
// sequence +1 and timestamp +160 per frame whether or not anyone spoke, so
// the participant hears one continuous stream (RFC 3550 §5.1); the marker is
// set on the first packet only (RFC 3551 §4.1).
func (l *leg) send(log *slog.Logger) {
	putRTPHeader(l.out[:], l.first, l.pt, l.seq, l.ts, l.ssrc)
	l.first = false
	l.seq++
	l.ts += FrameSamples
	if err := l.dst.WriteRTP(l.out[:]); err != nil {
		// Logged once per leg: a dead output would otherwise log 50 times a second.
		if l.writeErrs.Add(1) == 1 {
			log.Warn("mixer: output failed", "participant", l.id, "err", err)
		}
	}
}
