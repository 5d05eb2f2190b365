package mixer

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// readPcap returns the UDP payloads of a libpcap file of Ethernet/IPv4/UDP
// frames, with their capture times in microseconds.
func readPcap(t *testing.T, name string) (payloads [][]byte, usec []int64) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 24 || binary.LittleEndian.Uint32(b) != 0xA1B2C3D4 || binary.LittleEndian.Uint32(b[20:]) != 1 {
		t.Fatalf("%s: not a little-endian Ethernet pcap", name)
	}
	for off := 24; off < len(b); {
		if off+16 > len(b) {
			t.Fatalf("%s: truncated record header at %d", name, off)
		}
		ts := int64(binary.LittleEndian.Uint32(b[off:]))*1e6 + int64(binary.LittleEndian.Uint32(b[off+4:]))
		n := int(binary.LittleEndian.Uint32(b[off+8:]))
		frame := b[off+16 : off+16+n]
		off += 16 + n
		if binary.BigEndian.Uint16(frame[12:]) != 0x0800 || frame[14+9] != 17 {
			t.Fatalf("%s: frame is not IPv4/UDP", name)
		}
		ihl := int(frame[14]&0x0F) * 4
		udp := frame[14+ihl:]
		if int(binary.BigEndian.Uint16(udp[4:])) != len(udp) {
			t.Fatalf("%s: UDP length %d, frame holds %d", name, binary.BigEndian.Uint16(udp[4:]), len(udp))
		}
		payloads = append(payloads, udp[8:])
		usec = append(usec, ts)
	}
	return payloads, usec
}

func tonePcap(freq float64, law Law) string {
	return filepath.Join("testdata", "tones", fmt.Sprintf("tone-%.0fhz-%s.pcap", freq, map[Law]string{PCMU: "pcmu", PCMA: "pcma"}[law]))
}

// The committed pcaps are what SIPp will play in the end-to-end conference
// test: each must be a clean 20 ms G.711 stream of its one tone.
func TestTonePcaps(t *testing.T) {
	for _, f := range []float64{300, 500, 700, 1100, 1300} {
		for _, law := range []Law{PCMU, PCMA} {
			name := tonePcap(f, law)
			t.Run(filepath.Base(name), func(t *testing.T) {
				pkts, usec := readPcap(t, name)
				if len(pkts) < 100 || len(pkts) > 250 {
					t.Fatalf("%d packets, want 2-5 s of 20 ms frames", len(pkts))
				}
				var x []int16
				for i, p := range pkts {
					r, ok := parseRTP(p)
					if !ok || r.pt != law.payloadType() || len(r.payload) != FrameSamples {
						t.Fatalf("packet %d: not a %v frame: %x", i, law, p[:12])
					}
					if i > 0 {
						prev, _ := parseRTP(pkts[i-1])
						if r.seq != prev.seq+1 || rtpTS(p) != rtpTS(pkts[i-1])+FrameSamples || r.ssrc != prev.ssrc || usec[i]-usec[i-1] != 20000 {
							t.Fatalf("packet %d: seq %d ts %d at %d µs after seq %d ts %d at %d µs", i, r.seq, rtpTS(p), usec[i], prev.seq, rtpTS(pkts[i-1]), usec[i-1])
						}
					}
					pcm := make([]int16, FrameSamples)
					law.decode(pcm, r.payload)
					x = append(x, pcm...)
				}
				want := 32767 * math.Pow(10, -16.0/20)
				if a := amplitude(x, f); math.Abs(a-want) > 0.05*want {
					t.Errorf("amplitude at %v Hz %.0f, want %.0f (-16 dBov)", f, a, want)
				}
				for _, g := range []float64{300, 500, 700, 1100, 1300} {
					if g != f && amplitude(x, g) > 0.01*want {
						t.Errorf("%v Hz present (%.0f) in the %v Hz tone", g, amplitude(x, g), f)
					}
				}
			})
		}
	}
}

// Five participants playing the committed pcaps, as SIPp will: each hears the
// other four tones and not its own.
func TestConferenceFromTonePcaps(t *testing.T) {
	r := newRig(t, Config{})
	type party struct {
		id   string
		law  Law
		freq float64
		pkts [][]byte
		out  *capture
	}
	var ps []*party
	for _, mb := range fiveTones {
		pkts, _ := readPcap(t, tonePcap(mb.freq, mb.law))
		p := &party{id: mb.id, law: mb.law, freq: mb.freq, pkts: pkts, out: &capture{}}
		ps = append(ps, p)
		if err := r.m.Add(p.id, Participant{Law: p.law, Output: p.out}); err != nil {
			t.Fatal(err)
		}
	}
	const n = 100
	for k := range n {
		for _, p := range ps {
			if err := r.m.WriteRTP(p.id, p.pkts[k]); err != nil {
				t.Fatal(err)
			}
		}
		r.tickOnce()
	}
	r.stop()
	level := 32767 * math.Pow(10, -16.0/20)
	for _, p := range ps {
		x := p.out.pcm(t, p.law, 10, n)
		for _, q := range ps {
			a := amplitude(x, q.freq)
			if q == p && a > 0.05*level {
				t.Errorf("%s hears its own %v Hz: %.0f", p.id, q.freq, a)
			}
			if q != p && a < 0.8*level {
				t.Errorf("%s does not hear %s's %v Hz: %.0f", p.id, q.id, q.freq, a)
			}
		}
	}
}
