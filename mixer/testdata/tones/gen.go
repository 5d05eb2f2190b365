//go:build ignore

// gen writes the conference test tones: one pcap per tone and G.711 law, each
// a 20 ms RTP stream (Ethernet/IPv4/UDP, libpcap format) that SIPp's
// play_pcap_audio can play. The output is the same byte for byte on every run.
//
//	go generate ./mixer   (runs: go run ./testdata/tones/gen.go -out testdata/tones)
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"path/filepath"

	"github.com/imcall/b2bua/mixer"
)

// The conference test's tones: whole cycles per 20 ms frame, inside the
// telephone band, none a harmonic of another.
var tones = []float64{300, 500, 700, 1100, 1300}

func main() {
	out := flag.String("out", ".", "directory to write the pcaps into")
	secs := flag.Int("seconds", 3, "length of each tone")
	level := flag.Float64("level", -16, "tone level in dBov")
	flag.Parse()
	amp := 32767 * math.Pow(10, *level/20)
	for i, f := range tones {
		for _, law := range []mixer.Law{mixer.PCMU, mixer.PCMA} {
			name := filepath.Join(*out, fmt.Sprintf("tone-%.0fhz-%s.pcap", f, map[mixer.Law]string{mixer.PCMU: "pcmu", mixer.PCMA: "pcma"}[law]))
			b := pcap(law, f, amp, *secs*50, uint32(0x7E570000+i))
			if err := os.WriteFile(name, b, 0o644); err != nil {
				log.Fatal(err)
			}
		}
	}
}

func pcap(law mixer.Law, freq, amp float64, frames int, ssrc uint32) []byte {
	pt := byte(0)
	if law == mixer.PCMA {
		pt = 8
	}
	// libpcap global header: magic, version 2.4, snaplen 65535, link type 1 (Ethernet).
	b := binary.LittleEndian.AppendUint32(nil, 0xA1B2C3D4)
	b = binary.LittleEndian.AppendUint16(b, 2)
	b = binary.LittleEndian.AppendUint16(b, 4)
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint32(b, 65535)
	b = binary.LittleEndian.AppendUint32(b, 1)

	const start = 1767225600 // 2026-01-01T00:00:00Z: a fixed epoch keeps the files reproducible
	var pcm [mixer.FrameSamples]int16
	for k := range frames {
		for i := range pcm {
			n := k*mixer.FrameSamples + i
			pcm[i] = int16(math.Round(amp * math.Sin(2*math.Pi*freq*float64(n)/8000)))
		}
		rtp := make([]byte, 12+mixer.FrameSamples)
		rtp[0] = 0x80
		rtp[1] = pt
		if k == 0 {
			rtp[1] |= 0x80 // marker on the first packet of a talkspurt (RFC 3551 §4.1)
		}
		binary.BigEndian.PutUint16(rtp[2:], uint16(k))
		binary.BigEndian.PutUint32(rtp[4:], uint32(k*mixer.FrameSamples))
		binary.BigEndian.PutUint32(rtp[8:], ssrc)
		if law == mixer.PCMA {
			mixer.EncodeAlaw(rtp[12:], pcm[:])
		} else {
			mixer.EncodeUlaw(rtp[12:], pcm[:])
		}
		frame := ethernetIPv4UDP(rtp)
		usec := k * 20000
		b = binary.LittleEndian.AppendUint32(b, uint32(start+usec/1000000))
		b = binary.LittleEndian.AppendUint32(b, uint32(usec%1000000))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(frame)))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(frame)))
		b = append(b, frame...)
	}
	return b
}

// ethernetIPv4UDP wraps payload from 192.0.2.1:6000 to 192.0.2.2:6000
// (RFC 5737 documentation addresses); SIPp replaces both when it plays.
func ethernetIPv4UDP(payload []byte) []byte {
	f := []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00}
	ip := make([]byte, 20)
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+len(payload)))
	ip[8] = 64
	ip[9] = 17
	copy(ip[12:], []byte{192, 0, 2, 1})
	copy(ip[16:], []byte{192, 0, 2, 2})
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xFFFF {
		sum = sum&0xFFFF + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	udp := make([]byte, 8)
	binary.BigEndian.PutUint16(udp[0:], 6000)
	binary.BigEndian.PutUint16(udp[2:], 6000)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(payload))) // checksum 0: none (RFC 768)
	f = append(append(append(f, ip...), udp...), payload...)
	return f
}
