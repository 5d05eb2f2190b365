package sip

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/registry"
)

// DialogStore keeps a snapshot of every confirmed call of a node, so that
// the node, restarted after a crash, can end the calls it held
// (EndLeftovers). *sqlite.Store implements it.
type DialogStore interface {
	// PutDialogs inserts or replaces the snapshots in put and deletes the
	// ones in gone, in one transaction.
	PutDialogs(ctx context.Context, put []registry.DialogSnapshot, gone []registry.DialogKey) error
	// Dialogs lists the snapshots of node.
	Dialogs(ctx context.Context, node string) ([]registry.DialogSnapshot, error)
	// EndLeftover closes d's call record left open with endedAt and
	// cause, and deletes d's snapshot.
	EndLeftover(ctx context.Context, d registry.DialogSnapshot, endedAt time.Time, cause string) error
}

// snapshotter writes dialog snapshots off the call path, as the recorder
// writes call records: a call loop hands it a snapshot when its call is
// confirmed and a deletion when it ends, and never waits for the database.
// A call that ends before its snapshot was written costs no write at all.
type snapshotter struct {
	store DialogStore
	node  string
	log   *slog.Logger

	mu      sync.Mutex
	pending map[string]*registry.DialogSnapshot // by key; nil: delete it
	handed  map[string]bool                     // keys whose put went to the writer: a row may exist
	busy    bool
	wake    chan struct{}
	dropped int
}

func newSnapshotter(store DialogStore, node string, log *slog.Logger) *snapshotter {
	return &snapshotter{
		store: store, node: node, log: log,
		pending: map[string]*registry.DialogSnapshot{},
		handed:  map[string]bool{},
		wake:    make(chan struct{}, 1),
	}
}

// put queues d as the latest snapshot of its call.
func (w *snapshotter) put(d registry.DialogSnapshot) {
	if w == nil {
		return
	}
	d.Node = w.node
	w.mu.Lock()
	if _, ok := w.pending[d.Key]; !ok && len(w.pending) >= maxRecordQueue {
		w.dropped++
		w.mu.Unlock()
		return
	}
	w.pending[d.Key] = &d
	w.mu.Unlock()
	w.signal()
}

// drop queues the deletion of key's snapshot.
func (w *snapshotter) drop(key string) {
	if w == nil {
		return
	}
	w.mu.Lock()
	if w.handed[key] {
		w.pending[key] = nil
	} else {
		delete(w.pending, key) // never written: nothing to delete
	}
	w.mu.Unlock()
	w.signal()
}

func (w *snapshotter) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run writes until ctx is done, then writes what is left and returns.
func (w *snapshotter) run(ctx context.Context) { batchLoop(ctx, w.wake, w.writePending) }

func (w *snapshotter) writePending() {
	for {
		w.mu.Lock()
		if len(w.pending) == 0 {
			w.busy = false
			if w.dropped > 0 {
				w.log.Warn("dialog snapshots dropped: the database cannot keep up", "calls", w.dropped)
				w.dropped = 0
			}
			w.mu.Unlock()
			return
		}
		w.busy = true
		var put []registry.DialogSnapshot
		var gone []registry.DialogKey
		batch := w.pending
		w.pending = map[string]*registry.DialogSnapshot{}
		for k, d := range batch {
			if d == nil {
				gone = append(gone, registry.DialogKey{Node: w.node, Key: k})
				delete(w.handed, k)
			} else {
				put = append(put, *d)
				w.handed[k] = true
			}
		}
		w.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := w.store.PutDialogs(ctx, put, gone)
		cancel()
		if err != nil {
			// A call whose snapshot is lost cannot be ended after a
			// crash, and a lost deletion gets a finished call a BYE
			// after a restart (answered 481); the calls go on.
			w.log.Warn("dialog snapshots not written", "calls", len(batch), "err", err)
		}
	}
}

// flush waits until every snapshot queued so far is written, or ctx is
// done.
func (w *snapshotter) flush(ctx context.Context) error {
	if w == nil {
		return nil
	}
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		w.mu.Lock()
		idle := len(w.pending) == 0 && !w.busy
		w.mu.Unlock()
		if idle {
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// saveDialogs snapshots the session's confirmed legs, and the legs we
// placed whose INVITE has no final answer yet. It is called when the call
// starts, with no leg yet, so that a crash before its INVITEs leaves its
// record to be closed after the restart; when its INVITEs are out, so that
// a crash while it rings leaves enough to CANCEL them; and when it is
// answered, so that a crash from then on leaves enough to end both legs.
// A call that ends within the writer's window costs no write, and the
// snapshots of one call in that window are one write.
func (c *session) saveDialogs() {
	if c.s.snaps == nil {
		return
	}
	d := registry.DialogSnapshot{Key: c.origin.key(), CallID: c.origin.callID, StartedAt: c.rec.StartedAt}
	for _, u := range c.uas {
		switch {
		case u.ended():
		case u.up:
			d.Legs = append(d.Legs, snapLeg(&u.dialogState))
		case !u.final && u.inv != nil:
			sl := snapLeg(&u.dialogState)
			sl.Answer = answerOf(u.inv)
			d.Legs = append(d.Legs, sl)
		}
	}
	for _, l := range c.uac {
		switch {
		case l.ended():
		case l.up:
			d.Legs = append(d.Legs, snapLeg(&l.dialogState))
		case l.tx != nil && !l.final && l.inv != nil:
			sl := snapLeg(&l.dialogState)
			sl.Invite = pendingOf(l.inv)
			d.Legs = append(d.Legs, sl)
		}
	}
	c.snapped = true
	c.s.snaps.put(d)
}

// refreshDialogs snapshots the call again after a target refresh (a
// re-INVITE's 2xx, RFC 3261 §12.2.1.2): the Contacts and CSeqs kept must be
// the ones a BYE after a crash needs.
func (c *session) refreshDialogs() {
	if c.snapped {
		c.saveDialogs()
	}
}

// dropDialogs deletes the session's snapshot once the call is over.
func (c *session) dropDialogs() {
	if c.snapped {
		c.s.snaps.drop(c.origin.key())
	}
}

func snapLeg(d *dialogState) registry.DialogLeg {
	return registry.DialogLeg{
		CallID:     d.callID,
		LocalURI:   d.local.String(),
		LocalName:  d.localName,
		LocalTag:   d.localTag,
		RemoteURI:  d.remote.String(),
		RemoteName: d.remoteNm,
		RemoteTag:  d.remoteTag,
		LocalSeq:   d.localSeq,
		Target:     d.target.String(),
		RouteSet:   append([]string(nil), d.routeSet...),
		Dest:       d.dest,
		Transport:  d.transport,
	}
}

// pendingOf keeps what a CANCEL of inv repeats (RFC 3261 §9.1).
func pendingOf(inv *sipmsg.Request) *registry.PendingInvite {
	p := &registry.PendingInvite{RequestURI: inv.Recipient.String(), CSeq: inv.CSeq().SeqNo, Dest: inv.Destination()}
	if v := inv.Via(); v != nil {
		p.Via = v.Value()
	}
	for _, h := range inv.GetHeaders("Route") {
		p.RouteSet = append(p.RouteSet, h.Value())
	}
	return p
}

// answerOf keeps what a response to inv, a caller's INVITE with our To
// tag, repeats of it.
func answerOf(inv *sipmsg.Request) *registry.PendingAnswer {
	a := &registry.PendingAnswer{From: inv.From().Value(), To: inv.To().Value(), CallID: inv.CallID().Value(),
		CSeq: inv.CSeq().SeqNo, Source: inv.Source()}
	for _, h := range inv.GetHeaders("Via") {
		a.Vias = append(a.Vias, h.Value())
	}
	return a
}

// answerTo rebuilds a final response to a leg's pending INVITE from its
// snapshot: its Vias, From, To, Call-ID and CSeq (RFC 3261 §8.2.6.2).
func answerTo(l registry.DialogLeg, status int) (*sipmsg.Response, error) {
	a := l.Answer
	parse := sipmsg.DefaultHeadersParser()
	res := sipmsg.NewResponse(status, reasonPhrase(status))
	for _, f := range []struct{ name, value string }{{"Via", ""}, {"From", a.From}, {"To", a.To}, {"Call-ID", a.CallID}} {
		values := []string{f.value}
		if f.name == "Via" {
			values = a.Vias
		}
		for _, v := range values {
			h, err := parse[strings.ToLower(f.name)]([]byte(f.name), v)
			if err != nil || h == nil {
				return nil, fmt.Errorf("pending answer %s: %s %q: %v", l.CallID, f.name, v, err)
			}
			res.AppendHeader(h)
		}
	}
	if res.Via() == nil {
		return nil, fmt.Errorf("pending answer %s: no Via", l.CallID)
	}
	res.AppendHeader(&sipmsg.CSeqHeader{SeqNo: a.CSeq, MethodName: sipmsg.INVITE})
	res.SetBody(nil)
	return res, nil
}

// cancelOf rebuilds the CANCEL of a leg's pending INVITE from its
// snapshot: the INVITE's Request-URI, top Via, From, To without the tag a
// provisional answer gave, Call-ID, CSeq number and Route (RFC 3261 §9.1).
func cancelOf(l registry.DialogLeg) (*sipmsg.Request, error) {
	p := l.Invite
	var ru sipmsg.Uri
	if err := sipmsg.ParseUri(p.RequestURI, &ru); err != nil {
		return nil, fmt.Errorf("pending INVITE %s: Request-URI %q: %w", l.CallID, p.RequestURI, err)
	}
	via, err := sipmsg.DefaultHeadersParser()["via"]([]byte("Via"), p.Via)
	if err != nil || via == nil {
		return nil, fmt.Errorf("pending INVITE %s: Via %q: %v", l.CallID, p.Via, err)
	}
	d, err := dialogOf(l)
	if err != nil {
		return nil, err
	}
	d.target, d.remoteTag, d.routeSet, d.dest = ru, "", p.RouteSet, p.Dest
	req := d.newRequest(sipmsg.CANCEL, p.CSeq)
	req.PrependHeader(via)
	return req, nil
}

// dialogOf rebuilds a leg's dialog from its snapshot.
func dialogOf(l registry.DialogLeg) (dialogState, error) {
	d := dialogState{
		callID: l.CallID, localName: l.LocalName, localTag: l.LocalTag,
		remoteNm: l.RemoteName, remoteTag: l.RemoteTag, localSeq: l.LocalSeq,
		routeSet: l.RouteSet, dest: l.Dest, transport: l.Transport,
	}
	for _, u := range []struct {
		s   string
		dst *sipmsg.Uri
	}{{l.LocalURI, &d.local}, {l.RemoteURI, &d.remote}, {l.Target, &d.target}} {
		if err := sipmsg.ParseUri(u.s, u.dst); err != nil {
			return d, fmt.Errorf("dialog %s: URI %q: %w", l.CallID, u.s, err)
		}
	}
	return d, nil
}
