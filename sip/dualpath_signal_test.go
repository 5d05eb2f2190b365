package sip_test

import (
	"context"
	"slices"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

// TestDualPathLaterProvisionals: a second path that joined while the far
// party rang gets the far party's later provisionals too (here a 183
// after the 180), then its answer.
func TestDualPathLaterProvisionals(t *testing.T) {
	d := newDualEnv(t, 0)
	joined := make(chan struct{})
	d.far.setInvite(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		d.mu.Lock()
		d.invs++
		d.mu.Unlock()
		dlg, err := d.far.ds.ReadInvite(req, tx)
		if err != nil {
			return
		}
		_ = dlg.Respond(180, "Ringing", nil)
		select {
		case <-joined:
		case <-dlg.Context().Done():
			return
		}
		_ = dlg.Respond(183, "Session Progress", nil)
		time.Sleep(100 * time.Millisecond) // the 183 is on the wire before the 200
		d.dlgs <- dlg
		_ = dlg.RespondSDP([]byte(sdpFor(d.farRTP.port())))
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	carrier, data := newPeerAt(t, "carrier", "127.0.0.2"), newPeer(t, "alice")
	first := make(chan dialResult, 1)
	go func() {
		dlg, res, err := dial(ctx, d, carrier, newRTPSock(t, "127.0.0.1"), "", pai(aliceMSISDN))
		first <- dialResult{dlg, res, err}
	}()
	waitFor(t, func() bool { return d.farInvites() == 1 })
	second := make(chan dialResult, 1)
	go func() {
		dlg, res, err := dial(ctx, d, data, newRTPSock(t, "127.0.0.1"), "alice")
		second <- dialResult{dlg, res, err}
	}()
	// The join is complete once the second path has its 180.
	waitFor(t, func() bool {
		data.mu.Lock()
		defer data.mu.Unlock()
		for _, m := range data.wire {
			if r, ok := m.(*sipmsg.Response); ok && r.StatusCode == 180 {
				return true
			}
		}
		return false
	})
	close(joined)
	c, s := <-first, <-second
	if c.err != nil || s.err != nil {
		t.Fatalf("paths: %v (%v), %v (%v)", c.err, c.res, s.err, s.res)
	}
	var got []int
	for _, code := range data.wireResponses(s.res.CallID().Value()) {
		if code != 100 && code != 401 && code != 407 && (len(got) == 0 || got[len(got)-1] != code) {
			got = append(got, code)
		}
	}
	if !slices.Equal(got, []int{180, 183, 200}) {
		t.Fatalf("second path got %v, want 180, 183, 200", got)
	}
	hangUp(ctx, s.dlg)
	hangUp(ctx, c.dlg)
	d.far.waitRequest(sipmsg.BYE, 5*time.Second)
}

// TestDualPathReinviteFromSecondPath: the path the far party does not hear
// sends a re-INVITE (a new media address) and an UPDATE: we answer both
// ourselves, with that path's own ports, and the far party sees neither.
func TestDualPathReinviteFromSecondPath(t *testing.T) {
	d := newDualEnv(t, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	data := newPeer(t, "alice")
	dataDlg, res, err := dial(ctx, d, data, newRTPSock(t, "127.0.0.1"), "alice")
	if err != nil {
		t.Fatalf("data path: %v (%v)", err, res)
	}
	farDlg := <-d.dlgs
	cl := dialTCPFrom(t, "127.0.0.2", d.addr)
	ruri := d.uri("bob")
	rtp, moved := newRTPSock(t, "127.0.0.1"), newRTPSock(t, "127.0.0.1")
	call := cl.invite(ruri.String(), sdpFor(rtp.port()), "", "P-Asserted-Identity: <tel:"+aliceMSISDN+">")
	if call.res.StatusCode != 200 {
		t.Fatalf("carrier path: %v", call.res)
	}
	port := proxyPort(t, call.res)
	for _, tc := range []struct {
		method, body string
		wantSDP      bool
	}{
		{"INVITE", sdpFor(moved.port()), true},
		{"UPDATE", "", false},
		{"INVITE", "", true}, // our offer in the 200, its answer in the ACK
	} {
		ack := ""
		if tc.method == "INVITE" && tc.body == "" {
			ack = sdpFor(moved.port())
		}
		res := call.request(tc.method, tc.body, ack)
		if res.StatusCode != 200 {
			t.Fatalf("%s from the second path: %v", tc.method, res)
		}
		if tc.wantSDP && proxyPort(t, res) != port {
			t.Errorf("%s answered with port %d, want the path's own %d", tc.method, proxyPort(t, res), port)
		}
	}
	// The far party's media reaches the path at its new address, which
	// it never sent from: the re-INVITE's offer moved it.
	stop := make(chan struct{})
	done := d.farRTP.stream(proxyPort(t, d.farRTP.lastOffer(t, farDlg)), 'F', stop)
	waitFor(t, func() bool { return countFrom(moved.arrivals(), 'F') > 5 })
	close(stop)
	<-done
	noRequest(t, d.far, 100*time.Millisecond)
	if n := d.farInvites(); n != 1 {
		t.Fatalf("far party got %d INVITEs, want 1", n)
	}
	if res := call.request("BYE", "", ""); res.StatusCode != 200 {
		t.Fatalf("BYE: %v", res)
	}
	hangUp(ctx, dataDlg)
	d.far.waitRequest(sipmsg.BYE, 5*time.Second)
}

// TestDualPathDelayedOffer: an INVITE without SDP joins as a second path
// (our offer in its 200, its answer in the ACK), and a second path with
// an offer joins a far call that went out without one (its answer is the
// far party's offer, with its own ports). Either way the far party's media
// reaches both paths, at the addresses their SDP gave.
func TestDualPathDelayedOffer(t *testing.T) {
	for _, tc := range []struct {
		name         string
		carrierFirst bool // the carrier path, without an offer, places the far call
	}{
		{"second path without an offer", false},
		{"far call without an offer", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDualEnv(t, 0)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			data, cl := newPeer(t, "alice"), dialTCPFrom(t, "127.0.0.2", d.addr)
			dataRTP, carrierRTP := newRTPSock(t, "127.0.0.1"), newRTPSock(t, "127.0.0.1")
			ruri := d.uri("bob")
			carrierCall := func() *tcpDialog {
				c := cl.invite(ruri.String(), "", sdpFor(carrierRTP.port()), "P-Asserted-Identity: <tel:"+aliceMSISDN+">")
				if c.res.StatusCode != 200 || len(c.res.Body()) == 0 {
					t.Fatalf("carrier path without an offer: %v", c.res)
				}
				return c
			}
			var call *tcpDialog
			if tc.carrierFirst {
				call = carrierCall()
			}
			dataDlg, res, err := dial(ctx, d, data, dataRTP, "alice")
			if err != nil {
				t.Fatalf("data path: %v (%v)", err, res)
			}
			farDlg := <-d.dlgs
			if !tc.carrierFirst {
				call = carrierCall()
			}
			if got := len(farDlg.InviteRequest.Body()) > 0; got == tc.carrierFirst {
				t.Fatalf("the far INVITE has SDP: %v", got)
			}
			if proxyPort(t, res) == proxyPort(t, call.res) {
				t.Fatal("both paths got the same proxy port")
			}
			var farPort int
			if tc.carrierFirst {
				// The far party offered in its 200; our ACK answered it.
				farPort = waitAckPort(t, d)
			} else {
				farPort = proxyPort(t, d.farRTP.lastOffer(t, farDlg))
			}
			stop := make(chan struct{})
			done := d.farRTP.stream(farPort, 'F', stop)
			waitFor(t, func() bool {
				return countFrom(dataRTP.arrivals(), 'F') > 5 && countFrom(carrierRTP.arrivals(), 'F') > 5
			})
			close(stop)
			<-done
			if n := d.farInvites(); n != 1 {
				t.Fatalf("far party got %d INVITEs, want 1", n)
			}
			call.request("BYE", "", "")
			hangUp(ctx, dataDlg)
			d.far.waitRequest(sipmsg.BYE, 5*time.Second)
		})
	}
}

// waitAckPort is the RTP port of the answer in the ACK the far party got.
func waitAckPort(t *testing.T, d *dualEnv) int {
	t.Helper()
	var body []byte
	waitFor(t, func() bool {
		d.far.mu.Lock()
		defer d.far.mu.Unlock()
		for _, m := range d.far.wire {
			if r, ok := m.(*sipmsg.Request); ok && r.IsAck() && len(r.Body()) > 0 {
				body = append([]byte(nil), r.Body()...)
				return true
			}
		}
		return false
	})
	res := sipmsg.NewResponse(200, "OK")
	res.SetBody(body)
	return proxyPort(t, res)
}
