package sip_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/scp"
	"github.com/imcall/b2bua/scp/sim"
)

// TestCallToMSISDNTerminal: a legacy terminal registered with only an
// MSISDN (what `b2bua terminal add --msisdn` makes) is located through the
// SCP like an IMSI terminal, and rings, is busy or is absent accordingly.
func TestCallToMSISDNTerminal(t *testing.T) {
	e := newEnv(t)
	caller := newPeer(t, "alice")
	term := newPeer(t, "term")
	term.setInvite(answerer(term, 0, make(chan *sipgo.DialogServerSession, 1)))
	tests := []struct {
		callee, msisdn string
		attach         *sim.Subscriber // nil: the SCP has no record of it
		status         int
		outcome        string // the call record's SCP outcome, by prefix
	}{
		{"bob", "+441632960001", &sim.Subscriber{Addr: netip.MustParseAddrPort(term.addr), State: scp.Online}, 200, "online " + term.addr},
		{"carol", "+441632960002", &sim.Subscriber{State: scp.Busy}, 486, "busy"},
		{"dave", "+441632960003", &sim.Subscriber{State: scp.Absent}, 480, "absent"},
		{"erin", "+441632960004", nil, 480, "unknown"},
	}
	for _, tc := range tests {
		t.Run(tc.callee, func(t *testing.T) {
			e.addUser(tc.callee)
			mid, err := registry.ParseMSISDN(tc.msisdn)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.store.AddTerminal(context.Background(), registry.NewTerminal{IMID: tc.callee, MobileID: mid, Kind: registry.Legacy, Caps: registry.CapAudio, Active: true}); err != nil {
				t.Fatal(err)
			}
			if tc.attach != nil {
				sub := *tc.attach
				sub.ID = mid.String()
				if _, err := e.sim.Attach(sub); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			dlg, res, err := caller.invite(ctx, e.uri(tc.callee), sipgo.AnswerOptions{})
			if tc.status == 200 {
				if err != nil || res.StatusCode != 200 {
					t.Fatalf("call: %v (response %v)", err, res)
				}
				if inv := term.waitRequest(sipmsg.INVITE, time.Second); inv.Recipient.User != tc.callee {
					t.Errorf("terminal got INVITE %s", inv.Recipient.String())
				}
				if err := dlg.Bye(ctx); err != nil {
					t.Fatalf("BYE: %v", err)
				}
				term.waitRequest(sipmsg.BYE, 2*time.Second)
			} else {
				var de *sipgo.ErrDialogResponse
				if !errors.As(err, &de) || res.StatusCode != tc.status {
					t.Fatalf("got %v %v, want %d", res, err, tc.status)
				}
				caller.waitRequest(sipmsg.MESSAGE, 2*time.Second) // the IM notice
			}
			waitIdle(t, e)
			recs, err := e.store.Calls(ctx, 1)
			if err != nil || len(recs) != 1 || recs[0].Callee != tc.callee || !strings.HasPrefix(recs[0].SCPOutcome, tc.outcome) {
				t.Fatalf("call record %+v %v, want SCP outcome %q", recs, err, tc.outcome)
			}
		})
	}
}
