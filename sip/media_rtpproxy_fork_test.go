package sip

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/imcall/b2bua/rtpproxy"
)

// The pair adapter under a forked session: the caller's offer goes to two
// branches, the one that answers takes the relay's far side, and releasing
// the branch that lost leaves the call's media alone.
func TestRTPProxyAnchorForkedLegs(t *testing.T) {
	p, err := rtpproxy.New(rtpproxy.Config{
		BindAddr:      netip.MustParseAddr("127.0.0.1"),
		AdvertiseAddr: netip.MustParseAddr("203.0.113.10"),
		PortMin:       36700, PortMax: 36799, Drain: 10 * time.Millisecond, Workers: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ms, err := RTPProxy{Proxy: p}.NewSession(context.Background(), "call-fork")
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	sdp := func(ip, port string) []byte {
		return []byte("v=0\r\no=- 1 1 IN IP4 " + ip + "\r\ns=-\r\nc=IN IP4 " + ip + "\r\nt=0 0\r\nm=audio " + port +
			" RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
	}
	ctx := context.Background()
	for _, to := range []LegID{"uac-1", "uac-2"} {
		out, err := ms.Offer(ctx, "uas-1", to, sdp("192.0.2.1", "4000"))
		if err != nil || !strings.Contains(string(out), "c=IN IP4 203.0.113.10") {
			t.Fatalf("offer to %s: %v\n%s", to, err, out)
		}
	}
	out, err := ms.Answer(ctx, "uac-2", "uas-1", sdp("198.51.100.8", "5002"))
	if err != nil || !strings.Contains(string(out), "c=IN IP4 203.0.113.10") {
		t.Fatalf("answer: %v\n%s", err, out)
	}
	ms.Release("uac-1")
	st := ms.(MediaStatser).MediaStats().([]rtpproxy.LegStats)
	if len(st) != 2 || st[0].Remote != "192.0.2.1:4000" || st[1].Remote != "198.51.100.8:5002" {
		t.Fatalf("stats %+v, want the caller and the branch that answered", st)
	}
}
