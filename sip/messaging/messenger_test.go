package messaging_test

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/scp"
	"github.com/imcall/b2bua/sip"
	"github.com/imcall/b2bua/sip/messaging"
)

// TestRunAbandonsUnansweredNotices: a failed call's IM notice goes to a
// caller who never answers it; Run must end it when its context ends, not
// wait out the notice's 32 s.
func TestRunAbandonsUnansweredNotices(t *testing.T) {
	e := newEnv(t)
	caller, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer caller.Close()
	m, err := messaging.New(messaging.Config{SIP: e.srv, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	ap := netip.MustParseAddrPort(caller.LocalAddr().String())
	uri := sipmsg.Uri{Scheme: "sip", User: "alice", Host: ap.Addr().String(), Port: int(ap.Port())}
	m.CallFailed(sip.FailedCall{Callee: "bob", Caller: uri, Contact: uri, Transport: "UDP", Dest: ap.String(), Laddr: e.srv.LocalAddr("UDP"),
		Failure: &sip.Failure{Status: 486, Cause: sip.CauseUserBusy, Text: "user busy"}})
	buf := make([]byte, 65535)
	caller.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := caller.ReadFrom(buf)
	if err != nil {
		t.Fatalf("no notice: %v", err)
	}
	if !strings.HasPrefix(string(buf[:n]), "MESSAGE ") || !strings.Contains(string(buf[:n]), messaging.NoticeText("bob", &sip.Failure{Status: 486, Cause: sip.CauseUserBusy, Text: "user busy"})) {
		t.Fatalf("caller got %q, want the notice", buf[:n])
	}
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run still waiting for an unanswered notice after 5s")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Run took %v to end", d)
	}
}

// TestMessageRelayedWithoutRules: without Rules a MESSAGE goes to the
// terminal as it came, under the sender's IM address, one hop further.
func TestMessageRelayedWithoutRules(t *testing.T) {
	e := newEnv(t)
	alice := newPeer(t, "alice")
	term := newPeer(t, "bobterm")
	e.addUser("bob")
	e.addLegacy("bob", "001010000000001", term.addr, scp.Online)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := alice.message(ctx, e, "bob", "udp", "image/png", fakePNG(300))
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("MESSAGE: %v %v, want 200", res, err)
	}
	got := term.waitRequest(sipmsg.MESSAGE, 3*time.Second)
	if got.ContentType().Value() != "image/png" || !bytes.Equal(got.Body(), fakePNG(300)) {
		t.Errorf("terminal got %s %d bytes, want the image as sent", got.ContentType().Value(), len(got.Body()))
	}
	if got.From().Address.User != "alice" || got.From().Address.Host != "im.test" || got.MaxForwards().Val() != 69 {
		t.Errorf("From %s, Max-Forwards %d; want alice@im.test and 69", got.From().Value(), got.MaxForwards().Val())
	}
	if a := exchangeUDP(t, e.addr, func(l string) string { return rawRequest("OPTIONS", "sip:"+e.addr, l) }).GetHeader("Accept"); a == nil || a.Value() != "application/sdp, text/plain" {
		t.Errorf("OPTIONS Accept %v, want application/sdp, text/plain", a)
	}
}
