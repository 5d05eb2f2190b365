package sip_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/rtpproxy"
	"github.com/imcall/b2bua/scp"
	b2b "github.com/imcall/b2bua/sip"
)

// TestIPv6MediaAnchored: with an IPv6 address for the RTP proxy, a call
// whose parties both offer and answer c=IN IP6 is anchored (not 488): each
// side sees the proxy's advertised IPv6 address and never the other's.
func TestIPv6MediaAnchored(t *testing.T) {
	p, err := rtpproxy.New(rtpproxy.Config{
		BindAddr: netip.MustParseAddr("127.0.0.1"), AdvertiseAddr: netip.MustParseAddr("203.0.113.10"),
		BindV6: netip.MustParseAddr("::1"), AdvertiseV6: netip.MustParseAddr("2001:db8::10"),
		PortMin: 36900, PortMax: 36999, Drain: 10 * time.Millisecond, Workers: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	e := newEnv(t, func(c *b2bConfig) { c.Media = b2b.RTPProxy{Proxy: p} })
	caller, term := newPeer(t, "alice"), newPeer(t, "term")
	e.addUser("bob")
	e.addLegacy("bob", "001010000000001", term.addr, scp.Online)

	calleeSDP := strings.ReplaceAll(ipv6SDP, "40002", "40004")
	offered := make(chan string, 1)
	term.setInvite(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		offered <- string(req.Body())
		dlg, err := term.ds.ReadInvite(req, tx)
		if err == nil {
			_ = dlg.RespondSDP([]byte(calleeSDP))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dlg, err := caller.dc.Invite(ctx, e.uri("bob"), []byte(ipv6SDP), sipmsg.NewHeader("Content-Type", "application/sdp"))
	if err != nil {
		t.Fatal(err)
	}
	if err := dlg.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		t.Fatalf("IPv6 call: %v", err)
	}
	if err := dlg.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	answer := string(dlg.InviteResponse.Body())
	if !strings.Contains(answer, "c=IN IP6 2001:db8::10") || strings.Contains(answer, "IP6 ::1") {
		t.Errorf("the caller's answer does not name the proxy's IPv6 address alone:\n%s", answer)
	}
	offer := <-offered
	if !strings.Contains(offer, "c=IN IP6 2001:db8::10") || strings.Contains(offer, "IP6 ::1") {
		t.Errorf("the terminal's offer does not name the proxy's IPv6 address alone:\n%s", offer)
	}
	if err := dlg.Bye(ctx); err != nil {
		t.Fatalf("caller BYE: %v", err)
	}
	term.waitRequest(sipmsg.BYE, 2*time.Second)
}
