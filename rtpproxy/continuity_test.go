package rtpproxy

import (
	"encoding/binary"
	"testing"
)

// TestOutStateContinuity drives one receiver's rewrite with packets from
// two sources and checks the header each packet leaves with.
func TestOutStateContinuity(t *testing.T) {
	b, c := &endpoint{}, &endpoint{}
	c.clock.Store(48000)
	const ms = int64(1e6)
	type pkt struct {
		src      *endpoint
		seq      uint16
		ts, ssrc uint32
		at       int64 // proxy clock
		wantSeq  uint16
		wantTS   uint32 // the SSRC must always be the first packet's
	}
	cases := []struct {
		name string
		pkts []pkt
	}{
		{"one source passes unchanged", []pkt{
			{b, 10, 1000, 0xb, 0, 10, 1000},
			{b, 11, 1160, 0xb, 20 * ms, 11, 1160},
			{b, 13, 1480, 0xb, 60 * ms, 13, 1480}, // a loss stays visible
		}},
		{"switch continues sequence and time, at the new source's clock", []pkt{
			{b, 65535, 0xffffff00, 0xb, 0, 65535, 0xffffff00},
			{c, 7, 5, 0xc, 20 * ms, 0, 704}, // 20 ms at 48 kHz; both wrap
			{c, 8, 965, 0xc, 40 * ms, 1, 1664},
			{b, 1, 160, 0xb, 60 * ms, 2, 1824 /* wrapped */}, // back, 8 kHz
		}},
		{"a source that restarts with a new SSRC is hidden too", []pkt{
			{b, 100, 800, 0xb, 0, 100, 800},
			{b, 5000, 9, 0xbb, 20 * ms, 101, 960},
		}},
		{"a reordered packet does not move the high mark", []pkt{
			{b, 10, 1000, 0xb, 0, 10, 1000},
			{b, 12, 1320, 0xb, 40 * ms, 12, 1320},
			{b, 11, 1160, 0xb, 41 * ms, 11, 1160},
			{c, 1, 1, 0xc, 60 * ms, 13, 1320 + 960}, // continues after 12, 20 ms later
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var o outState
			var first uint32
			for i, p := range tc.pkts {
				h := make([]byte, 12)
				h[0] = 0x80
				binary.BigEndian.PutUint16(h[2:], p.seq)
				binary.BigEndian.PutUint32(h[4:], p.ts)
				binary.BigEndian.PutUint32(h[8:], p.ssrc)
				o.rewrite(p.src, h, p.at)
				seq, ts, ssrc := binary.BigEndian.Uint16(h[2:]), binary.BigEndian.Uint32(h[4:]), binary.BigEndian.Uint32(h[8:])
				if i == 0 {
					first = ssrc
				}
				if seq != p.wantSeq || ts != p.wantTS || ssrc != first {
					t.Errorf("packet %d: seq %d ts %d ssrc %#x, want seq %d ts %d ssrc %#x", i, seq, ts, ssrc, p.wantSeq, p.wantTS, first)
				}
			}
		})
	}
}
