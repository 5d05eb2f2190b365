package daemon

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imcall/b2bua/internal/testenv"
)

// TestTraceHEPAndPcap: with a HEP collector and a pcap file configured, an
// OPTIONS probe and our answer reach the collector as two HEP3 packets
// with our capture ID's chunk and the SIP inside, and the pcap, once the
// daemon has closed it, decodes in tshark as the same two SIP messages.
func TestTraceHEPAndPcap(t *testing.T) {
	tsharkBin := testenv.NeedTool(t, "tshark")
	collector, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer collector.Close()
	pcap := filepath.Join(t.TempDir(), "sip.pcap")
	d, err := Start(context.Background(), Config{
		DBPath: filepath.Join(t.TempDir(), "b2bua.db"), Domain: "127.0.0.1",
		SIPListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", Media: MediaPassthrough,
		HEP: "udp:" + collector.LocalAddr().String(), HEPCaptureID: 4242, SIPPcap: pcap,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if got := optionsStatus(t, d); !strings.HasPrefix(got, "SIP/2.0 200") {
		t.Fatalf("OPTIONS answered %q", got)
	}
	var got []string
	buf := make([]byte, 65536)
	collector.SetReadDeadline(time.Now().Add(3 * time.Second))
	for len(got) < 2 {
		n, _, err := collector.ReadFrom(buf)
		if err != nil {
			t.Fatalf("HEP collector got %v, then %v", got, err)
		}
		p := buf[:n]
		// Capture ID chunk: vendor 0, type 0x000c, length 10, value 4242.
		if !bytes.HasPrefix(p, []byte("HEP3")) || !bytes.Contains(p, []byte{0, 0, 0, 0x0c, 0, 10, 0, 0, 0x10, 0x92}) {
			t.Fatalf("not a HEP3 packet with capture ID 4242: %q", p)
		}
		i := bytes.Index(p, []byte("OPTIONS sip:"))
		if j := bytes.Index(p, []byte("SIP/2.0 200")); j >= 0 && (i < 0 || j < i) {
			i = j
		}
		if i < 0 {
			t.Fatalf("HEP packet without the SIP message: %q", p)
		}
		line, _, _ := strings.Cut(string(p[i:]), "\r\n")
		got = append(got, line)
	}
	if !strings.HasPrefix(got[0], "OPTIONS ") || !strings.HasPrefix(got[1], "SIP/2.0 200") {
		t.Errorf("HEP packets carry %q, want the OPTIONS then its 200", got)
	}
	d.Close() // flushes and closes the pcap
	out, err := exec.Command(tsharkBin, "-r", pcap, "-n", "-d", "udp.port=="+portOfAddr(d.SIPAddr().String())+",sip",
		"-T", "fields", "-E", "separator=|", "-e", "sip.Method", "-e", "sip.Status-Code", "-e", "_ws.malformed").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	if s := strings.TrimSpace(string(out)); s != "OPTIONS||\n|200|" {
		t.Errorf("pcap decodes as %q, want the OPTIONS and its 200", s)
	}
}

func portOfAddr(a string) string { _, p, _ := net.SplitHostPort(a); return p }
