package sip

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/imcall/b2bua/rtpproxy"
)

// The adapter under a forked session: the caller's offer goes to two
// branches, each on ports of its own; the one that answers is connected to
// the caller, and releasing the branch that lost frees only its endpoint.
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
	byLeg := map[rtpproxy.Leg]rtpproxy.LegStats{}
	for _, l := range st {
		byLeg[l.Leg] = l
	}
	caller, won, lost := byLeg["uas-1"], byLeg["uac-2"], byLeg["uac-1"]
	if len(st) != 3 || caller.Remote != "192.0.2.1:4000" || won.Remote != "198.51.100.8:5002" || won.Removed || !lost.Removed {
		t.Fatalf("stats %+v, want the caller, the branch that answered, and the released branch", st)
	}
	if won.LocalPort == lost.LocalPort || won.LocalPort == caller.LocalPort {
		t.Fatalf("branches share ports: %+v", st)
	}
}
