package mixer

import (
	"context"
	"encoding/binary"
	"math"
	"sync"
	"testing"
	"time"
)

// toneSource produces a participant's RTP: a sine tone, G.711-encoded, 20 ms per packet.
type toneSource struct {
	law  Law
	pt   uint8
	freq float64 // Hz; 0 is silence
	amp  float64
	n    int // samples produced so far
	seq  uint16
	ssrc uint32
}

func (s *toneSource) frame() [FrameSamples]int16 {
	var f [FrameSamples]int16
	for i := range f {
		f[i] = int16(s.amp * math.Sin(2*math.Pi*s.freq*float64(s.n+i)/8000))
	}
	return f
}

// next returns the next packet, with sequence number seq+1.
func (s *toneSource) next() []byte {
	f := s.frame()
	pkt := make([]byte, rtpHeaderLen+FrameSamples)
	pt := s.pt
	if pt == 0 {
		pt = s.law.payloadType()
	}
	putRTPHeader(pkt, false, pt, s.seq, uint32(s.n), s.ssrc)
	s.law.encode(pkt[rtpHeaderLen:], f[:])
	s.n += FrameSamples
	s.seq++
	return pkt
}

// capture is an Output that keeps copies of every packet.
type capture struct {
	mu   sync.Mutex
	pkts [][]byte
}

func (c *capture) WriteRTP(pkt []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pkts = append(c.pkts, append([]byte(nil), pkt...))
	return nil
}

func (c *capture) packets() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pkts
}

// pcm decodes the payloads of packets [from, to) as law.
func (c *capture) pcm(t *testing.T, law Law, from, to int) []int16 {
	t.Helper()
	pkts := c.packets()
	if len(pkts) < to {
		t.Fatalf("captured %d packets, want at least %d", len(pkts), to)
	}
	var out []int16
	for _, p := range pkts[from:to] {
		r, ok := parseRTP(p)
		if !ok || len(r.payload) != FrameSamples {
			t.Fatalf("bad output packet %x", p)
		}
		f := make([]int16, FrameSamples)
		law.decode(f, r.payload)
		out = append(out, f...)
	}
	return out
}

// rig runs a Mixer on an injected tick.
type rig struct {
	t     *testing.T
	m     *Mixer
	tick  chan time.Time
	mixed chan struct{}
	stop  func()
}

func newRig(t *testing.T, cfg Config) *rig {
	t.Helper()
	r := &rig{t: t, tick: make(chan time.Time)}
	cfg.Tick = r.tick
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.m = m
	r.mixed = make(chan struct{})
	m.afterMix = func() { r.mixed <- struct{}{} }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := m.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	var once sync.Once
	r.stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(r.stop)
	return r
}

// tickOnce sends one tick and waits until its frame has been mixed and sent.
func (r *rig) tickOnce() {
	r.tick <- time.Time{}
	<-r.mixed
}

// amplitude is the Goertzel estimate of the amplitude of the freq component of x.
func amplitude(x []int16, freq float64) float64 {
	w := 2 * math.Pi * freq / 8000
	c := 2 * math.Cos(w)
	var s1, s2 float64
	for _, v := range x {
		s0 := float64(v) + c*s1 - s2
		s2, s1 = s1, s0
	}
	p := s1*s1 + s2*s2 - c*s1*s2
	return 2 * math.Sqrt(p) / float64(len(x))
}

func rtpSeq(p []byte) uint16  { return binary.BigEndian.Uint16(p[2:]) }
func rtpTS(p []byte) uint32   { return binary.BigEndian.Uint32(p[4:]) }
func rtpSSRC(p []byte) uint32 { return binary.BigEndian.Uint32(p[8:]) }
