package sip_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/scp"
)

// TestCancelledTerminal487IsAcked: after the caller's CANCEL the B2BUA
// CANCELs the ringing terminal, and the terminal's 487 and every
// retransmission of it are ACKed by the INVITE client transaction (RFC 3261
// §17.1.1.3), also after the call itself has ended.
func TestCancelledTerminal487IsAcked(t *testing.T) {
	e := newEnv(t)
	caller := newPeer(t, "alice")
	term := newRawPeer(t)
	e.addUser("bob")
	e.addLegacy("bob", "001010000000001", term.addr, scp.Online)

	for i := 0; i < 3; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() {
			_, _, err := caller.invite(ctx, e.uri("bob"), sipgo.AnswerOptions{
				OnResponse: func(r *sipmsg.Response) error {
					if r.StatusCode == 180 {
						cancel()
					}
					return nil
				},
			})
			errc <- err
		}()
		inv := term.next(sipmsg.INVITE, 5*time.Second)
		term.respond(inv, 180, "Ringing")
		can := term.next(sipmsg.CANCEL, 5*time.Second)
		term.respond(can, 200, "OK")
		acks := term.count(sipmsg.ACK)
		res := term.respond(inv, 487, "Request Terminated")
		checkAck := func(d time.Duration) {
			t.Helper()
			ack := term.next(sipmsg.ACK, d)
			if got, want := ack.req.CSeq().SeqNo, inv.req.CSeq().SeqNo; got != want {
				t.Fatalf("ACK CSeq %d, want the INVITE's %d", got, want)
			}
			gb, _ := ack.req.Via().Params.Get("branch")
			wb, _ := inv.req.Via().Params.Get("branch")
			if gb != wb {
				t.Fatalf("ACK branch %q, want the INVITE's %q (RFC 3261 §17.1.1.3)", gb, wb)
			}
		}
		checkAck(3 * time.Second)
		if i == 2 {
			// A retransmission after the call ended, as if the ACK was
			// lost, is ACKed too; sipgo holds a repeated ACK back by T2.
			waitFor(t, func() bool { return e.srv.ActiveCalls() == 0 })
			term.send(res, inv.src)
			checkAck(sipmsg.T2 + 3*time.Second)
		}
		if got, want := term.count(sipmsg.ACK)-acks, 1+i/2; got != want {
			t.Errorf("call %d: %d ACKs, want %d", i, got, want)
		}
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("caller's INVITE ended with %v, want cancelled", err)
		}
		cancel()
		waitIdle(t, e)
	}
}

// stuckFinder is a registry that never answers until its caller gives up.
type stuckFinder struct{}

func (stuckFinder) ActiveTerminal(ctx context.Context, _ string) (registry.Terminal, error) {
	<-ctx.Done()
	return registry.Terminal{}, ctx.Err()
}

// TestCallsEndWhenPeersGoSilent: every wait of a call is bounded, so a call
// whose peers stop answering still ends and stops counting as live.
func TestCallsEndWhenPeersGoSilent(t *testing.T) {
	short := func(c *b2bConfig) {
		c.AckTimeout = 300 * time.Millisecond
		c.TxTimeout = 500 * time.Millisecond
		c.RingTimeout = time.Minute // never reached in these cases
	}
	tests := []struct {
		name string
		opts []envOpt
		// drive plays the caller and the terminal; both raw, so they
		// answer only what drive answers.
		drive func(t *testing.T, e *env, caller, term *rawPeer)
	}{
		{"caller never ACKs, nobody answers the BYEs", []envOpt{short}, func(t *testing.T, e *env, caller, term *rawPeer) {
			caller.invite(e.addr, "bob", "im.test")
			inv := term.next(sipmsg.INVITE, 5*time.Second)
			term.respond(inv, 180, "Ringing")
			term.respond(inv, 200, "OK")
			caller.nextResponse(200, 5*time.Second)
			term.next(sipmsg.ACK, 5*time.Second)
			term.next(sipmsg.BYE, 5*time.Second)
			caller.next(sipmsg.BYE, 5*time.Second)
		}},
		{"terminal rings, our CANCEL gets no 487", []envOpt{short}, func(t *testing.T, e *env, caller, term *rawPeer) {
			inv := caller.invite(e.addr, "bob", "im.test")
			tinv := term.next(sipmsg.INVITE, 5*time.Second)
			term.respond(tinv, 180, "Ringing")
			caller.nextResponse(180, 5*time.Second)
			caller.cancel(inv, e.addr)
			if res := caller.nextResponse(300, 5*time.Second); res.StatusCode != 487 {
				t.Errorf("caller got %d, want 487", res.StatusCode)
			}
			can := term.next(sipmsg.CANCEL, 5*time.Second)
			term.respond(can, 200, "OK") // and never the 487
		}},
		{"registry never answers", []envOpt{short, func(c *b2bConfig) { c.Terminals = stuckFinder{} }}, func(t *testing.T, e *env, caller, term *rawPeer) {
			caller.invite(e.addr, "bob", "im.test")
			// The registry's failure: 500 "registry unavailable".
			if res := caller.nextResponse(300, 5*time.Second); res.StatusCode != 500 {
				t.Errorf("caller got %d, want 500", res.StatusCode)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.opts...)
			caller, term := newRawPeer(t), newRawPeer(t)
			e.addUser("bob")
			e.addLegacy("bob", "001010000000001", term.addr, scp.Online)
			tt.drive(t, e, caller, term)
			waitIdle(t, e)
		})
	}
}
