package sip_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/scp"
)

// TestFailureAnswers places calls that cannot connect and checks each
// answer: status, Q.850 Reason, Retry-After where due, the IM notice the
// caller receives, and the call record.
func TestFailureAnswers(t *testing.T) {
	var scpDown atomic.Bool
	e := newEnv(t, func(c *b2bConfig) {
		c.RingTimeout = 400 * time.Millisecond
		real := c.Locator
		c.Locator = locatorFunc(func(ctx context.Context, id string) (scp.Location, error) {
			if scpDown.Load() {
				return scp.Location{}, fmt.Errorf("connect: %w", scp.ErrUnavailable)
			}
			return real.Locate(ctx, id)
		})
	})
	caller := newPeer(t, "alice")
	decliner := newPeer(t, "decliner")
	decliner.setInvite(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		tx.Respond(sipmsg.NewResponseFromRequest(req, 603, "Decline", nil))
	})
	busyOwn := newPeer(t, "busyown")
	busyOwn.setInvite(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		res := sipmsg.NewResponseFromRequest(req, 486, "Busy Here", nil)
		res.AppendHeader(sipmsg.NewHeader("Reason", `Q.850;cause=17;text="on another call"`))
		tx.Respond(res)
	})
	sleeper := newPeer(t, "sleeper")
	cancelled := make(chan struct{}, 1)
	sleeper.setInvite(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		tx.OnCancel(func(*sipmsg.Request) { cancelled <- struct{}{} })
		tx.Respond(sipmsg.NewResponseFromRequest(req, 180, "Ringing", nil))
		<-tx.Done()
	})

	for _, u := range []string{"idle", "busy", "absent", "ghost", "down", "declines", "busyown", "sleepy"} {
		e.addUser(u)
	}
	e.addLegacy("busy", "001010000000002", "", scp.Busy)
	e.addLegacy("absent", "001010000000003", "", scp.Absent)
	e.addLegacy("down", "001010000000005", "127.0.0.1:9", scp.Online)
	e.addLegacy("declines", "001010000000006", decliner.addr, scp.Online)
	e.addLegacy("busyown", "001010000000007", busyOwn.addr, scp.Online)
	e.addLegacy("sleepy", "001010000000008", sleeper.addr, scp.Online)
	// ghost's terminal exists in the registry but not in the SCP.
	e.addLegacy("ghost", "001010000000009", "", scp.Absent)
	if err := e.sim.Detach("imsi:001010000000009"); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		callee     string
		scpDown    bool
		status     int
		cause      int
		retryAfter bool
		endCause   string
	}{
		{callee: "nobody", status: 404, cause: 1},
		{callee: "idle", status: 480, cause: 20, endCause: "480 no active terminal"},
		{callee: "busy", status: 486, cause: 17, endCause: "486 user busy"},
		{callee: "absent", status: 480, cause: 20, endCause: "480 subscriber absent"},
		{callee: "ghost", status: 480, cause: 20},
		{callee: "down", scpDown: true, status: 503, cause: 38, retryAfter: true},
		{callee: "declines", status: 603, cause: 21},
		{callee: "busyown", status: 486, cause: 17},
		{callee: "sleepy", status: 480, cause: 19, endCause: "ring timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.callee, func(t *testing.T) {
			scpDown.Store(tc.scpDown)
			defer scpDown.Store(false)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, res, err := caller.invite(ctx, e.uri(tc.callee), sipgo.AnswerOptions{})
			var de *sipgo.ErrDialogResponse
			if !errors.As(err, &de) {
				t.Fatalf("call connected or broke: %v", err)
			}
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", res.StatusCode, tc.status)
			}
			reason := res.GetHeader("Reason")
			if reason == nil || !strings.HasPrefix(reason.Value(), fmt.Sprintf("Q.850;cause=%d;text=\"", tc.cause)) {
				t.Errorf("Reason %v, want Q.850 cause %d with text", reason, tc.cause)
			}
			if ra := res.GetHeader("Retry-After"); (ra != nil) != tc.retryAfter {
				t.Errorf("Retry-After %v, want present=%v", ra, tc.retryAfter)
			}
			msg := caller.waitRequest(sipmsg.MESSAGE, 2*time.Second)
			body := string(msg.Body())
			if !strings.Contains(body, tc.callee+" could not be reached") || !strings.Contains(body, fmt.Sprintf("cause %d", tc.cause)) {
				t.Errorf("IM notice %q", body)
			}
			if ct := msg.ContentType(); ct == nil || !strings.HasPrefix(ct.Value(), "text/plain") {
				t.Errorf("notice Content-Type %v", ct)
			}
			if msg.From().Address.User != tc.callee {
				t.Errorf("notice from %s, want the callee", msg.From().Address.String())
			}
			if tc.callee == "sleepy" {
				select {
				case <-cancelled:
				case <-time.After(2 * time.Second):
					t.Error("ringing terminal was not CANCELled")
				}
			}
			waitIdle(t, e)
			if tc.endCause != "" {
				recs, _ := e.store.Calls(ctx, 1)
				if len(recs) != 1 || recs[0].Callee != tc.callee || recs[0].EndCause != tc.endCause || recs[0].EndedAt.IsZero() {
					t.Errorf("record %+v, want end cause %q", recs, tc.endCause)
				}
			}
		})
	}
}
