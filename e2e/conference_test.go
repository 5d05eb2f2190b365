package e2e

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imcall/b2bua/internal/testenv"
	"github.com/imcall/b2bua/mixer"
)

// confParty is one of the five: a SIPp dialing in or dialed out, playing
// its tone pcap from mixer/testdata/tones.
type confParty struct {
	name string
	freq float64
	law  mixer.Law
	out  bool // dialed out (a SIPp UAS) rather than dialing in
	sipp *sipp
}

func (p *confParty) pcap() string {
	law := map[mixer.Law]string{mixer.PCMU: "pcmu", mixer.PCMA: "pcma"}[p.law]
	path, _ := filepath.Abs(filepath.Join("..", "mixer", "testdata", "tones", fmt.Sprintf("tone-%.0fhz-%s.pcap", p.freq, law)))
	return path
}

func (p *confParty) keys() []string {
	if p.law == mixer.PCMA {
		return []string{"-key", "pt", "8", "-key", "codec", "PCMA"}
	}
	return []string{"-key", "pt", "0", "-key", "codec", "PCMU"}
}

// confSnapshot is what `b2bua conference show --output json` gives.
type confSnapshot struct {
	ID           string `json:"id"`
	URI          string `json:"uri"`
	Participants []struct {
		ID     string `json:"id"`
		Target string `json:"target"`
		Status string `json:"status"`
		Joined string `json:"joining_method"`
		Muted  bool   `json:"muted"`
	} `json:"participants"`
}

// TestConference5Parties: a five-party conference on the real binary,
// each party a SIPp playing its own tone: three dial in to the conference
// URI (authenticated), two are dialed out by `b2bua conference add`, one
// an IM user located by the SCP, one a number behind --conference-trunk.
// A capture of what reaches each party's media port, decoded and checked
// by Goertzel filter, holds the other four tones and not its own; after
// `conference mute` one party's tone is gone from the others' audio.
// `conference end` sends each a BYE with Reason cause 16, which each
// scenario checks.
func TestConference5Parties(t *testing.T) {
	t.Parallel()
	dumpcap := testenv.NeedTool(t, "dumpcap")
	parties := []*confParty{
		{name: "ann", freq: 300, law: mixer.PCMU},
		{name: "ben", freq: 500, law: mixer.PCMA},
		{name: "cat", freq: 700, law: mixer.PCMU},
		{name: "dora", freq: 1100, law: mixer.PCMA, out: true},
		{name: "+15551230001", freq: 1300, law: mixer.PCMU, out: true},
	}
	n := newNode(t)
	for _, p := range parties[:3] {
		n.addUser(p.name, p.name+"-pw")
	}
	n.addUser("dora", "dora-pw")
	n.addTerminal("dora", bobIMSI, "legacy", true)
	// The dialed-out parties listen where the SCP and the trunk flag say,
	// so their ports are fixed before serve starts.
	dora, trunk := parties[3], parties[4]
	for _, p := range []*confParty{dora, trunk} {
		p.sipp = startSipp(t, sippRun{name: "conf-" + p.name, scenario: "conf_dialout.xml", media: true,
			files: map[string]string{"tone.pcap": p.pcap()}, args: p.keys()})
	}
	n.serve(serveOpts{subscribers: []subscriber{online(bobIMSI, dora.sipp.port)},
		extra: []string{"--conference-trunk", "127.0.0.1:" + strconv.Itoa(trunk.sipp.port)}})
	conf := func(args ...string) string {
		t.Helper()
		return n.cli("", append([]string{"conference", "--api", n.httpAddr}, args...)...)
	}
	var c confSnapshot
	if err := json.Unmarshal([]byte(conf("create", "--owner", "alice", "--output", "json")), &c); err != nil {
		t.Fatal(err)
	}
	for _, p := range parties[:3] {
		p.sipp = startSipp(t, sippRun{name: "conf-" + p.name, scenario: "conf_dialin.xml", media: true,
			files: map[string]string{"tone.pcap": p.pcap()},
			args: append(p.keys(), "-s", "conf-"+c.ID, "-key", "caller", p.name, "-key", "domain", domain,
				"-au", p.name, "-ap", p.name+"-pw", n.sipAddr)})
	}
	capFile := filepath.Join(t.TempDir(), "conference.pcap")
	var ports []string
	for _, p := range parties {
		ports = append(ports, "dst port "+strconv.Itoa(p.sipp.mediaPort))
	}
	dc := exec.Command(dumpcap, "-q", "-i", "lo", "-P", "-w", capFile, "-f", "udp and ("+strings.Join(ports, " or ")+")")
	dcOut, _ := os.Create(capFile + ".log")
	dc.Stdout, dc.Stderr = dcOut, dcOut
	if err := dc.Start(); err != nil {
		t.Fatal(err)
	}
	dcDone := make(chan struct{})
	go func() { _ = dc.Wait(); close(dcDone) }()
	t.Cleanup(func() {
		_ = dc.Process.Signal(syscall.SIGTERM)
		<-dcDone
	})
	waitFor(t, 5*time.Second, "dumpcap capturing", func() bool {
		st, err := os.Stat(capFile)
		return err == nil && st.Size() >= 24
	})
	for _, p := range []*confParty{dora, trunk} {
		conf("add", c.ID, p.name)
	}

	// Everyone connected: the dial status that the API, the page and the
	// NOTIFYs show, from `conference show`.
	pid := map[string]string{}
	waitFor(t, 10*time.Second, "five connected participants", func() bool {
		var s confSnapshot
		if err := json.Unmarshal([]byte(conf("show", c.ID, "--output", "json")), &s); err != nil {
			t.Fatal(err)
		}
		up := 0
		for _, sp := range s.Participants {
			pid[sp.Target] = sp.ID
			if sp.Status == "connected" {
				up++
			}
			if want := map[bool]string{true: "dialed-out", false: "dialed-in"}[sp.Target == "dora" || strings.HasPrefix(sp.Target, "+")]; sp.Joined != want {
				t.Errorf("%s joined %s, want %s", sp.Target, sp.Joined, want)
			}
		}
		return up == len(parties)
	})
	allUp := time.Now()
	time.Sleep(3 * time.Second) // the mix as it sounds, in real time
	muted := parties[1]
	conf("mute", c.ID, pid[muted.name])
	mutedAt := time.Now()
	time.Sleep(3 * time.Second)
	conf("end", c.ID)
	for _, p := range parties {
		p.sipp.wait()
	}
	_ = dc.Process.Signal(syscall.SIGTERM)
	<-dcDone
	heard := readRTPCapture(t, capFile)

	for _, p := range parties {
		before := heard.window(p, allUp.Add(time.Second), mutedAt)
		after := heard.window(p, mutedAt.Add(500*time.Millisecond), mutedAt.Add(2500*time.Millisecond))
		if len(before) < 8000 || len(after) < 8000 {
			t.Fatalf("%s: %d and %d samples captured, want a second or more of each window", p.name, len(before), len(after))
		}
		for _, o := range parties {
			a, b := goertzel(before, o.freq), goertzel(after, o.freq)
			t.Logf("%s hears %s (%v Hz) at %.0f, then %.0f", p.name, o.name, o.freq, a, b)
			switch {
			case o == p:
				if a > 300 || b > 300 {
					t.Errorf("%s hears itself (%.0f, %.0f)", p.name, a, b)
				}
			case o == muted:
				if a < 1500 {
					t.Errorf("%s does not hear %s before the mute (%.0f)", p.name, o.name, a)
				}
				if b > 300 {
					t.Errorf("%s still hears muted %s (%.0f)", p.name, o.name, b)
				}
			default:
				if a < 1500 || b < 1500 {
					t.Errorf("%s does not hear %s (%.0f, %.0f)", p.name, o.name, a, b)
				}
			}
		}
	}
}

func waitFor(t *testing.T, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// rtpCapture is the G.711 that reached each media port, by arrival time.
type rtpCapture map[int][]rtpFrame

type rtpFrame struct {
	at  time.Time
	pcm []int16
}

// window is what p received from..to, decoded, in arrival order.
func (c rtpCapture) window(p *confParty, from, to time.Time) []int16 {
	var out []int16
	for _, f := range c[p.sipp.mediaPort] {
		if !f.at.Before(from) && f.at.Before(to) {
			out = append(out, f.pcm...)
		}
	}
	return out
}

// readRTPCapture decodes a libpcap file of loopback (Ethernet) frames
// holding IPv4/UDP RTP with payload types 0 and 8.
func readRTPCapture(t *testing.T, name string) rtpCapture {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 24 || binary.LittleEndian.Uint32(b) != 0xA1B2C3D4 {
		t.Fatalf("%s: not a little-endian microsecond pcap", name)
	}
	var link int
	switch lt := binary.LittleEndian.Uint32(b[20:]); lt {
	case 1: // Ethernet, as Linux's lo reports itself
		link = 14
	case 113: // Linux cooked
		link = 16
	default:
		t.Fatalf("%s: link type %d", name, lt)
	}
	c := rtpCapture{}
	for off := 24; off+16 <= len(b); {
		at := time.Unix(int64(binary.LittleEndian.Uint32(b[off:])), int64(binary.LittleEndian.Uint32(b[off+4:]))*1000)
		n := int(binary.LittleEndian.Uint32(b[off+8:]))
		if off+16+n > len(b) {
			break // the last record, cut off by the stop
		}
		frame := b[off+16 : off+16+n]
		off += 16 + n
		if len(frame) < link+28 || frame[link]>>4 != 4 || frame[link+9] != 17 {
			continue
		}
		ihl := int(frame[link]&0x0F) * 4
		udp := frame[link+ihl:]
		port := int(binary.BigEndian.Uint16(udp[2:]))
		rtp := udp[8:]
		if len(rtp) < 12+160 || rtp[0]>>6 != 2 {
			continue
		}
		hdr := 12 + 4*int(rtp[0]&0x0F)
		pcm := make([]int16, len(rtp)-hdr)
		switch rtp[1] & 0x7F {
		case 0:
			mixer.DecodeUlaw(pcm, rtp[hdr:])
		case 8:
			mixer.DecodeAlaw(pcm, rtp[hdr:])
		default:
			continue
		}
		c[port] = append(c[port], rtpFrame{at: at, pcm: pcm})
	}
	return c
}

func goertzel(x []int16, freq float64) float64 {
	w := 2 * math.Pi * freq / 8000
	k := 2 * math.Cos(w)
	var s1, s2 float64
	for _, v := range x {
		s0 := float64(v) + k*s1 - s2
		s2, s1 = s1, s0
	}
	return 2 * math.Sqrt(s1*s1+s2*s2-k*s1*s2) / float64(len(x))
}
