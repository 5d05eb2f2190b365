package mixer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

const toneAmp = 4000

// conference is a rig with one tone source and one capture per participant.
type conference struct {
	*rig
	ids  []string
	srcs map[string]*toneSource
	outs map[string]*capture
}

type member struct {
	id   string
	law  Law
	freq float64
}

var fiveTones = []member{
	{"a", PCMU, 300}, {"b", PCMA, 500}, {"c", PCMU, 700}, {"d", PCMA, 1100}, {"e", PCMU, 1300},
}

func newConference(t *testing.T, cfg Config, members []member) *conference {
	t.Helper()
	c := &conference{rig: newRig(t, cfg), srcs: map[string]*toneSource{}, outs: map[string]*capture{}}
	for i, mb := range members {
		c.ids = append(c.ids, mb.id)
		c.srcs[mb.id] = &toneSource{law: mb.law, freq: mb.freq, amp: toneAmp, seq: uint16(1000 * i), ssrc: uint32(0xA0 + i)}
		c.outs[mb.id] = &capture{}
		if err := c.m.Add(mb.id, Participant{Law: mb.law, EventPT: 101, Output: c.outs[mb.id]}); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// run feeds every participant one frame per tick, n times.
func (c *conference) run(n int) {
	for range n {
		for _, id := range c.ids {
			if err := c.m.WriteRTP(id, c.srcs[id].next()); err != nil {
				c.t.Fatal(err)
			}
		}
		c.tickOnce()
	}
}

// hears checks which tones participant id receives in output packets [from, to).
func (c *conference) hears(id string, from, to int, want map[float64]bool) {
	c.t.Helper()
	law := c.srcs[id].law
	x := c.outs[id].pcm(c.t, law, from, to)
	for _, mb := range c.ids {
		f := c.srcs[mb].freq
		a := amplitude(x, f)
		if want[f] && a < 0.8*toneAmp {
			c.t.Errorf("%s does not hear %v Hz (%s): amplitude %.0f", id, f, mb, a)
		}
		// Not heard: below -26 dB. G.711 quantisation of the others' sum leaves
		// about 2% at a tone's frequency when it is an intermodulation product of
		// the others (1100+500-300 = 1300 Hz), so silence is not the bound.
		if !want[f] && a > 0.05*toneAmp {
			c.t.Errorf("%s hears %v Hz (%s): amplitude %.0f", id, f, mb, a)
		}
	}
}

func tones(c *conference, except ...string) map[float64]bool {
	w := map[float64]bool{}
	for _, id := range c.ids {
		w[c.srcs[id].freq] = true
	}
	for _, id := range except {
		delete(w, c.srcs[id].freq)
	}
	return w
}

func TestEachHearsTheOthersNotItself(t *testing.T) {
	c := newConference(t, Config{}, fiveTones)
	c.run(50)
	c.stop()
	for _, id := range c.ids {
		// Frames 0 and 1 are the jitter buffer's playout delay.
		c.hears(id, 10, 50, tones(c, id))
	}
}

func TestOutputIsOneContinuousStreamEach(t *testing.T) {
	c := newConference(t, Config{}, fiveTones)
	c.run(30)
	c.stop()
	ssrcs := map[uint32]string{}
	for _, id := range c.ids {
		pkts := c.outs[id].packets()
		if len(pkts) != 30 {
			t.Fatalf("%s got %d packets for 30 ticks", id, len(pkts))
		}
		ssrc := rtpSSRC(pkts[0])
		if other, dup := ssrcs[ssrc]; dup {
			t.Errorf("%s and %s share SSRC %#x", id, other, ssrc)
		}
		ssrcs[ssrc] = id
		for i, p := range pkts {
			if got, want := p[1]&0x7F, c.srcs[id].law.payloadType(); got != want {
				t.Errorf("%s packet %d: payload type %d, want %d", id, i, got, want)
			}
			if marker := p[1]&0x80 != 0; marker != (i == 0) {
				t.Errorf("%s packet %d: marker %v", id, i, marker)
			}
			if len(p) != rtpHeaderLen+FrameSamples || p[0] != 0x80 {
				t.Errorf("%s packet %d: %d bytes, first octet %#x", id, i, len(p), p[0])
			}
			if i == 0 {
				continue
			}
			if rtpSSRC(p) != ssrc || rtpSeq(p) != rtpSeq(pkts[i-1])+1 || rtpTS(p) != rtpTS(pkts[i-1])+FrameSamples {
				t.Errorf("%s packet %d: ssrc %#x seq %d ts %d after ssrc %#x seq %d ts %d", id, i,
					rtpSSRC(p), rtpSeq(p), rtpTS(p), ssrc, rtpSeq(pkts[i-1]), rtpTS(pkts[i-1]))
			}
		}
	}
}

func TestMuteRemovesToneFromOthersOnly(t *testing.T) {
	c := newConference(t, Config{}, fiveTones)
	c.run(50)
	if err := c.m.Mute("c"); err != nil {
		t.Fatal(err)
	}
	c.run(50)
	if err := c.m.Unmute("c"); err != nil {
		t.Fatal(err)
	}
	c.run(50)
	c.stop()
	for _, id := range c.ids {
		c.hears(id, 10, 50, tones(c, id))
		// The mute takes effect from the next tick: frame 50 on.
		if id == "c" {
			c.hears(id, 50, 100, tones(c, "c")) // the muted one still hears everyone else
		} else {
			c.hears(id, 50, 100, tones(c, id, "c"))
		}
		c.hears(id, 100, 150, tones(c, id))
	}
	if st := c.m.State(); st[2].ID != "c" || st[2].Muted {
		t.Errorf("state after unmute: %+v", st[2])
	}
}

func TestRemoveStopsOutputAndMix(t *testing.T) {
	c := newConference(t, Config{}, fiveTones)
	c.run(20)
	if err := c.m.Remove("d"); err != nil {
		t.Fatal(err)
	}
	if err := c.m.WriteRTP("d", c.srcs["d"].next()); !errors.Is(err, ErrUnknownParticipant) {
		t.Errorf("WriteRTP after Remove: %v, want ErrUnknownParticipant", err)
	}
	if err := c.m.Mute("d"); !errors.Is(err, ErrUnknownParticipant) {
		t.Errorf("Mute after Remove: %v", err)
	}
	c.ids = []string{"a", "b", "c", "e"}
	c.run(40)
	c.stop()
	if n := len(c.outs["d"].packets()); n != 20 {
		t.Errorf("removed participant got %d packets, want the 20 before removal", n)
	}
	for _, id := range c.ids {
		w := tones(c, id)
		delete(w, 1100)
		c.hears(id, 20, 60, w)
	}
	if len(c.m.State()) != 4 {
		t.Errorf("state lists %d participants, want 4", len(c.m.State()))
	}
}

func TestAddValidates(t *testing.T) {
	r := newRig(t, Config{})
	out := &capture{}
	for _, tc := range []struct {
		name string
		p    Participant
	}{
		{"no law", Participant{Output: out}},
		{"no output", Participant{Law: PCMU}},
		{"event PT equals audio PT", Participant{Law: PCMU, EventPT: 0, PayloadType: 96, Output: out}},
		{"payload type out of range", Participant{Law: PCMA, PayloadType: 200, Output: out}},
	} {
		if tc.name == "event PT equals audio PT" {
			tc.p.EventPT = 96
		}
		if err := r.m.Add("x", tc.p); err == nil {
			t.Errorf("%s: Add accepted %+v", tc.name, tc.p)
		}
	}
	if err := r.m.Add("x", Participant{Law: PCMU, Output: out}); err != nil {
		t.Fatal(err)
	}
	if err := r.m.Add("x", Participant{Law: PCMA, Output: out}); !errors.Is(err, ErrParticipantExists) {
		t.Errorf("second Add of x: %v, want ErrParticipantExists", err)
	}
}

func TestMixSaturates(t *testing.T) {
	r := newRig(t, Config{})
	outs := map[string]*capture{"a": {}, "b": {}, "c": {}}
	for _, id := range []string{"a", "b", "c"} {
		if err := r.m.Add(id, Participant{Law: PCMU, Output: outs[id]}); err != nil {
			t.Fatal(err)
		}
	}
	// a and b send a constant near full scale: their sum overflows int16, and
	// wrapping instead of saturating would turn it negative.
	var loud [FrameSamples]int16
	for i := range loud {
		loud[i] = 30000
	}
	pkt := make([]byte, rtpHeaderLen+FrameSamples)
	for seq := range 5 {
		for _, id := range []string{"a", "b"} {
			putRTPHeader(pkt, false, 0, uint16(seq), uint32(seq*FrameSamples), 7)
			EncodeUlaw(pkt[rtpHeaderLen:], loud[:])
			if err := r.m.WriteRTP(id, pkt); err != nil {
				t.Fatal(err)
			}
		}
		r.tickOnce()
	}
	r.stop()
	for _, s := range outs["c"].pcm(t, PCMU, 2, 5) {
		if s != 32124 { // µ-law's largest value: the clipped sum
			t.Fatalf("c hears %d, want the saturated 32124", s)
		}
	}
}

func TestTelephoneEventsAreNotMixed(t *testing.T) {
	c := newConference(t, Config{}, fiveTones[:3])
	// a sends only RFC 4733 packets on its negotiated event PT 101: a real
	// 4-octet event (digit 5, end bit, volume 10, duration 800), and one with
	// a frame-sized payload carrying a tone, to show that the payload type,
	// not the size, keeps it out of the mix.
	event := c.srcs["a"].next()[:rtpHeaderLen+4]
	event[1] = 101
	copy(event[rtpHeaderLen:], []byte{5, 0x80 | 10, 0x03, 0x20})
	for i := range 40 {
		pkt := c.srcs["a"].next()
		pkt[1] = 101
		if i%2 == 0 {
			pkt = event
		}
		if err := c.m.WriteRTP("a", pkt); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"b", "c"} {
			if err := c.m.WriteRTP(id, c.srcs[id].next()); err != nil {
				t.Fatal(err)
			}
		}
		c.tickOnce()
	}
	c.stop()
	c.hears("b", 10, 40, map[float64]bool{700: true})
	c.hears("c", 10, 40, map[float64]bool{500: true})
	st := c.m.State()[0]
	if st.Stats.Events != 40 || st.Stats.Received != 0 || st.Talking {
		t.Errorf("a's state: %+v, want 40 events, no audio, not talking", st)
	}
}

func TestTalkingWithHangover(t *testing.T) {
	var mu sync.Mutex
	var events []string
	r := newRig(t, Config{Onset: 2, Hangover: 15, JitterDelay: 2})
	r.m.onTalking = func(id string, talking bool) {
		mu.Lock()
		defer mu.Unlock()
		ticks, _ := r.m.Ticks()
		events = append(events, fmt.Sprintf("%s %v @%d", id, talking, ticks))
	}
	if err := r.m.Add("a", Participant{Law: PCMA, Output: &capture{}}); err != nil {
		t.Fatal(err)
	}
	src := &toneSource{law: PCMA, amp: toneAmp}
	// Speech 10 frames, a 5-frame pause (shorter than the hangover), speech 5
	// frames, then a 40-frame silence. Frame k is written before tick k+1 and,
	// 2 frames of playout delay later, played at tick k+3.
	script := []struct {
		frames int
		freq   float64
	}{{10, 440}, {5, 0}, {5, 440}, {40, 0}}
	for _, s := range script {
		src.freq = s.freq
		for range s.frames {
			if err := r.m.WriteRTP("a", src.next()); err != nil {
				t.Fatal(err)
			}
			r.tickOnce()
		}
	}
	r.stop()
	// On at the second speech frame (frame 1, tick 4); off at the 15th quiet
	// frame after frame 19 (frame 34, tick 37). The pause does not flicker.
	want := []string{"a true @4", "a false @37"}
	if fmt.Sprint(events) != fmt.Sprint(want) {
		t.Errorf("talking events %v, want %v", events, want)
	}
}

func TestReorderedFramesArePlayedInOrder(t *testing.T) {
	c := newConference(t, Config{}, fiveTones[:2])
	// a's frames arrive in pairs swapped (1 0 3 2 ...), inside the 2-frame
	// playout delay: b must hear a clean tone with nothing lost or late.
	var pending []byte
	for i := range 60 {
		pkt := c.srcs["a"].next()
		if i%2 == 0 {
			pending = pkt
		} else {
			_ = c.m.WriteRTP("a", pkt)
			_ = c.m.WriteRTP("a", pending)
		}
		_ = c.m.WriteRTP("b", c.srcs["b"].next())
		c.tickOnce()
	}
	c.stop()
	c.hears("b", 10, 60, map[float64]bool{300: true})
	if st := c.m.State()[0].Stats; st.Late != 0 || st.Lost != 0 || st.Received != 60 {
		t.Errorf("a's stats %+v, want 60 received, none late or lost", st)
	}
}

func TestLateFrameIsSkipped(t *testing.T) {
	c := newConference(t, Config{JitterDelay: 1}, fiveTones[:2])
	var held []byte
	for i := range 30 {
		pkt := c.srcs["a"].next()
		switch i {
		case 10:
			held = pkt // delayed by 3 frames, beyond the 1-frame playout delay
		case 13:
			_ = c.m.WriteRTP("a", held)
			fallthrough
		default:
			_ = c.m.WriteRTP("a", pkt)
		}
		_ = c.m.WriteRTP("b", c.srcs["b"].next())
		c.tickOnce()
	}
	c.stop()
	st := c.m.State()[0].Stats
	if st.Late != 1 || st.Lost != 1 || st.Received != 29 {
		t.Errorf("a's stats %+v, want 1 late, 1 lost, 29 received", st)
	}
	// Frame 10 plays at tick 12 (output packet 11): silence there, not a queue
	// that would delay every later frame; the frames after it are on time.
	x := c.outs["b"].pcm(t, PCMA, 11, 12)
	if a := amplitude(x, 300); a > 0.05*toneAmp {
		t.Errorf("b hears a's tone (%.0f) in the late frame's slot", a)
	}
	c.hears("b", 12, 30, map[float64]bool{300: true})
}

// discard is an Output that keeps nothing.
type discard struct{}

func (discard) WriteRTP([]byte) error { return nil }

func TestSteadyPathDoesNotAllocate(t *testing.T) {
	m, err := New(Config{OnTalking: func(string, bool) {}})
	if err != nil {
		t.Fatal(err)
	}
	var srcs []*toneSource
	for i, mb := range fiveTones {
		if err := m.Add(mb.id, Participant{Law: mb.law, Output: discard{}}); err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, &toneSource{law: mb.law, freq: mb.freq, amp: toneAmp, ssrc: uint32(i)})
	}
	pkts := make([][]byte, len(srcs))
	for i, s := range srcs {
		pkts[i] = s.next()
	}
	allocs := testing.AllocsPerRun(200, func() {
		for i, mb := range fiveTones {
			p := pkts[i]
			binary.BigEndian.PutUint16(p[2:], binary.BigEndian.Uint16(p[2:])+1)
			if err := m.WriteRTP(mb.id, p); err != nil {
				t.Fatal(err)
			}
		}
		m.mix()
	})
	if allocs != 0 {
		t.Errorf("%v allocations per frame, want 0", allocs)
	}
}

func TestLoopCatchesUpAfterDroppedTicks(t *testing.T) {
	m, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	// Tick times as a time.Ticker delivers them to a loop that was held up:
	// a tick 40 ms late (3 frames due: 2 now, 1 at the next tick), then a
	// stall of 140 ms (7 due, of which 5 are owed and 2 skipped), caught up
	// two frames a tick.
	for _, tc := range []struct {
		at   time.Duration
		want int
	}{
		{0, 1}, {20, 1}, {80, 2}, {100, 2}, {120, 1}, {260, 2}, {280, 2}, {300, 2}, {320, 2}, {340, 1},
	} {
		if got := m.framesDue(t0.Add(tc.at * time.Millisecond)); got != tc.want {
			t.Errorf("tick at %d ms: %d frames, want %d", tc.at, got, tc.want)
		}
	}
	if ticks, overruns := m.Ticks(); ticks != 10 || overruns != 6 {
		t.Errorf("ticks %d overruns %d, want 10 and 6", ticks, overruns)
	}
}
