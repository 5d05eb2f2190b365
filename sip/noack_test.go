package sip_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/scp"
	b2b "github.com/imcall/b2bua/sip"
)

// closeWatch is a media anchor that passes SDP through and tells when the
// session's media was released: no real relay can show the moment its
// ports go without a race against the BYEs.
type closeWatch struct {
	once   sync.Once
	closed chan struct{}
}

func (w *closeWatch) NewSession(context.Context, string) (b2b.MediaSession, error) {
	return watchedSession{w}, nil
}

type watchedSession struct{ w *closeWatch }

func (watchedSession) Offer(_ context.Context, _, _ b2b.LegID, sdp []byte) ([]byte, error) {
	return sdp, nil
}

func (watchedSession) Answer(_ context.Context, _, _ b2b.LegID, sdp []byte) ([]byte, error) {
	return sdp, nil
}

func (watchedSession) Release(b2b.LegID) {}

func (s watchedSession) Close() error {
	s.w.once.Do(func() { close(s.w.closed) })
	return nil
}

// TestUnackedAnswerEndsCallAtOnce: a caller that never ACKs the 2xx gets it
// retransmitted with doubling intervals for 64*T1 (RFC 3261 §13.3.1.4);
// then both legs get BYE with the reason, the media goes at once, and the
// record says the call never started, whatever the silent caller does with
// our BYE.
func TestUnackedAnswerEndsCallAtOnce(t *testing.T) {
	const t1 = 20 * time.Millisecond
	media := &closeWatch{closed: make(chan struct{})}
	e := newEnv(t, func(c *b2bConfig) { c.T1 = t1; c.Media = media })
	caller, term := newRawPeer(t), newRawPeer(t)
	e.addUser("bob")
	e.addLegacy("bob", "001010000000001", term.addr, scp.Online)

	inv := caller.invite(e.addr, "bob", "im.test")
	tinv := term.next(sipmsg.INVITE, 5*time.Second)
	term.respond(tinv, 200, "OK")
	term.next(sipmsg.ACK, 5*time.Second)
	first := caller.nextResponse(200, 5*time.Second)
	answered := time.Now()

	tbye := term.next(sipmsg.BYE, 5*time.Second)
	elapsed := time.Since(answered)
	select {
	case <-media.closed:
	default:
		t.Error("media still anchored when the BYE went out")
	}
	term.respond(tbye, 200, "OK")
	cbye := caller.next(sipmsg.BYE, 5*time.Second) // never answered
	if elapsed < 60*t1 || elapsed > 64*t1+time.Second {
		t.Errorf("BYE %v after the 2xx, want 64*T1 = %v", elapsed, 64*t1)
	}
	for _, r := range []rawReq{tbye, cbye} {
		reason := r.req.GetHeader("Reason")
		if reason == nil || !strings.Contains(reason.Value(), `text="ACK timeout"`) {
			t.Errorf("BYE to %s: Reason %v, want the ACK timeout", r.req.Recipient.String(), reason)
		}
	}
	if cid := cbye.req.CallID().Value(); cid != inv.CallID().Value() {
		t.Errorf("caller's BYE on Call-ID %q, want the INVITE's %q", cid, inv.CallID().Value())
	}
	// The 2xx and its retransmissions, at T1, 2T1, 4T1 … capped at 8*T1:
	// about ten in 64*T1; a constant T1 would give 64, none at all 1.
	copies := 1
	for len(caller.resps) > 0 {
		if r := <-caller.resps; r.StatusCode == 200 && r.CSeq().MethodName == sipmsg.INVITE {
			copies++
		}
	}
	if copies < 5 || copies > 13 {
		t.Errorf("2xx sent %d times in 64*T1, want about 10 (%v)", copies, first.StartLine())
	}

	waitIdle(t, e)
	recs, err := e.store.Calls(context.Background(), 1)
	if err != nil || len(recs) != 1 {
		t.Fatalf("records %+v %v", recs, err)
	}
	r := recs[0]
	if r.EndCause != "ACK timeout" || !r.AnsweredAt.IsZero() {
		t.Errorf("record: end cause %q, answered at %v; want ACK timeout, never answered", r.EndCause, r.AnsweredAt)
	}
	// The caller never answers our BYE: the session waits TxTimeout
	// (64*T1) for it, but the call ended when the BYE went.
	if d := r.EndedAt.Sub(r.StartedAt); d < 60*t1 || d > 64*t1+time.Second/2 {
		t.Errorf("record lasts %v, want about 64*T1 = %v", d, 64*t1)
	}
}
