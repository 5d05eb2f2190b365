package siptrace

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imcall/b2bua/internal/testenv"
	"github.com/imcall/b2bua/sip"
)

var t0 = time.Date(2030, 1, 2, 15, 0, 0, 123456000, time.UTC)

// callMessages is one call's SIP as the server would trace it: UDP from
// the caller, TCP to the terminal (two messages on one connection each
// way), and an IPv6 OPTIONS, read from testdata/call.sip (messages
// separated by a line "---").
func callMessages(t *testing.T) []sip.WireMessage {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "call.sip"))
	if err != nil {
		t.Fatal(err)
	}
	var msgs []sip.WireMessage
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	for i, part := range strings.Split(string(b), "\n---\n") {
		// The header line says how it went: "> udp 127.0.0.1:5060 127.0.0.1:5070"
		// is sent from local to remote, "<" received.
		head, body, _ := strings.Cut(part, "\n")
		f := strings.Fields(head)
		m := sip.WireMessage{Time: t0.Add(time.Duration(i) * 10 * time.Millisecond), Out: f[0] == ">", Transport: f[1],
			Local: netip.MustParseAddrPort(f[2]), Remote: netip.MustParseAddrPort(f[3])}
		m.Data = []byte(strings.ReplaceAll(strings.TrimSpace(body), "\n", "\r\n") + "\r\n\r\n")
		msgs = append(msgs, m)
	}
	return msgs
}

func writePcap(t *testing.T, msgs []sip.WireMessage) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sip.pcap")
	p, err := CreatePcap(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		p.TraceSIP(m)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// tshark runs tshark over file with checksum validation on, and gives
// one line per frame of the fields asked.
func tshark(t *testing.T, file string, extra []string, fields ...string) []string {
	t.Helper()
	bin := testenv.NeedTool(t, "tshark")
	args := []string{"-r", file, "-n", "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
		"-T", "fields", "-E", "separator=|"}
	args = append(args, extra...)
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, stderr.Bytes())
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// TestPcapDecodesAsSIP: Wireshark's dissectors read every frame of the
// file as SIP, with the addresses and ports of its direction, valid IP,
// UDP and TCP checksums, and no malformed or warning-level expert note.
func TestPcapDecodesAsSIP(t *testing.T) {
	msgs := callMessages(t)
	file := writePcap(t, msgs)
	if os.Getenv("SIPTRACE_KEEP") != "" {
		b, _ := os.ReadFile(file)
		os.WriteFile(os.Getenv("SIPTRACE_KEEP"), b, 0o644)
	}
	lines := tshark(t, file, []string{"-d", "tcp.port==5080,sip", "-d", "udp.port==5070,sip", "-d", "udp.port==5090,sip"},
		"frame.protocols", "sip.Method", "sip.Status-Code", "ip.src", "ipv6.src", "udp.srcport", "tcp.srcport", "_ws.malformed", "_ws.expert.severity")
	if len(lines) != len(msgs) {
		t.Fatalf("%d frames decoded, want %d:\n%s", len(lines), len(msgs), strings.Join(lines, "\n"))
	}
	for i, l := range lines {
		f := strings.Split(l, "|")
		m := msgs[i]
		src, _ := endpoints(m)
		first, _, _ := strings.Cut(string(m.Data), " ")
		wantProto := ":" + map[string]string{"udp": "udp", "tcp": "tcp"}[m.Transport] + ":sip"
		switch {
		case !strings.Contains(f[0], wantProto):
			t.Errorf("frame %d protocols %q, want %s", i+1, f[0], wantProto)
		case f[1] != first && f[2] != strings.Fields(string(m.Data))[1]:
			t.Errorf("frame %d: method %q status %q, want %q", i+1, f[1], f[2], first)
		case f[3]+f[4] != src.Addr().String():
			t.Errorf("frame %d from %q, want %s", i+1, f[3]+f[4], src.Addr())
		case f[5]+f[6] != portOf(src):
			t.Errorf("frame %d from port %q, want %d", i+1, f[5]+f[6], src.Port())
		case f[7] != "":
			t.Errorf("frame %d is malformed: %s", i+1, l)
		}
		// Severity: 2097152 note, 4194304 warn, 8388608 error.
		for _, s := range strings.Split(f[8], ",") {
			if s == "4194304" || s == "8388608" {
				t.Errorf("frame %d has an expert warning or error: %s", i+1, l)
			}
		}
	}
}

func portOf(a netip.AddrPort) string { return strconv.Itoa(int(a.Port())) }

// TestSngrepReadsPcap: sngrep reads the file and finds the call's
// dialogs: it writes back every SIP packet it parsed (-O), as many as
// were traced.
func TestSngrepReadsPcap(t *testing.T) {
	bin := testenv.NeedTool(t, "sngrep")
	msgs := callMessages(t)
	file := writePcap(t, msgs)
	out := filepath.Join(t.TempDir(), "sngrep.pcap")
	res, err := exec.Command(bin, "-I", file, "-N", "-q", "-O", out).CombinedOutput()
	if err != nil {
		t.Fatalf("sngrep: %v\n%s", err, res)
	}
	lines := tshark(t, out, []string{"-d", "tcp.port==5080,sip", "-d", "udp.port==5070,sip", "-d", "udp.port==5090,sip"}, "sip.Call-ID")
	ids := map[string]int{}
	for _, l := range lines {
		if l != "" {
			ids[l]++
		}
	}
	want := map[string]int{}
	for _, m := range msgs {
		for _, l := range strings.Split(string(m.Data), "\r\n") {
			if v, ok := strings.CutPrefix(l, "Call-ID: "); ok {
				want[v]++
			}
		}
	}
	if len(lines) != len(msgs) || len(ids) != len(want) {
		t.Errorf("sngrep kept %d SIP packets in %d dialogs %v, want %d in %d %v\n%s", len(lines), len(ids), ids, len(msgs), len(want), want, res)
	}
}

// TestHEPDecodesAsSIP: sngrep, a HEP v3 collector of its own (-E: EEP/HEP
// parsing), reads our HEP packets (sent to a collector's port 9060 here)
// back into the SIP messages they carry, with the addresses and ports of
// each message; tshark then decodes those as SIP with nothing malformed.
// (tshark 4.0 has no HEP dissector built in: Wireshark's is sipcapture's
// hep.lua plugin, packaged nowhere.)
func TestHEPDecodesAsSIP(t *testing.T) {
	bin := testenv.NeedTool(t, "sngrep")
	msgs := callMessages(t)
	collector := netip.MustParseAddrPort("127.0.0.9:9060")
	var frames []sip.WireMessage
	for _, m := range msgs {
		frames = append(frames, sip.WireMessage{Time: m.Time, Out: true, Transport: "udp",
			Local: netip.MustParseAddrPort("127.0.0.1:40000"), Remote: collector, Data: AppendHEP(nil, m, 2001)})
	}
	file := writePcap(t, frames)
	out := filepath.Join(t.TempDir(), "sngrep.pcap")
	res, err := exec.Command(bin, "-I", file, "-E", "-N", "-q", "-O", out).CombinedOutput()
	if err != nil {
		t.Fatalf("sngrep: %v\n%s", err, res)
	}
	lines := tshark(t, out, []string{"-d", "tcp.port==5080,sip", "-d", "udp.port==5070,sip", "-d", "udp.port==5090,sip"},
		"sip.Call-ID", "ip.src", "ipv6.src", "udp.srcport", "tcp.srcport", "_ws.malformed")
	// sngrep 1.6 writes each packet it took from HEP twice to its -O
	// file, and an IPv6 one as an IPv4 frame from 0.0.0.0: read each pair
	// once, and the address of IPv4 messages only.
	var got []string
	for i, l := range lines {
		if i%2 == 1 && l == lines[i-1] {
			continue
		}
		got = append(got, l)
	}
	if len(got) != len(msgs) {
		t.Fatalf("sngrep decoded %d SIP messages from our HEP, want %d:\n%s\n%s", len(got), len(msgs), strings.Join(lines, "\n"), res)
	}
	for i, l := range got {
		f := strings.Split(l, "|")
		src, _ := endpoints(msgs[i])
		wantCallID := ""
		for _, h := range strings.Split(string(msgs[i].Data), "\r\n") {
			if v, ok := strings.CutPrefix(h, "Call-ID: "); ok {
				wantCallID = v
			}
		}
		if f[0] != wantCallID || (src.Addr().Is4() && f[1]+f[2] != src.Addr().String()) || f[3]+f[4] != portOf(src) || f[5] != "" {
			t.Errorf("message %d decoded as %q, want SIP of %s from %s", i+1, l, wantCallID, src)
		}
	}
}

// TestAppendHEPLayout pins the HEP3 framing tshark reads: the header and
// total length, and each chunk's vendor, type and length.
func TestAppendHEPLayout(t *testing.T) {
	m := sip.WireMessage{Time: t0, Out: true, Transport: "tcp", Local: netip.MustParseAddrPort("192.0.2.1:5060"),
		Remote: netip.MustParseAddrPort("[2001:db8::1]:5061"), Data: []byte("OPTIONS sip:x SIP/2.0\r\n\r\n")}
	b := AppendHEP([]byte("junk"), m, 7)[4:]
	if string(b[:4]) != "HEP3" || int(binary.BigEndian.Uint16(b[4:])) != len(b) {
		t.Fatalf("header %q length %d of %d", b[:4], binary.BigEndian.Uint16(b[4:]), len(b))
	}
	got := map[uint16][]byte{}
	for p := b[6:]; len(p) > 0; {
		vendor, typ, n := binary.BigEndian.Uint16(p), binary.BigEndian.Uint16(p[2:]), int(binary.BigEndian.Uint16(p[4:]))
		if vendor != 0 || n < 6 || n > len(p) {
			t.Fatalf("chunk vendor %d type %d length %d of %d left", vendor, typ, n, len(p))
		}
		got[typ] = p[6:n]
		p = p[n:]
	}
	// A mixed pair is sent as IPv6, the IPv4 end mapped.
	if got[hepFamily][0] != 10 || got[hepProto][0] != 6 || len(got[hepSrcIP6]) != 16 ||
		binary.BigEndian.Uint32(got[hepCaptureID]) != 7 || string(got[hepPayload]) != string(m.Data) ||
		binary.BigEndian.Uint32(got[hepTimeUsec]) != 123456 {
		t.Errorf("chunks %v", got)
	}
}
