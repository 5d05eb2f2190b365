package mixer

import (
	"fmt"
	"strings"
	"testing"
)

// TestJitter drives the buffer with a script: "pN" pushes sequence number N
// (a frame whose first sample is N), "t" plays one tick. The result lists what
// each tick played ("-" for nothing).
func TestJitter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		delay  uint16
		script string
		want   string
		late   uint64
		lost   uint64
	}{
		{"in order, delay 2", 2, "p10 t p11 t p12 t p13 t p14 t", "- - 10 11 12", 0, 0},
		{"swapped within the delay", 2, "p10 t p12 t p11 t p13 t p14 t t t", "- - 10 11 12 13 14", 0, 0},
		{"missing frame is lost, not waited for", 1, "p10 t p11 t t p13 t p14 t", "- 10 11 - 13", 0, 1},
		{"late frame skipped, never queued", 1, "p10 t t t p11 p12 p13 t p14 t", "- 10 - 12 13", 1, 1},
		{"duplicate played once", 1, "p10 t p10 p11 t p11 t", "- 10 11", 0, 0},
		{"new SSRC restarts playout", 1, "p10 t p11 t s p500 t p501 t t", "- 10 - 500 501", 0, 0},
		{"jump beyond the window resyncs", 1, "p10 t p11 t p100 t p101 t", "- 10 - 100", 0, 0},
		{"late three in a row restarts playout", 1, "p10 t p11 t t t t p12 t p13 t p14 t p15 t", "- 10 11 - - - - - 14", 3, 4},
		{"sequence wraps", 1, "p65534 t p65535 t p0 t p1 t", "- 65534 65535 0", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := jitter{delay: tc.delay}
			ssrc := uint32(1)
			var got []string
			var payload [FrameSamples]byte
			for _, op := range strings.Fields(tc.script) {
				switch {
				case op == "t":
					var f [FrameSamples]int16
					if j.pop(&f) {
						got = append(got, fmt.Sprint(uint16(f[0])))
					} else {
						got = append(got, "-")
					}
				case op == "s":
					ssrc++
				default:
					var seq uint16
					fmt.Sscanf(op, "p%d", &seq)
					// A µ-law payload cannot carry an arbitrary value; decode
					// silence and stamp the sequence number afterwards.
					for i := range payload {
						payload[i] = 0xFF
					}
					j.push(PCMU, ssrc, seq, payload[:])
					if s := &j.slots[seq%jitterSlots]; s.full && s.seq == seq {
						s.pcm[0] = int16(seq)
					}
				}
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("played %q, want %q", strings.Join(got, " "), tc.want)
			}
			if j.late != tc.late || j.lost != tc.lost {
				t.Errorf("late %d lost %d, want %d and %d", j.late, j.lost, tc.late, tc.lost)
			}
		})
	}
}

func TestTalkDetector(t *testing.T) {
	// L is a loud frame, q a quiet one; the result marks each frame's state after it.
	for _, tc := range []struct {
		name            string
		onset, hangover int
		frames          string
		want            string
	}{
		{"onset needs two loud frames", 2, 3, "LqLLLL", "---+++"},
		{"pause shorter than hangover keeps talking", 2, 3, "LLqqLLqq", "-+++++++"},
		{"hangover ends talking", 2, 3, "LLqqqq", "-+++--"},
		{"single click is not speech", 2, 3, "qLqLq", "-----"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := talkDetector{threshold: 100, onset: tc.onset, hangover: tc.hangover}
			var got strings.Builder
			for _, c := range tc.frames {
				e := int64(0)
				if c == 'L' {
					e = 1000
				}
				d.update(e)
				if d.talking {
					got.WriteByte('+')
				} else {
					got.WriteByte('-')
				}
			}
			if got.String() != tc.want {
				t.Errorf("frames %s: states %s, want %s", tc.frames, got.String(), tc.want)
			}
		})
	}
}

func TestParseRTP(t *testing.T) {
	base := []byte{0x80, 0x00, 0x00, 0x07, 0, 0, 0, 160, 0xDE, 0xAD, 0xBE, 0xEF}
	for _, tc := range []struct {
		name    string
		pkt     []byte
		ok      bool
		payload int
	}{
		{"plain", append(append([]byte{}, base...), 1, 2, 3), true, 3},
		{"two CSRCs", append(append([]byte{0x82}, base[1:]...), 0, 0, 0, 1, 0, 0, 0, 2, 9), true, 1},
		{"extension of one word", append(append([]byte{0x90}, base[1:]...), 0xBE, 0xDE, 0, 1, 1, 2, 3, 4, 9, 9), true, 2},
		{"padding", append(append([]byte{0xA0}, base[1:]...), 7, 0, 0, 3), true, 1},
		{"version 1", append([]byte{0x40}, base[1:]...), false, 0},
		{"short", base[:11], false, 0},
		{"CSRC count beyond the packet", append([]byte{0x8F}, base[1:]...), false, 0},
		{"padding beyond the packet", append(append([]byte{0xA0}, base[1:]...), 40), false, 0},
	} {
		p, ok := parseRTP(tc.pkt)
		if ok != tc.ok || (ok && (len(p.payload) != tc.payload || p.seq != 7 || p.ssrc != 0xDEADBEEF)) {
			t.Errorf("%s: ok %v, payload %d, seq %d, ssrc %#x", tc.name, ok, len(p.payload), p.seq, p.ssrc)
		}
	}
}
