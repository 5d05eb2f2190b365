package main

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkFrame measures one 20 ms frame of the whole load: every
// participant's packet in (parse, jitter buffer, decode) and every
// participant's mix-minus out (sum, subtract, encode, RTP header, write), for
// one big conference and for many 3-party ones. participants/core is how many
// participants one core could carry at this cost per frame.
func BenchmarkFrame(b *testing.B) {
	for _, tc := range []struct{ participants, size int }{
		{1000, 0}, {3000, 0}, {999, 3}, {3000, 3},
	} {
		name := fmt.Sprintf("participants=%d/conference=%d", tc.participants, tc.size)
		if tc.size == 0 {
			name = fmt.Sprintf("participants=%d/conference=all", tc.participants)
		}
		b.Run(name, func(b *testing.B) {
			ticks := map[int]chan time.Time{}
			done := make(chan struct{}, 1<<16)
			confs, err := newLoad(tc.participants, tc.size, func(i int) <-chan time.Time {
				ticks[i] = make(chan time.Time)
				return ticks[i]
			})
			if err != nil {
				b.Fatal(err)
			}
			// The last participant of each conference reports the end of its frame.
			for _, c := range confs {
				c.sinks[len(c.sinks)-1].done = done
			}
			stop := runAll(confs)
			defer stop()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := feedAll(confs); err != nil {
					b.Fatal(err)
				}
				for i := range confs {
					ticks[i] <- time.Time{}
				}
				for range confs {
					<-done
				}
			}
			b.StopTimer()
			perFrame := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			b.ReportMetric(float64(tc.participants)*float64(20*time.Millisecond)/perFrame, "participants/core")
			if late, lost, _ := lateFrames(confs); late != 0 || lost != 0 {
				b.Errorf("%d late and %d lost frames", late, lost)
			}
		})
	}
}
