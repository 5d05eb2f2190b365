package sip_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	b2b "github.com/imcall/b2bua/sip"
)

func pai(number string) sipmsg.Header {
	return sipmsg.NewHeader("P-Asserted-Identity", "<tel:"+number+">")
}

type dialResult struct {
	dlg *sipgo.DialogClientSession
	res *sipmsg.Response
	err error
}

// TestDualPathSecondLegWhileRinging: the carrier path calls first, the data
// path joins while the far party rings; its answer reaches both.
func TestDualPathSecondLegWhileRinging(t *testing.T) {
	d := newDualEnv(t, 700*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	carrier, data := newPeerAt(t, "carrier", "127.0.0.2"), newPeer(t, "alice")
	cr, dr := newRTPSock(t, "127.0.0.1"), newRTPSock(t, "127.0.0.1")
	first := make(chan dialResult, 1)
	go func() {
		dlg, res, err := dial(ctx, d, carrier, cr, "", pai(aliceMSISDN))
		first <- dialResult{dlg, res, err}
	}()
	waitFor(t, func() bool { return d.farInvites() == 1 })
	dataDlg, dataRes, err := dial(ctx, d, data, dr, "alice")
	if err != nil {
		t.Fatalf("data path: %v (%v)", err, dataRes)
	}
	c := <-first
	if c.err != nil {
		t.Fatalf("carrier path: %v (%v)", c.err, c.res)
	}
	if n := d.farInvites(); n != 1 {
		t.Fatalf("far party got %d INVITEs, want 1", n)
	}
	if proxyPort(t, dataRes) == proxyPort(t, c.res) {
		t.Fatal("both paths got the same proxy port")
	}
	ct, _ := c.res.To().Params.Get("tag")
	dt, _ := dataRes.To().Params.Get("tag")
	if ct == dt {
		t.Fatal("both paths got the same dialog")
	}
	// Each path's in-dialog OPTIONS is answered (a probe of that path),
	// and the far party sees none of them.
	for _, dlg := range []*sipgo.DialogClientSession{c.dlg, dataDlg} {
		res, err := dlg.Do(ctx, sipmsg.NewRequest(sipmsg.OPTIONS, dlg.InviteRequest.Recipient))
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("in-dialog OPTIONS: %v %v", res, err)
		}
	}
	// The first path's BYE leaves the call up; the last one ends it.
	if err := c.dlg.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	for deadline := time.After(100 * time.Millisecond); ; { // the requests that must not come
		var r *sipmsg.Request
		select {
		case r = <-d.far.requests:
		case <-deadline:
		}
		if r == nil {
			break
		}
		if r.Method != sipmsg.INVITE {
			t.Fatalf("far party got %s from a path's OPTIONS or BYE", r.Method)
		}
	}
	if err := dataDlg.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	d.far.waitRequest(sipmsg.BYE, 5*time.Second)
}

// TestDualPathStrangersNeverJoin: other users and other numbers calling
// the same far party at the same time place calls of their own.
func TestDualPathStrangersNeverJoin(t *testing.T) {
	d := newDualEnv(t, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	alice, mallory, carrier := newPeer(t, "alice"), newPeer(t, "mallory"), newPeerAt(t, "carrier", "127.0.0.2")
	// bob's terminal takes every call: each stranger is a far call of its own.
	for _, c := range []struct {
		p    *peer
		user string
		hdrs []sipmsg.Header
	}{{alice, "alice", nil}, {mallory, "mallory", nil}, {carrier, "", []sipmsg.Header{pai("+15550009999")}}} {
		dlg, res, err := dial(ctx, d, c.p, newRTPSock(t, "127.0.0.1"), c.user, c.hdrs...)
		if err != nil {
			t.Fatalf("%s: %v (%v)", c.p.name, err, res)
		}
		defer func() {
			hangUp(ctx, dlg)
			d.far.waitRequest(sipmsg.BYE, 5*time.Second)
		}()
	}
	if n := d.farInvites(); n != 3 {
		t.Fatalf("far party got %d INVITEs, want 3 (no stranger joins)", n)
	}
}

// TestDualPathJoinHeader: a second client of alice names the first path's
// dialog in Join (RFC 3911) and joins; mallory naming it is refused with
// 403, a dialog that does not exist with 481.
func TestDualPathJoinHeader(t *testing.T) {
	d := newDualEnv(t, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	first, second, mallory := newPeer(t, "alice"), newPeer(t, "alice"), newPeer(t, "mallory")
	dlg, res, err := dial(ctx, d, first, newRTPSock(t, "127.0.0.1"), "alice")
	if err != nil {
		t.Fatalf("first path: %v (%v)", err, res)
	}
	defer func() {
		hangUp(ctx, dlg)
		d.far.waitRequest(sipmsg.BYE, 5*time.Second)
	}()
	toTag, _ := res.To().Params.Get("tag")
	fromTag, _ := dlg.InviteRequest.From().Params.Get("tag")
	join := sipmsg.NewHeader("Join", res.CallID().Value()+";to-tag="+toTag+";from-tag="+fromTag)

	for _, tc := range []struct {
		name   string
		p      *peer
		user   string
		join   sipmsg.Header
		status int
	}{
		{"a stranger", mallory, "mallory", join, 403},
		{"no such dialog", second, "alice", sipmsg.NewHeader("Join", "nope;to-tag=a;from-tag=b"), 481},
		{"the same user", second, "alice", join, 200},
	} {
		jd, res, err := dial(ctx, d, tc.p, newRTPSock(t, "127.0.0.1"), tc.user, tc.join)
		hangUp(ctx, jd)
		if res == nil || res.StatusCode != tc.status {
			t.Fatalf("%s: %v (%v), want %d", tc.name, res, err, tc.status)
		}
	}
	if n := d.farInvites(); n != 1 {
		t.Fatalf("far party got %d INVITEs, want 1", n)
	}
}

// TestDualPathSilentPathEnded: a path silent for --leg-timeout is ended
// with BYE and Reason cause 102; the call goes on over the other.
func TestDualPathSilentPathEnded(t *testing.T) {
	d := newDualEnv(t, 0, func(c *b2b.DualPathConfig) {
		c.LegMediaTimeout, c.LegTimeout = 100*time.Millisecond, 400*time.Millisecond
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	data, carrier := newPeer(t, "alice"), newPeerAt(t, "carrier", "127.0.0.2")
	dr, cr := newRTPSock(t, "127.0.0.1"), newRTPSock(t, "127.0.0.1")
	dataDlg, dataRes, err := dial(ctx, d, data, dr, "alice")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		hangUp(ctx, dataDlg)
		d.far.waitRequest(sipmsg.BYE, 5*time.Second)
	}()
	if _, res, err := dial(ctx, d, carrier, cr, "", pai(aliceMSISDN)); err != nil {
		t.Fatalf("carrier path: %v (%v)", err, res)
	}
	stop := make(chan struct{})
	done := dr.stream(proxyPort(t, dataRes), 'D', stop)
	defer func() { close(stop); <-done }()
	// The carrier path never sends: it gets BYE, the far party does not.
	bye := carrier.waitRequest(sipmsg.BYE, 5*time.Second)
	if h := bye.GetHeader("Reason"); h == nil || !containsAll(h.Value(), "Q.850", "cause=102") {
		t.Fatalf("BYE to the silent path: Reason %v", h)
	}
	select {
	case r := <-d.far.requests:
		if r.Method == sipmsg.BYE {
			t.Fatal("far party got BYE when one path went silent")
		}
	case <-time.After(100 * time.Millisecond): // the BYE that must not come
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

func hangUp(ctx context.Context, dlg *sipgo.DialogClientSession) {
	if dlg != nil {
		_ = dlg.Bye(ctx)
	}
}

// TestDualPathFirstLegCancelledWhileRinging: the data path joins while
// the far party rings, then the carrier path gives up (CANCEL): the call
// goes on for the data path, which gets the far party's answer and media.
func TestDualPathFirstLegCancelledWhileRinging(t *testing.T) {
	d := newDualEnv(t, 700*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	carrier, data := newPeerAt(t, "carrier", "127.0.0.2"), newPeer(t, "alice")
	cr, dr := newRTPSock(t, "127.0.0.1"), newRTPSock(t, "127.0.0.1")
	cctx, giveUp := context.WithCancel(ctx)
	first := make(chan dialResult, 1)
	go func() {
		dlg, res, err := dial(cctx, d, carrier, cr, "", pai(aliceMSISDN))
		first <- dialResult{dlg, res, err}
	}()
	waitFor(t, func() bool { return d.farInvites() == 1 })
	second := make(chan dialResult, 1)
	go func() {
		dlg, res, err := dial(ctx, d, data, dr, "alice")
		second <- dialResult{dlg, res, err}
	}()
	// joined: the far party alerted, so the data path hears 180
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
	giveUp()
	if c := <-first; c.err == nil {
		t.Fatal("the cancelled carrier path was answered")
	}
	s := <-second
	if s.err != nil {
		t.Fatalf("data path after the carrier path's CANCEL: %v (%v)", s.err, s.res)
	}
	defer func() {
		hangUp(ctx, s.dlg)
		d.far.waitRequest(sipmsg.BYE, 5*time.Second)
	}()
	if n := d.farInvites(); n != 1 {
		t.Fatalf("far party got %d INVITEs, want 1", n)
	}
	farDlg := <-d.dlgs
	stop := make(chan struct{})
	done := dr.stream(proxyPort(t, s.res), 'D', stop)
	farDone := d.farRTP.stream(proxyPort(t, d.farRTP.lastOffer(t, farDlg)), 'F', stop)
	waitFor(t, func() bool { return countFrom(d.farRTP.arrivals(), 'D') > 5 && countFrom(dr.arrivals(), 'F') > 5 })
	close(stop)
	<-done
	<-farDone
}
