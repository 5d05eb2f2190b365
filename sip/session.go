package sip

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/registry"
)

// session is one call: the legs that reached us and the legs we placed,
// the bridge policy that says what one leg's end does to the rest, the
// media session and the call record. All fields are owned by the goroutine
// running run, the session's one loop; other goroutines only post closures
// to tasks (CONVENTIONS 7, 7b).
type session struct {
	s      *Server
	log    *slog.Logger
	tasks  *taskQueue
	ended  chan struct{}
	ctx    context.Context
	cancel context.CancelCauseFunc

	caller string  // the caller's identity (authenticated user or From user)
	in     inbound // what the INVITE called and who from (route_did.go)
	callee string  // the callee's IM ID
	policy bridgePolicy
	media  MediaSession
	// mediaClosed: media is closed; the session ends without it.
	mediaClosed bool

	origin *uasLeg   // the leg the call came in on
	uas    []*uasLeg // every leg that reached us, origin first
	uac    []*uacLeg // every leg we placed, in the order we placed them
	// peer says who is bridged with whom: an in-dialog request on a leg
	// is relayed to its peer.
	peer   map[*leg]*leg
	winner *uacLeg // the placed leg that answered first

	reinvite         bool // an offer is in progress (RFC 3261 §14.2)
	pending          int  // BYEs waiting for their answer
	ending, finished bool
	endCause         string
	byeCause         int      // Q.850 cause of the BYEs we send; 0: 16
	forkFailure      *Failure // the best failure of the placed legs so far
	ringTimer        *time.Timer
	giveUp           *time.Timer
	maxDur           Timer // MaxCallDuration from the answer

	rec      registry.CallRecord
	recState callRecord
	snapped  bool // a dialog snapshot of the call was handed to the store

	dual *dualState // dual-path state (dualpath.go); nil when off
}

// call is what an IM notice needs of a session (sendNotice): the dialog
// the call came in on and the callee.
type call struct {
	a      *dialogState
	callee string
}

func newSession(s *Server, req *sipmsg.Request, tx sipmsg.ServerTransaction, caller, callee string) *session {
	ctx, cancel := context.WithCancelCause(context.Background())
	c := &session{
		s:      s,
		ended:  make(chan struct{}),
		ctx:    ctx,
		cancel: cancel,
		caller: caller,
		callee: callee,
		policy: twoParty{},
		peer:   map[*leg]*leg{},
	}
	c.tasks = newTaskQueue(c.startRunner)
	u := c.addUAS(req, tx)
	c.origin = u
	c.log = s.log.With("call", u.callID, "callee", callee)
	if !tx.OnCancel(func(*sipmsg.Request) { c.post(func() { c.onUASCancel(u) }) }) {
		cancel(errors.New("cancelled before start"))
		return nil
	}
	s.addSession(c)
	s.setDialog(u.dialogID(), c)
	return c
}

// post queues fn for the session's loop; false once the session has ended.
func (c *session) post(fn func()) bool {
	return c.tasks.push(fn)
}

func (c *session) after(d time.Duration, fn func()) *time.Timer {
	return time.AfterFunc(d, func() { c.post(fn) })
}

// run is the session's event loop while the call is set up, on the
// goroutine of its INVITE's handler, which must not return before the
// INVITE has its final answer (sipgo ends the transaction then). Once it
// has, the loop detaches: the session keeps no goroutine of its own, and
// each burst of tasks runs on a runner that a post starts (drain). Either
// way one goroutine at a time runs the session's tasks, in the order they
// were posted.
func (c *session) run() {
	for c.start(); !c.finished; {
		if c.origin.final && c.tasks.detach() {
			return
		}
		c.tasks.pop()()
	}
	c.cleanup()
}

func (c *session) startRunner() {
	c.s.wg.Add(1)
	go c.drain()
}

// drain runs the queued tasks of a detached session, and its cleanup when
// one of them finishes it.
func (c *session) drain() {
	defer c.s.wg.Done()
	for {
		fn, ok := c.tasks.next()
		if !ok {
			return
		}
		fn()
		if c.finished {
			c.cleanup()
			return
		}
	}
}

func (c *session) start() {
	c.rec = registry.CallRecord{
		CallID:    c.origin.callID,
		Caller:    c.origin.remote.Addr(),
		Callee:    c.callee,
		StartedAt: time.Now().UTC(),
		Node:      c.s.cfg.Node,
	}
	c.s.wg.Add(1)
	go func() {
		defer c.s.wg.Done()
		// The registry has no deadline of its own; a call must not wait
		// for it forever.
		ctx, cancel := context.WithTimeout(c.ctx, c.s.cfg.TxTimeout)
		ts, err := c.routeTargets(ctx)
		cancel()
		c.post(func() { c.onRouted(ts, err) })
	}()
	c.writeRecord()
	c.saveDialogs()
	m, err := c.s.media.NewSession(c.ctx, c.origin.callID)
	if err != nil {
		var f *Failure
		if !errors.As(err, &f) {
			f = &Failure{Status: 503, Cause: CauseCongestion, Text: "no media resources", RetryAfter: 5, Err: err}
		}
		c.media = passthroughSession{}
		c.fail(f, false)
		return
	}
	c.media = m
	c.watchMedia(m)
}

// onRouted places a leg towards every target: one for a terminal, several
// when the call forks (first 2xx wins, RFC 3261 §16.7 in a B2BUA).
func (c *session) onRouted(ts []Target, err error) {
	if len(ts) > 0 {
		c.rec.TerminalID = ts[0].Terminal.ID
		c.rec.SCPOutcome = ts[0].SCPOutcome
	}
	if c.ending {
		c.maybeFinish()
		return
	}
	if err == nil && len(ts) == 0 {
		err = &Failure{Status: 480, Cause: CauseNoRoute, Text: "no route to the callee"}
	}
	if err != nil {
		c.fail(AsFailure(err), true)
		return
	}
	// Every leg exists before the first INVITE goes, so that a branch
	// failing at once is not taken for the last one.
	for _, t := range ts {
		if !c.prepare(t) {
			return
		}
	}
	for _, l := range c.uac {
		if c.ending {
			break
		}
		c.send(l)
	}
	if !c.ending {
		c.ringTimer = c.after(c.s.cfg.RingTimeout, c.onRingTimeout)
		c.watchBranches()
		c.saveDialogs() // the INVITEs' branches, to CANCEL them after a crash
	}
}

func (c *session) onRingTimeout() {
	if c.winner != nil || c.origin.final {
		return
	}
	// Q.850 19 when a terminal alerted and nobody picked up; 18 when none
	// even rang.
	f := &Failure{Status: 480, Cause: CauseNoUserResponding, Text: "no answer"}
	for _, l := range c.uac {
		if l.alerted {
			f.Cause = CauseNoAnswer
		}
	}
	c.fail(f, true)
	c.endCause = "ring timeout"
}

// legEnded ends l for reason and asks the bridge policy what that does to
// the session.
func (c *session) legEnded(l *leg, reason string) {
	l.end(reason)
	if c.ending {
		c.maybeFinish()
		return
	}
	if c.policy.legEnded(c, l) {
		c.end(reason)
		c.publishView()
		return
	}
	c.unbridge(l)
	c.nearEnded(l) // before Release: the far party's source moves first
	c.media.Release(l.id)
	c.maybeFinish()
}

// bridge makes a and b each other's peer.
func (c *session) bridge(a, b *leg) {
	c.peer[a], c.peer[b] = b, a
}

func (c *session) unbridge(l *leg) {
	if p := c.peer[l]; p != nil && c.peer[p] == l {
		delete(c.peer, p)
	}
	delete(c.peer, l)
}

// fail answers the caller with f, sends the caller an IM notice when notice
// is set, and ends the session.
func (c *session) fail(f *Failure, notice bool) {
	if !c.origin.final {
		c.respondUAS(c.origin, f)
		// A trunk's caller is on the telephone network: no IM notice.
		if notice && c.in.trunk == nil {
			c.s.sendNotice(&call{a: &c.origin.dialogState, callee: c.callee}, f)
		}
	}
	c.end(fmt.Sprintf("%d %s", f.Status, f.Text))
}

// end winds every leg down: CANCEL or BYE towards the legs we placed, BYE
// to the answered legs that reached us, then the loop finishes once nothing
// is in flight.
func (c *session) end(cause string) {
	if c.endCause == "" {
		c.endCause = cause
	}
	if c.ending {
		c.maybeFinish()
		return
	}
	c.ending = true
	// The call is over now, whatever its legs' BYEs take to be answered
	// (up to TxTimeout from a peer that is gone): the record ends here and
	// the media anchor lets the ports go.
	c.rec.EndedAt = time.Now().UTC()
	c.closeMedia()
	c.stopRing()
	c.stopTimers()
	c.releaseAcks()
	for _, u := range c.uas {
		if !u.final {
			c.respondUAS(u, &Failure{Status: 487, Cause: CauseNormalClearing, Text: cause})
		}
	}
	for _, l := range c.uac {
		switch {
		case l.up:
			c.bye(&l.leg, cause)
		case l.tx != nil && !l.final:
			c.cancelUAC(l)
		}
	}
	for _, u := range c.uas {
		if u.up {
			c.bye(&u.leg, cause)
		}
	}
	// Nothing may keep a session alive forever: a peer that never
	// answers our CANCEL or BYE (or a 487 that never comes) is given up
	// after Timer B's 64*T1.
	c.giveUp = c.after(c.s.cfg.TxTimeout, func() {
		c.log.Info("peer silent while the call ends: giving up", "cause", c.endCause)
		c.finished = true
	})
	c.maybeFinish()
}

// hangup ends the session from outside (shutdown); f is the caller's answer
// if the call was not yet answered.
func (c *session) hangup(cause string, f *Failure) {
	if !c.origin.final {
		c.respondUAS(c.origin, f)
	}
	c.end(cause)
}

func (c *session) maybeFinish() {
	if !c.ending {
		return
	}
	for _, l := range c.uac {
		if l.tx != nil && !l.txFinal && !l.txDone {
			// Our CANCEL is in flight, or the final response is still
			// on its way through the transaction, which must ACK it
			// first (RFC 3261 §17.1.1.3). Timer B and giveUp bound the
			// wait.
			return
		}
	}
	if c.pending > 0 {
		return
	}
	c.finished = true
}

func (c *session) stopRing() {
	if c.ringTimer != nil {
		c.ringTimer.Stop()
		c.ringTimer = nil
	}
}

// bye sends BYE on l once; the session waits for its answer before it ends.
func (c *session) bye(l *leg, cause string) {
	if l == nil || l.byeSent {
		return
	}
	l.byeSent = true
	if cause == "" {
		l.end("BYE sent")
	}
	req := l.newRequest(sipmsg.BYE, 0)
	if cause != "" {
		q850 := CauseNormalClearing
		if c.byeCause != 0 {
			q850 = c.byeCause
		}
		req.AppendHeader(sipmsg.NewHeader("Reason", reasonValue(q850, cause)))
	}
	l.end(cause)
	c.sendBye(req)
}

// sendBye sends a BYE and counts it until its answer comes.
func (c *session) sendBye(req *sipmsg.Request) {
	c.pending++
	c.s.request(c.ctx, req, nil, func(*sipmsg.Response, error) {
		c.post(func() {
			c.pending--
			c.maybeFinish()
		})
	})
}

// writeRecord hands the record's current state to the recorder; it never
// waits for the database.
func (c *session) writeRecord() { c.s.rec.save(&c.recState, c.rec) }

func (c *session) cleanup() {
	if !c.origin.final {
		c.respondUAS(c.origin, &Failure{Status: 500, Cause: CauseTemporaryFailure, Text: "call ended"})
	}
	c.stopRing()
	c.stopTimers()
	c.stopPaths()
	if c.giveUp != nil {
		c.giveUp.Stop()
	}
	// The record is final before the session stops counting as live, so
	// whoever waits for the server to go idle reads a finished record.
	if c.rec.EndedAt.IsZero() {
		c.rec.EndedAt = time.Now().UTC()
	}
	c.rec.EndCause = c.endCause
	c.closeMedia()
	c.writeRecord()
	// One info line per call, with what its record holds (no credential).
	// The log's attributes are built only for a log that takes them: at
	// warn level they were a dozen allocations per call for nothing.
	sum := c.rec.Summary()
	if c.s.log.Enabled(context.Background(), slog.LevelInfo) {
		c.s.log.Info("call ended", sum.LogAttrs()...)
	}
	c.s.cfg.Observer.CallEnded(sum)
	c.dropDialogs()
	var keys []dialogID
	for _, u := range c.uas {
		keys = append(keys, u.dialogID())
		u.end(c.endCause)
	}
	for _, l := range c.uac {
		keys = append(keys, l.dialogID())
		c.s.binv.Delete(l.callID)
		if l.tx != nil && !l.txFailed {
			// A transaction that took a non-2xx final is left to its
			// Timer D, so that it ACKs the terminal's retransmissions.
			l.tx.Terminate()
		}
		l.end(c.endCause)
	}
	c.s.removeSession(c, keys)
	c.cancel(errors.New(c.endCause))
	c.tasks.close()
	close(c.ended)
	c.s.wg.Done() // the count onInvite took for the session's life
}

// closeMedia takes the media counters into the record and closes the
// media session, once.
func (c *session) closeMedia() {
	if c.media == nil || c.mediaClosed {
		return
	}
	c.mediaClosed = true
	if st, ok := c.media.(MediaStatser); ok {
		if b, err := json.Marshal(c.recordStats(st.MediaStats())); err == nil {
			c.rec.Stats = string(b)
		}
	}
	if err := c.media.Close(); err != nil {
		c.log.Warn("media close", "err", err)
	}
}

func copyHeader(from, to sipmsg.Message, name string) {
	for _, h := range from.GetHeaders(name) {
		to.AppendHeader(sipmsg.NewHeader(h.Name(), h.Value()))
	}
}

// retryAfter is a Retry-After header for f, nil without one.
func retryAfter(f *Failure) sipmsg.Header {
	if f.RetryAfter <= 0 {
		return nil
	}
	return sipmsg.NewHeader("Retry-After", strconv.Itoa(f.RetryAfter))
}
