package sip_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/internal/testenv"
	"github.com/imcall/b2bua/rtpproxy"
	"github.com/imcall/b2bua/scp"
	b2b "github.com/imcall/b2bua/sip"
)

// sippRTPCaller is a SIPp UAC that calls bob, plays G.711 audio from a pcap
// to the address in the 200's SDP, and hangs up.
const sippRTPCaller = `<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="uac with RTP">
  <send retrans="500"><![CDATA[
INVITE sip:bob@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:alice@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:bob@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:alice@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=- 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rrs="true"/>
  <send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:alice@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:bob@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
  <nop><action><exec play_pcap_audio="%s"/></action></nop>
  <pause milliseconds="3000"/>
  <send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:alice@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:bob@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>
</scenario>
`

// TestSIPpCallWithRTPThroughProxy: a SIPp caller plays G.711 audio through
// the B2BUA anchored on the rtpproxy; the terminal's media socket must get
// the packets, from the proxy's port, not from SIPp's.
func TestSIPpCallWithRTPThroughProxy(t *testing.T) {
	sipp := testenv.NeedTool(t, "sipp")
	pcap := "/usr/share/sip-tester/g711a.pcap"
	testenv.NeedFile(t, pcap, "SIPp's audio file (apt-get install sip-tester)")
	proxy, err := rtpproxy.New(rtpproxy.Config{
		BindAddr: netip.MustParseAddr("127.0.0.1"), PortMin: 36200, PortMax: 36299,
		Drain: 10 * time.Millisecond, Workers: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	e := newEnv(t, func(c *b2bConfig) { c.Media = b2b.RTPProxy{Proxy: proxy} })
	term := newPeer(t, "term")
	e.addUser("bob")
	e.addLegacy("bob", "001010000000002", term.addr, scp.Online)

	sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	sinkPort := sink.LocalAddr().(*net.UDPAddr).Port
	var offer atomic.Value
	term.setInvite(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		offer.Store(string(req.Body()))
		dlg, err := term.ds.ReadInvite(req, tx)
		if err != nil {
			return
		}
		sdp := fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
			"m=audio %d RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n", sinkPort)
		_ = dlg.RespondSDP([]byte(sdp))
	})

	type arrival struct {
		from netip.AddrPort
		pt   byte
	}
	got := make(chan arrival, 1024)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := sink.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if n >= 12 {
				got <- arrival{from, buf[1] & 0x7f}
			}
		}
	}()

	dir := t.TempDir()
	scen := filepath.Join(dir, "uac.xml")
	if err := os.WriteFile(scen, []byte(fmt.Sprintf(sippRTPCaller, pcap)), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mp := freeMediaPorts(t)
	cmd := exec.CommandContext(ctx, sipp, "-sf", scen, "-m", "1", "-i", "127.0.0.1", "-p", "0",
		"-mp", strconv.Itoa(mp), "-timeout", "20s", "-timeout_error", "-nostdin", "-trace_err",
		"-error_file", filepath.Join(dir, "err.log"), e.addr)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		errs, _ := os.ReadFile(filepath.Join(dir, "err.log"))
		t.Fatalf("sipp: %v\n%s\n%s", err, lastLines(string(out), 20), errs)
	}
	if o, _ := offer.Load().(string); !strings.Contains(o, "c=IN IP4 127.0.0.1") || strings.Contains(o, fmt.Sprintf(" %d ", mp)) {
		t.Errorf("offer to the terminal not anchored:\n%s", o)
	}
	var n int
	deadline := time.After(2 * time.Second)
	for n < 100 {
		select {
		case a := <-got:
			if p := int(a.from.Port()); p < 36200 || p > 36299 {
				t.Fatalf("RTP from %v, not from the proxy", a.from)
			}
			if a.pt != 8 {
				t.Fatalf("payload type %d, want 8 (PCMA)", a.pt)
			}
			n++
		case <-deadline:
			t.Fatalf("terminal got %d RTP packets through the proxy, want at least 100", n)
		}
	}
}

func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

// freeMediaPorts finds an even UDP port p with p..p+3 free on loopback, for
// SIPp's -mp (audio and video RTP/RTCP): a fixed number collides with other
// test packages running at the same time.
func freeMediaPorts(t *testing.T) int {
	t.Helper()
	for try := 0; try < 50; try++ {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		base := c.LocalAddr().(*net.UDPAddr).Port &^ 1
		c.Close()
		if base+3 > 65535 {
			continue
		}
		ok := true
		var held []*net.UDPConn
		for p := base; p < base+4; p++ {
			h, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
			if err != nil {
				ok = false
				break
			}
			held = append(held, h)
		}
		for _, h := range held {
			h.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no four free UDP ports for SIPp media")
	return 0
}
