package sip_test

import (
	"context"
	"encoding/json"
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

const (
	badSDP  = "garbage"
	ipv6SDP = "v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\nm=audio 40002 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)

// anchoredEnv is a B2BUA whose calls are anchored in an rtpproxy that
// advertises 203.0.113.10, with bob's terminal at term.
func anchoredEnv(t *testing.T, mediaTimeout time.Duration) (e *env, caller, term *peer) {
	t.Helper()
	p, err := rtpproxy.New(rtpproxy.Config{
		BindAddr: netip.MustParseAddr("127.0.0.1"), AdvertiseAddr: netip.MustParseAddr("203.0.113.10"),
		PortMin: 36500, PortMax: 36599, Drain: 10 * time.Millisecond, Workers: 1,
		MediaTimeout: mediaTimeout, CheckInterval: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	e = newEnv(t, func(c *b2bConfig) { c.Media = b2b.RTPProxy{Proxy: p} })
	caller, term = newPeer(t, "alice"), newPeer(t, "term")
	e.addUser("bob")
	e.addLegacy("bob", "001010000000001", term.addr, scp.Online)
	return e, caller, term
}

// wireResponse is the last response with status code received for Call-ID
// callID.
func (p *peer) wireResponse(callID string, code int) *sipmsg.Response {
	p.mu.Lock()
	defer p.mu.Unlock()
	var last *sipmsg.Response
	for _, m := range p.wire {
		if r, ok := m.(*sipmsg.Response); ok && r.CallID().Value() == callID && r.StatusCode == code {
			last = r
		}
	}
	return last
}

// TestAnchorRefusals: SDP the anchor cannot take gets the anchor's own
// answer with its Warning, never the raw SDP.
func TestAnchorRefusals(t *testing.T) {
	tests := []struct {
		name        string
		offer       string
		answer      string // the terminal's 200
		wantStatus  int
		wantCause   string
		terminalBye bool
	}{
		{name: "malformed offer", offer: badSDP, answer: testSDP, wantStatus: 400, wantCause: "cause=95"},
		{name: "malformed answer", offer: testSDP, answer: badSDP, wantStatus: 502, wantCause: "cause=127", terminalBye: true},
		{name: "IPv6 answer", offer: testSDP, answer: ipv6SDP, wantStatus: 488, wantCause: "cause=65", terminalBye: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, caller, term := anchoredEnv(t, 0)
			term.setInvite(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
				dlg, err := term.ds.ReadInvite(req, tx)
				if err == nil {
					_ = dlg.RespondSDP([]byte(tt.answer))
				}
			})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			dlg, err := caller.dc.Invite(ctx, e.uri("bob"), []byte(tt.offer), sipmsg.NewHeader("Content-Type", "application/sdp"))
			if err != nil {
				t.Fatal(err)
			}
			_ = dlg.WaitAnswer(ctx, sipgo.AnswerOptions{})
			res := dlg.InviteResponse
			if res == nil || res.StatusCode != tt.wantStatus {
				t.Fatalf("caller got %v, want %d", res, tt.wantStatus)
			}
			if w := res.GetHeader("Warning"); w == nil || !strings.HasPrefix(w.Value(), "3") || !strings.Contains(w.Value(), ` b2bua "`) {
				t.Errorf("Warning %v", w)
			}
			if r := res.GetHeader("Reason"); r == nil || !strings.Contains(r.Value(), tt.wantCause) {
				t.Errorf("Reason %v, want %s", r, tt.wantCause)
			}
			if strings.Contains(string(res.Body()), "::1") {
				t.Errorf("the terminal's SDP reached the caller: %q", res.Body())
			}
			if tt.terminalBye {
				term.waitRequest(sipmsg.BYE, 5*time.Second)
			}
			waitIdle(t, e)
		})
	}
}

// TestEarlyMediaAnswerRefused: a 183 whose SDP cannot be anchored reaches
// the caller without SDP; the call goes on and the 200 is anchored.
func TestEarlyMediaAnswerRefused(t *testing.T) {
	e, caller, term := anchoredEnv(t, 0)
	term.setInvite(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		dlg, err := term.ds.ReadInvite(req, tx)
		if err != nil {
			return
		}
		_ = dlg.Respond(183, "Session Progress", []byte(ipv6SDP), sipmsg.NewHeader("Content-Type", "application/sdp"))
		_ = dlg.RespondSDP([]byte(strings.ReplaceAll(testSDP, "40000", "40002")))
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dlg, res, err := caller.invite(ctx, e.uri("bob"), sipgo.AnswerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(res.Body()), "c=IN IP4 203.0.113.10") {
		t.Errorf("200 not anchored:\n%s", res.Body())
	}
	callID := dlg.InviteRequest.CallID().Value()
	waitFor(t, func() bool { return caller.wireResponse(callID, 183) != nil })
	if p := caller.wireResponse(callID, 183); len(p.Body()) != 0 || p.GetHeader("Content-Type") != nil {
		t.Errorf("183 carries SDP:\n%s", p.String())
	}
	if err := dlg.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, e)
}

// TestReinviteAnswerRefused: when the answer to a re-INVITE cannot be
// anchored, the requester gets a failure with the Warning, never the raw
// SDP, and the call stays up.
func TestReinviteAnswerRefused(t *testing.T) {
	e, caller, term := anchoredEnv(t, 0)
	term.setInvite(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		if tag, _ := req.To().Params.Get("tag"); tag != "" {
			res := sipmsg.NewResponseFromRequest(req, 200, "OK", []byte(ipv6SDP))
			res.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
			res.AppendHeader(&term.contact)
			tx.Respond(res)
			return
		}
		answerer(term, 0, nil)(req, tx)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dlg, _, err := caller.invite(ctx, e.uri("bob"), sipgo.AnswerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	term.waitRequest(sipmsg.INVITE, time.Second)
	hold := sipmsg.NewRequest(sipmsg.INVITE, dlg.InviteResponse.Contact().Address)
	hold.SetBody([]byte(testSDP + "a=sendonly\r\n"))
	hold.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
	res, err := dlg.Do(ctx, hold)
	if err != nil {
		t.Fatalf("re-INVITE: %v", err)
	}
	if res.StatusCode != 488 || len(res.Body()) != 0 || res.GetHeader("Warning") == nil {
		t.Fatalf("re-INVITE answered:\n%s", res.String())
	}
	term.waitRequest(sipmsg.INVITE, time.Second)
	// The call is still up: an in-dialog INFO passes, BYE ends it.
	info := sipmsg.NewRequest(sipmsg.INFO, dlg.InviteResponse.Contact().Address)
	if res, err := dlg.Do(ctx, info); err != nil || res.StatusCode != 200 {
		t.Fatalf("INFO after the refused re-INVITE: %v %v", res, err)
	}
	if err := dlg.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	term.waitRequest(sipmsg.BYE, 5*time.Second)
	waitIdle(t, e)
}

// TestMediaTimeoutEndsCall: an answered call whose parties send no RTP
// ends with BYE to both, Reason Q.850 cause 102, and the record says why
// and carries the per-leg counters.
func TestMediaTimeoutEndsCall(t *testing.T) {
	e, caller, term := anchoredEnv(t, 300*time.Millisecond)
	term.setInvite(answerer(term, 0, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := caller.invite(ctx, e.uri("bob"), sipgo.AnswerOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*peer{caller, term} {
		bye := p.waitRequest(sipmsg.BYE, 5*time.Second)
		if r := bye.GetHeader("Reason"); r == nil || !strings.HasPrefix(r.Value(), "Q.850;cause=102;") || !strings.Contains(r.Value(), "media timeout") {
			t.Errorf("%s's BYE Reason %v", p.name, r)
		}
	}
	waitIdle(t, e)
	if err := e.srv.FlushRecords(ctx); err != nil {
		t.Fatal(err)
	}
	recs, err := e.store.Calls(ctx, 1)
	if err != nil || len(recs) != 1 {
		t.Fatalf("records %v %v", recs, err)
	}
	if recs[0].EndCause != "media timeout" {
		t.Errorf("end cause %q", recs[0].EndCause)
	}
	var st []rtpproxy.LegStats
	if err := json.Unmarshal([]byte(recs[0].Stats), &st); err != nil || len(st) != 2 || st[0].Packets != 0 {
		t.Errorf("stats %q: %v", recs[0].Stats, err)
	}
}
