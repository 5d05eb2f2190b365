package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/imcall/b2bua/mixer"
)

// sink is a participant's Output: it counts packets and keeps none, like a
// socket write that copies the packet into the kernel.
type sink struct {
	n    uint64
	done chan<- struct{} // if set, told after each packet: the benchmark's end of frame
}

func (s *sink) WriteRTP(pkt []byte) error {
	s.n++
	if s.done != nil {
		s.done <- struct{}{}
	}
	return nil
}

// feed is one participant's input: a pre-encoded tone frame whose sequence
// number and timestamp advance on every send, as the RTP proxy would hand it over.
type feed struct {
	id  string
	pkt []byte
}

func (f *feed) next() []byte {
	binary.BigEndian.PutUint16(f.pkt[2:], binary.BigEndian.Uint16(f.pkt[2:])+1)
	binary.BigEndian.PutUint32(f.pkt[4:], binary.BigEndian.Uint32(f.pkt[4:])+mixer.FrameSamples)
	return f.pkt
}

// conf is one conference of the load: its mixer, its participants' feeds and outputs.
type conf struct {
	m     *mixer.Mixer
	feeds []*feed
	sinks []*sink
}

// newLoad builds participants/size conferences of size participants each,
// every participant sending a tone of its own; laws alternate so that both
// encoders and the cross-law path are in the mix.
func newLoad(participants, size int, tick func(i int) <-chan time.Time) ([]*conf, error) {
	if size <= 0 || size > participants {
		size = participants
	}
	var confs []*conf
	for c := 0; c*size < participants; c++ {
		m, err := mixer.New(mixer.Config{Tick: tick(c)})
		if err != nil {
			return nil, err
		}
		cf := &conf{m: m}
		for i := 0; i < size && c*size+i < participants; i++ {
			law := mixer.PCMU
			if i%2 == 1 {
				law = mixer.PCMA
			}
			id := fmt.Sprintf("p%d", i)
			s := &sink{}
			if err := m.Add(id, mixer.Participant{Law: law, Output: s}); err != nil {
				return nil, err
			}
			cf.sinks = append(cf.sinks, s)
			cf.feeds = append(cf.feeds, &feed{id: id, pkt: toneFrame(law, 300+float64(50*(i%60)), uint32(c<<16|i))})
		}
		confs = append(confs, cf)
	}
	return confs, nil
}

func toneFrame(law mixer.Law, freq float64, ssrc uint32) []byte {
	var pcm [mixer.FrameSamples]int16
	for i := range pcm {
		pcm[i] = int16(4000 * math.Sin(2*math.Pi*freq*float64(i)/8000))
	}
	pkt := make([]byte, 12+mixer.FrameSamples)
	pkt[0] = 0x80
	binary.BigEndian.PutUint32(pkt[8:], ssrc)
	if law == mixer.PCMA {
		pkt[1] = 8
		mixer.EncodeAlaw(pkt[12:], pcm[:])
	} else {
		mixer.EncodeUlaw(pkt[12:], pcm[:])
	}
	return pkt
}

// feedAll writes every participant's next frame.
func feedAll(confs []*conf) error {
	for _, c := range confs {
		for _, f := range c.feeds {
			if err := c.m.WriteRTP(f.id, f.next()); err != nil {
				return err
			}
		}
	}
	return nil
}

// runAll starts every conference's loop; the returned stop ends them and waits.
func runAll(confs []*conf) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, c := range confs {
		wg.Go(func() { _ = c.m.Run(ctx) })
	}
	return func() { cancel(); wg.Wait() }
}

// lateFrames sums, over every participant, the frames that arrived too late or
// never reached playout, and every loop's overruns.
func lateFrames(confs []*conf) (late, lost, overruns uint64) {
	for _, c := range confs {
		for _, p := range c.m.State() {
			late += p.Stats.Late
			lost += p.Stats.Lost
		}
		_, o := c.m.Ticks()
		overruns += o
	}
	return late, lost, overruns
}
