// Package mixer is the audio bridge of a conference: it takes each
// participant's G.711 RTP, plays it out through a small jitter buffer on a
// 20 ms tick, and sends every participant the sum of the others (mix-minus) as
// an RTP stream of its own. It knows nothing of sockets or SIP: packets come in
// through WriteRTP and go out through each participant's Output.
package mixer

//go:generate go run ./testdata/tones/gen.go -out testdata/tones

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// FrameDuration is the mixer's tick and the duration of every frame it mixes.
const FrameDuration = 20 * time.Millisecond

// maxParticipants keeps the int32 sum of int16 frames from overflowing.
const maxParticipants = math.MaxInt32 / (math.MaxInt16 + 1)

// Errors returned by the participant operations.
var (
	ErrUnknownParticipant = errors.New("mixer: unknown participant")
	ErrParticipantExists  = errors.New("mixer: participant already in the conference")
)

// Output receives a participant's mixed RTP packets. pkt is valid only during
// the call: an implementation that keeps it must copy it. WriteRTP is called
// from the mixer's loop, so it must not block.
type Output interface {
	WriteRTP(pkt []byte) error
}

// Config configures a Mixer. The zero value of every field but Log has a default.
type Config struct {
	// Tick drives the loop, one value per 20 ms frame. Nil: Run starts a
	// time.Ticker (monotonic). Tests inject a channel so that they never sleep.
	Tick <-chan time.Time
	// Log receives the mixer's rare diagnostics. Nil: slog.Default().
	Log *slog.Logger
	// OnTalking is told when a participant starts or stops talking. It is
	// called from the loop, so it must return quickly.
	OnTalking func(id string, talking bool)
	// JitterDelay is the playout delay in frames (default 2, at most 7): how
	// much reordering and jitter a leg may have before its frames are late.
	JitterDelay int
	// SpeechLevel is the frame level, in dB relative to full scale, from which a
	// frame counts as speech (default -42 dBov).
	SpeechLevel float64
	// Onset is how many speech frames in a row start "talking" (default 2).
	Onset int
	// Hangover is how many quiet frames in a row end it (default 15, 300 ms).
	Hangover int
}

// Participant describes one leg of the conference.
type Participant struct {
	// Law is the G.711 law negotiated with the participant, in both directions.
	Law Law
	// PayloadType is the negotiated audio payload type; 0 means the law's
	// static type (PCMU 0, PCMA 8). Other payload types are not mixed.
	PayloadType uint8
	// EventPT is the negotiated telephone-event payload type (RFC 4733), or 0.
	EventPT uint8
	// Output receives the participant's mix.
	Output Output
}

// Mixer mixes one conference. Its methods are safe for concurrent use; Run
// owns the loop.
type Mixer struct {
	tick      <-chan time.Time
	log       *slog.Logger
	onTalking func(string, bool)
	delay     uint16
	threshold int64
	onset     int
	hangover  int

	mu   sync.Mutex             // serialises changes of the participant set
	legs atomic.Pointer[legSet] // copy on write: the packet path and the loop never lock it

	// Loop-only state.
	sum     [FrameSamples]int32
	scratch [FrameSamples]int16
	shared  [3]sharedMix // per law: the full mix for those who contribute nothing
	start   time.Time    // when the ticker started (an injected one: a frame before its first tick)
	mixed   int64        // frames mixed since start

	ticks, overruns atomic.Uint64

	afterMix func() // test hook: lets a test's tick wait for the frame it caused
}

type legSet struct {
	byID map[string]*leg
	list []*leg
}

type sharedMix struct {
	valid   bool
	payload [FrameSamples]byte
}

// New returns a Mixer for one conference.
func New(cfg Config) (*Mixer, error) {
	m := &Mixer{
		tick:      cfg.Tick,
		log:       cfg.Log,
		onTalking: cfg.OnTalking,
		onset:     cfg.Onset,
		hangover:  cfg.Hangover,
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	switch d := cfg.JitterDelay; {
	case d == 0:
		m.delay = 2
	case d < 0 || d >= jitterSlots:
		return nil, fmt.Errorf("mixer: jitter delay %d frames: want 1..%d", d, jitterSlots-1)
	default:
		m.delay = uint16(d)
	}
	level := cfg.SpeechLevel
	if level == 0 {
		level = -42
	}
	if level > 0 {
		return nil, fmt.Errorf("mixer: speech level %v dBov: want below 0", level)
	}
	rms := 32768 * math.Pow(10, level/20)
	m.threshold = int64(rms * rms)
	if m.onset == 0 {
		m.onset = 2
	}
	if m.hangover == 0 {
		m.hangover = 15
	}
	if m.onset < 0 || m.hangover < 0 {
		return nil, fmt.Errorf("mixer: onset %d and hangover %d frames: want positive", m.onset, m.hangover)
	}
	m.legs.Store(&legSet{byID: map[string]*leg{}})
	return m, nil
}

// Add puts a participant into the conference. It hears the others from the
// next tick on.
func (m *Mixer) Add(id string, p Participant) error {
	if p.Law != PCMU && p.Law != PCMA {
		return fmt.Errorf("mixer: participant %q: invalid law %d", id, p.Law)
	}
	if p.Output == nil {
		return fmt.Errorf("mixer: participant %q: no output", id)
	}
	pt := p.PayloadType
	if pt == 0 {
		pt = p.Law.payloadType()
	}
	if pt > 127 || p.EventPT > 127 || (p.EventPT != 0 && p.EventPT == pt) {
		return fmt.Errorf("mixer: participant %q: payload types %d and %d", id, pt, p.EventPT)
	}
	l := newLeg(id, p, pt, m.delay, &talkDetector{threshold: m.threshold, onset: m.onset, hangover: m.hangover})

	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.legs.Load()
	if _, ok := old.byID[id]; ok {
		return fmt.Errorf("%w: %q", ErrParticipantExists, id)
	}
	if len(old.list) >= maxParticipants {
		return fmt.Errorf("mixer: participant %q: conference full (%d)", id, maxParticipants)
	}
	next := &legSet{byID: make(map[string]*leg, len(old.list)+1), list: make([]*leg, 0, len(old.list)+1)}
	for k, v := range old.byID {
		next.byID[k] = v
	}
	next.byID[id] = l
	next.list = append(append(next.list, old.list...), l)
	m.legs.Store(next)
	return nil
}

// Remove takes a participant out of the conference (kick or hang-up): its
// audio is no longer mixed and its output gets nothing more. No talking-off
// callback follows; the caller knows the participant left.
func (m *Mixer) Remove(id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.legs.Load()
	l, ok := old.byID[id]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownParticipant, id)
	}
	// The loop may still hold the old set for the tick under way.
	l.removed.Store(true)
	next := &legSet{byID: make(map[string]*leg, len(old.list)), list: make([]*leg, 0, len(old.list))}
	for _, v := range old.list {
		if v != l {
			next.byID[v.id] = v
			next.list = append(next.list, v)
		}
	}
	m.legs.Store(next)
	return nil
}

// Mute stops mixing a participant's audio; it still hears the others.
func (m *Mixer) Mute(id string) error { return m.setMuted(id, true) }

// Unmute mixes a muted participant's audio again.
func (m *Mixer) Unmute(id string) error { return m.setMuted(id, false) }

func (m *Mixer) setMuted(id string, muted bool) error {
	l, ok := m.legs.Load().byID[id]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownParticipant, id)
	}
	l.muted.Store(muted)
	return nil
}

// WriteRTP takes one RTP packet from a participant. pkt is only read during
// the call. Packets of the participant's telephone-event payload type (RFC
// 4733) and of any payload type but its audio one are counted, never mixed.
func (m *Mixer) WriteRTP(id string, pkt []byte) error {
	l, ok := m.legs.Load().byID[id]
	if !ok {
		return ErrUnknownParticipant
	}
	l.input(pkt)
	return nil
}

// Run mixes a frame on every tick until ctx is done (or an injected Tick
// channel is closed). It is the conference's one loop: call it once.
func (m *Mixer) Run(ctx context.Context) error {
	tick := m.tick
	if tick == nil {
		m.start = time.Now()
		t := time.NewTicker(FrameDuration)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case now, ok := <-tick:
			if !ok {
				return nil
			}
			for range m.framesDue(now) {
				m.mix()
			}
		}
	}
}

// After the loop was held up, it catches up at most maxPerTick frames a tick,
// so that the packet path, held up too, can deliver the frames it owes before
// they are played out; and it owes at most maxBehind frames: time beyond that
// is skipped, not replayed.
const (
	maxPerTick = 2
	maxBehind  = 5
)

// framesDue says how many frames to mix for a tick at now. A time.Ticker drops
// ticks while its receiver is late; mixing by the elapsed monotonic time
// instead of by the ticks received keeps every output stream at 50 packets
// per second and the jitter buffers' depth where it was. An injected tick
// with a zero time is one frame.
func (m *Mixer) framesDue(now time.Time) int {
	m.ticks.Add(1)
	if now.IsZero() {
		return 1
	}
	if m.start.IsZero() {
		// An injected tick: take the first as the first frame's.
		m.start = now.Add(-FrameDuration)
	}
	// Tick k of a ticker started at m.start fires at m.start + k frames or a
	// little later, never earlier: rounding down never runs the loop ahead of
	// the senders, and only a tick a whole frame late counts as dropped ones.
	due := int64(now.Sub(m.start) / FrameDuration)
	n := due - m.mixed
	if n > 1 {
		m.overruns.Add(1)
	}
	if n > maxBehind {
		m.mixed = due - maxBehind
		n = maxBehind
	}
	n = max(min(n, maxPerTick), 0)
	m.mixed += n
	return int(n)
}

// Ticks reports how many ticks the loop received, and how many of them found
// the loop late by a frame or more (it then catches up, framesDue).
func (m *Mixer) Ticks() (ticks, overruns uint64) {
	return m.ticks.Load(), m.overruns.Load()
}

// mix plays out one frame: every leg's next frame is summed, then each leg
// gets the sum minus its own contribution, encoded in its law.
func (m *Mixer) mix() {
	set := m.legs.Load()
	clear(m.sum[:])
	for _, l := range set.list {
		l.playout()
		if l.talk.update(l.energy) {
			l.talking.Store(l.talk.talking)
			if m.onTalking != nil {
				m.onTalking(l.id, l.talk.talking)
			}
		}
		if l.contributes {
			for i, s := range l.frame {
				m.sum[i] += int32(s)
			}
		}
	}
	for i := range m.shared {
		m.shared[i].valid = false
	}
	for _, l := range set.list {
		if l.removed.Load() {
			continue
		}
		payload := l.out[rtpHeaderLen:]
		if l.contributes {
			for i, s := range l.frame {
				l.mixed[i] = saturate(m.sum[i] - int32(s))
			}
			l.law.encode(payload, l.mixed[:])
		} else {
			// Everyone who adds nothing this frame hears the same full mix:
			// encode it once per law.
			sh := &m.shared[l.law]
			if !sh.valid {
				for i, s := range m.sum {
					m.scratch[i] = saturate(s)
				}
				l.law.encode(sh.payload[:], m.scratch[:])
				sh.valid = true
			}
			copy(payload, sh.payload[:])
		}
		l.send(m.log)
	}
	if m.afterMix != nil {
		m.afterMix()
	}
}

func saturate(v int32) int16 {
	return int16(max(math.MinInt16, min(math.MaxInt16, v)))
}
