package sip

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/registry"
)

// serverReq is an in-dialog request waiting for the call's answer. Its
// handler goroutine blocks on done, because sipgo ends a transaction whose
// handler has returned.
type serverReq struct {
	req  *sipmsg.Request
	tx   sipmsg.ServerTransaction
	done chan struct{}

	mu       sync.Mutex
	answered bool
}

func (r *serverReq) respond(res *sipmsg.Response) {
	final := res.StatusCode >= 200
	r.mu.Lock()
	if r.answered {
		r.mu.Unlock()
		return
	}
	if final {
		r.answered = true
	}
	r.mu.Unlock()
	_ = r.tx.Respond(res)
	if final {
		close(r.done)
	}
}

// await2xx retransmits a 2xx to an INVITE until its ACK arrives (RFC 3261
// §13.3.1.4; RFC 6026 makes this the job of the transaction user).
type await2xx struct {
	tx       sipmsg.ServerTransaction
	res      *sipmsg.Response
	seq      uint32
	interval time.Duration
	deadline time.Time
	timer    *time.Timer
	reliable bool
}

// call is one call attempt: the caller's dialog (a), the dialog towards the
// terminal (b) and the state that bridges them. All fields are owned by the
// goroutine running run; other goroutines only post closures to tasks.
type call struct {
	s      *Server
	log    *slog.Logger
	tasks  *taskQueue
	ended  chan struct{}
	ctx    context.Context
	cancel context.CancelCauseFunc

	aReq   *sipmsg.Request // the caller's INVITE, with our To tag
	aTx    sipmsg.ServerTransaction
	a, b   *leg
	caller string // the caller's identity (authenticated user or From user)
	callee string // the callee's IM ID

	target Target
	media  MediaSession
	bInv   *sipmsg.Request
	bTx    sipmsg.ClientTransaction
	bAck   *sipmsg.Request
	bOK    *sipmsg.Response // the 2xx that answered the call

	// bTxFinal: the INVITE transaction has taken its final response; for
	// a non-2xx one it has ACKed it (RFC 3261 §17.1.1.3) and stays to
	// ACK retransmissions until Timer D.
	bTxFinal, bTxFailed bool

	bProvisional, bAlerted, bFinal, bAnswered, bTxDone bool
	aFinal, aAnswered                                  bool
	cancelWanted, cancelSent                           bool
	byeSent                                            map[*leg]bool
	reinvite                                           bool
	pending                                            int
	ending, finished                                   bool
	endCause                                           string
	byeCause                                           int // Q.850 cause of the BYEs we send; 0: 16

	ringTimer, giveUp *time.Timer
	awaits            map[*leg]*await2xx
	delayed           map[*leg]*delayedAck // ACKs held for the answer in the requester's ACK

	rec      registry.CallRecord
	recState callRecord
}

func newCall(s *Server, req *sipmsg.Request, tx sipmsg.ServerTransaction, caller, callee string) *call {
	aReq := req.Clone()
	localTag := sipmsg.GenerateTagN(16)
	aReq.To().Params.Add("tag", localTag)
	from, to := aReq.From(), aReq.To()
	remoteTag, _ := from.Params.Get("tag")
	a := &leg{
		name:      "caller",
		callID:    aReq.CallID().Value(),
		local:     *to.Address.Clone(),
		localName: to.DisplayName,
		localTag:  localTag,
		remote:    *from.Address.Clone(),
		remoteNm:  from.DisplayName,
		remoteTag: remoteTag,
		remoteSeq: aReq.CSeq().SeqNo,
		target:    *aReq.Contact().Address.Clone(),
		dest:      aReq.Source(),
		transport: aReq.Transport(),
		laddr:     s.laddr(aReq.Transport()),
	}
	a.localSeq = 1
	// RFC 3261 §12.1.1: the UAS route set is the Record-Route list, in order.
	for _, h := range aReq.GetHeaders("Record-Route") {
		a.routeSet = append(a.routeSet, h.Value())
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	c := &call{
		s:       s,
		log:     s.log.With("call", a.callID, "callee", callee),
		tasks:   newTaskQueue(),
		ended:   make(chan struct{}),
		ctx:     ctx,
		cancel:  cancel,
		aReq:    aReq,
		aTx:     tx,
		a:       a,
		caller:  caller,
		callee:  callee,
		byeSent: map[*leg]bool{},
		awaits:  map[*leg]*await2xx{},
	}
	if !tx.OnCancel(func(*sipmsg.Request) { c.post(c.onCallerCancel) }) {
		cancel(errors.New("cancelled before start"))
		return nil
	}
	s.addCall(c)
	s.setDialog(a.key(), c)
	return c
}

// post queues fn for the call's loop; false once the call has ended.
func (c *call) post(fn func()) bool {
	return c.tasks.push(fn)
}

func (c *call) after(d time.Duration, fn func()) *time.Timer {
	return time.AfterFunc(d, func() { c.post(fn) })
}

// run is the call's event loop.
func (c *call) run() {
	defer c.cleanup()
	c.start()
	for !c.finished {
		c.tasks.pop()()
	}
}

func (c *call) start() {
	c.rec = registry.CallRecord{
		CallID:    c.a.callID,
		Caller:    c.a.remote.Addr(),
		Callee:    c.callee,
		StartedAt: time.Now().UTC(),
	}
	c.s.wg.Add(1)
	go func() {
		defer c.s.wg.Done()
		// The registry has no deadline of its own; a call must not wait
		// for it forever.
		ctx, cancel := context.WithTimeout(c.ctx, c.s.cfg.TxTimeout)
		t, err := c.s.router.Route(ctx, c.callee)
		cancel()
		c.post(func() { c.onRouted(t, err) })
	}()
	c.writeRecord()
	m, err := c.s.media.NewSession(c.ctx, c.a.callID)
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

func (c *call) onRouted(t Target, err error) {
	c.target = t
	c.rec.TerminalID = t.Terminal.ID
	c.rec.SCPOutcome = t.SCPOutcome
	if c.ending {
		c.maybeFinish()
		return
	}
	if err != nil {
		c.fail(AsFailure(err), true)
		return
	}
	body := sdpBody(c.aReq)
	if len(body) > 0 {
		if body, err = c.media.Offer(c.ctx, Caller, body); err != nil {
			c.fail(offerFailure(err), false)
			return
		}
	}
	aFrom := c.aReq.From()
	callerUser := c.caller
	if callerUser == "" {
		callerUser = "anonymous"
	}
	b := &leg{
		name:      "callee",
		callID:    newCallID(),
		local:     sipmsg.Uri{Scheme: "sip", User: callerUser, Host: c.s.cfg.Domain},
		localName: aFrom.DisplayName,
		localTag:  sipmsg.GenerateTagN(16),
		remote:    sipmsg.Uri{Scheme: "sip", User: c.callee, Host: c.s.cfg.Domain},
		target:    t.URI,
		dest:      t.Dest,
		transport: t.Transport,
		laddr:     c.s.laddr(t.Transport),
	}
	c.b = b
	inv := b.newRequest(sipmsg.INVITE, 0)
	// Max-Forwards goes down by one across the B2BUA, so a routing loop
	// through several B2BUAs still ends in 483 (RFC 3261 §16.6 item 3).
	if mf := c.aReq.MaxForwards(); mf != nil {
		v := sipmsg.MaxForwardsHeader(mf.Val() - 1)
		inv.ReplaceHeader(&v)
	}
	inv.AppendHeader(c.s.contact(t.Transport))
	inv.AppendHeader(sipmsg.NewHeader("Allow", allowed))
	inv.AppendHeader(sipmsg.NewHeader("User-Agent", c.s.cfg.UserAgent))
	if len(body) > 0 {
		copyHeader(c.aReq, inv, "Content-Type")
	}
	inv.SetBody(body)
	c.bInv = inv
	c.s.setDialog(b.key(), c)
	c.s.binv.Store(b.callID, c)
	tx, err := c.s.cli.TransactionRequest(c.ctx, inv, c.s.addVia)
	if err != nil {
		c.bTxDone, c.bFinal = true, true
		c.fail(&Failure{Status: 502, Cause: CauseDestinationOutOfOrd, Text: "terminal unreachable", Err: err}, true)
		return
	}
	c.bTx = tx
	c.s.wg.Add(1)
	go func() {
		defer c.s.wg.Done()
		// Responses are taken in wire order by onWire; the transaction's
		// own copy of the final says the transaction is through with it:
		// sipgo sends the ACK of a non-2xx final before it passes the
		// response up. Ending the call (and terminating the transaction)
		// earlier would leave the terminal's 487 unACKed.
		for {
			select {
			case res := <-tx.Responses():
				if res.StatusCode >= 200 {
					c.post(func() { c.onCalleeTxFinal(tx, res) })
					return
				}
			case <-tx.Done():
				c.post(func() { c.onCalleeTxDone(tx) })
				return
			}
		}
	}()
	c.ringTimer = c.after(c.s.cfg.RingTimeout, c.onRingTimeout)
}

// onCalleeResponse takes the terminal's responses to our INVITE in the
// order they arrived.
func (c *call) onCalleeResponse(res *sipmsg.Response) {
	if c.bInv == nil || res.CSeq().SeqNo != c.bInv.CSeq().SeqNo {
		return // a response to a re-INVITE: its own transaction handles it
	}
	code := res.StatusCode
	switch {
	case code < 200:
		if c.bFinal {
			return
		}
		c.bProvisional = true
		if c.cancelWanted {
			c.sendCancel()
			return
		}
		if code == 100 || c.aFinal {
			return
		}
		if code == 180 || code == 183 {
			c.bAlerted = true
		}
		body := sdpBody(res)
		if len(body) > 0 {
			var err error
			rewrite := c.media.Answer
			if c.delayedOffer() {
				// Our INVITE had no offer: SDP in an unreliable 18x is the
				// terminal's offer, which its 2xx repeats (RFC 6337 §3.1.1,
				// §5.1).
				rewrite = c.media.Offer
			}
			if body, err = rewrite(c.ctx, Callee, body); err != nil {
				// Relayed without SDP: the caller still learns of the
				// progress, no media bypasses the anchor, and the 2xx,
				// which must repeat the answer, decides the call.
				c.log.Warn("early media answer rejected", "err", err)
				body = nil
			}
		}
		out := c.callerResponse(code, res.Reason, body)
		if len(body) > 0 {
			copyHeader(res, out, "Content-Type")
		}
		_ = c.aTx.Respond(out)
	case code < 300:
		if c.bAnswered {
			if res == c.bOK {
				return // the transaction's copy of the 2xx we took from the wire
			}
			// A retransmitted 2xx: our ACK was lost (RFC 3261 §13.2.2.4).
			if c.bAck != nil {
				_ = c.s.cli.WriteRequest(c.bAck, c.s.addVia)
			}
			return
		}
		c.bFinal, c.bAnswered = true, true
		c.bOK = res
		c.stopRing()
		if to := res.To(); to != nil {
			c.b.remoteTag, _ = to.Params.Get("tag")
		}
		c.b.updateTarget(res.Contact())
		// RFC 3261 §12.1.2: the UAC route set is the Record-Route list
		// in reverse order.
		rr := res.GetHeaders("Record-Route")
		c.b.routeSet = nil
		for i := len(rr) - 1; i >= 0; i-- {
			c.b.routeSet = append(c.b.routeSet, rr[i].Value())
		}
		c.b.remoteSeq = 0
		ack := c.b.newRequest(sipmsg.ACK, c.bInv.CSeq().SeqNo)
		body := sdpBody(res)
		offer := c.delayedOffer() && len(body) > 0
		if c.aFinal || c.cancelWanted || c.ending {
			// The caller gave up while the terminal answered: end the
			// terminal's fresh dialog (RFC 3261 §9.1's race).
			c.sendAck(ack)
			c.bye(c.b, "")
			c.maybeFinish()
			return
		}
		if len(body) > 0 {
			var err error
			if offer {
				// Our INVITE had no SDP: the 2xx carries the terminal's
				// offer, answered in the caller's ACK (RFC 3264 §2).
				body, err = c.media.Offer(c.ctx, Callee, body)
			} else {
				body, err = c.media.Answer(c.ctx, Callee, body)
			}
			if err != nil {
				// A 2xx without the answer would break RFC 3264 §5 and
				// the raw one would bypass the anchor: the terminal gets
				// ACK and BYE, the caller the anchor's failure.
				c.log.Warn("SDP of the 2xx rejected by media anchor", "offer", offer, "err", err)
				c.sendAck(ack)
				c.fail(answerFailure(err), false)
				return
			}
		}
		if offer {
			c.holdAck(c.a, Caller, c.aReq.CSeq().SeqNo, ack, c.b)
		} else {
			c.sendAck(ack)
		}
		out := c.callerResponse(code, res.Reason, body)
		if len(body) > 0 {
			copyHeader(res, out, "Content-Type")
		}
		c.aFinal, c.aAnswered = true, true
		if err := c.aTx.Respond(out); err != nil {
			c.log.Warn("200 to caller failed", "err", err)
		}
		c.expectAck(c.a, c.aTx, out)
		if a, ok := c.media.(interface{ Answered() }); ok {
			a.Answered()
		}
		c.rec.AnsweredAt = time.Now().UTC()
		c.writeRecord()
		c.log.Debug("call answered")
	default:
		if c.bFinal {
			return
		}
		c.bFinal = true
		c.stopRing()
		if c.aFinal || c.cancelWanted || c.ending {
			c.maybeFinish()
			return
		}
		c.fail(failureFromResponse(res), true)
	}
}

// failureFromResponse passes a terminal's failure through with its Q.850
// cause: its own Reason if it sent one, else RFC 3398's mapping.
func failureFromResponse(res *sipmsg.Response) *Failure {
	f := &Failure{Status: res.StatusCode, Text: res.Reason}
	if h := res.GetHeader("Reason"); h != nil {
		if cause, text := parseReasonCause(h.Value()); cause > 0 {
			f.Cause = cause
			if text != "" {
				f.Text = text
			}
		}
	}
	if f.Cause == 0 {
		f.Cause = causeForStatus(res.StatusCode)
	}
	if h := res.GetHeader("Retry-After"); h != nil {
		f.RetryAfter, _ = strconv.Atoi(strings.TrimSpace(strings.SplitN(h.Value(), ";", 2)[0]))
	}
	if f.Status == 401 || f.Status == 407 {
		// The terminal's own challenge means nothing to the caller.
		f.Status, f.Cause, f.Text = 403, CauseCallRejected, "terminal refused the call"
	}
	if f.Status >= 300 && f.Status < 400 {
		// A redirect would reveal the terminal's addresses.
		f.Status, f.Cause, f.Text = 480, CauseNoRoute, "terminal redirected the call"
	}
	return f
}

// onCalleeTxFinal runs when the INVITE transaction towards the terminal
// has taken its final response (and ACKed it when it is not a 2xx).
func (c *call) onCalleeTxFinal(tx sipmsg.ClientTransaction, res *sipmsg.Response) {
	if tx != c.bTx {
		return
	}
	c.bTxFinal = true
	c.bTxFailed = res.StatusCode >= 300
	if !c.bFinal {
		// The transaction layer's copy came before onWire's.
		c.onCalleeResponse(res)
	}
	c.maybeFinish()
}

func (c *call) onCalleeTxDone(tx sipmsg.ClientTransaction) {
	if tx != c.bTx {
		return
	}
	c.bTxDone = true
	if !c.bFinal {
		c.bFinal = true
		c.stopRing()
		if !c.aFinal && !c.cancelWanted && !c.ending {
			err := tx.Err()
			f := &Failure{Status: 502, Cause: CauseDestinationOutOfOrd, Text: "terminal unreachable", Err: err}
			if errors.Is(err, sipmsg.ErrTransactionTimeout) {
				f = &Failure{Status: 480, Cause: CauseNoUserResponding, Text: "terminal not responding", Err: err}
			}
			c.fail(f, true)
			return
		}
	}
	c.maybeFinish()
}

func (c *call) onRingTimeout() {
	if c.bFinal || c.aFinal {
		return
	}
	// Q.850 19 when the terminal alerted and nobody picked up; 18 when it
	// never even rang.
	f := &Failure{Status: 480, Cause: CauseNoUserResponding, Text: "no answer"}
	if c.bAlerted {
		f.Cause = CauseNoAnswer
	}
	c.fail(f, true)
	c.endCause = "ring timeout"
}

func (c *call) onCallerCancel() {
	if c.aFinal {
		return
	}
	// sipgo has answered the CANCEL with 200 and the INVITE with 487.
	c.aFinal = true
	c.end("caller CANCEL")
}

// fail answers the caller with f, sends the caller an IM notice when notice
// is set, and ends the call.
func (c *call) fail(f *Failure, notice bool) {
	if !c.aFinal {
		c.respondCaller(f)
		if notice {
			c.s.sendNotice(c, f)
		}
	}
	c.end(fmt.Sprintf("%d %s", f.Status, f.Text))
}

// end winds both legs down: CANCEL or BYE towards the terminal, BYE to an
// answered caller, then the loop finishes once nothing is in flight.
func (c *call) end(cause string) {
	if c.endCause == "" {
		c.endCause = cause
	}
	if c.ending {
		c.maybeFinish()
		return
	}
	c.ending = true
	c.stopRing()
	c.releaseAcks()
	if !c.aFinal {
		c.respondCaller(&Failure{Status: 487, Cause: CauseNormalClearing, Text: cause})
	}
	switch {
	case c.bAnswered:
		c.bye(c.b, cause)
	case c.bTx != nil && !c.bFinal:
		c.cancelCallee()
	}
	if c.aAnswered {
		c.bye(c.a, cause)
	}
	// Nothing may keep a call alive forever: a peer that never answers
	// our CANCEL or BYE (or a 487 that never comes) is given up after
	// Timer B's 64*T1.
	c.giveUp = c.after(c.s.cfg.TxTimeout, func() {
		c.log.Info("peer silent while the call ends: giving up", "cause", c.endCause)
		c.finished = true
	})
	c.maybeFinish()
}

// hangup ends the call from outside (shutdown); f is the caller's answer if
// the call was not yet answered.
func (c *call) hangup(cause string, f *Failure) {
	if !c.aFinal {
		c.respondCaller(f)
	}
	c.end(cause)
}

func (c *call) maybeFinish() {
	if !c.ending {
		return
	}
	if c.bTx != nil && !c.bTxFinal && !c.bTxDone {
		// Our CANCEL is in flight, or the final response is still on its
		// way through the transaction, which must ACK it first (RFC 3261
		// §17.1.1.3). Timer B and giveUp bound the wait.
		return
	}
	if c.pending > 0 {
		return
	}
	c.finished = true
}

func (c *call) stopRing() {
	if c.ringTimer != nil {
		c.ringTimer.Stop()
		c.ringTimer = nil
	}
}

func (c *call) cancelCallee() {
	c.cancelWanted = true
	// RFC 3261 §9.1: no CANCEL before a provisional response; once one
	// arrives onCalleeResponse sends it.
	if c.bProvisional {
		c.sendCancel()
	}
}

func (c *call) sendCancel() {
	if c.cancelSent || c.bInv == nil {
		return
	}
	c.cancelSent = true
	inv := c.bInv
	// RFC 3261 §9.1: same Request-URI, Call-ID, From, To, CSeq number and
	// top Via as the INVITE.
	req := sipmsg.NewRequest(sipmsg.CANCEL, *inv.Recipient.Clone())
	req.AppendHeader(sipmsg.HeaderClone(inv.Via()))
	req.AppendHeader(sipmsg.HeaderClone(inv.From()))
	req.AppendHeader(sipmsg.HeaderClone(inv.To()))
	req.AppendHeader(sipmsg.HeaderClone(inv.CallID()))
	req.AppendHeader(&sipmsg.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sipmsg.CANCEL})
	mf := sipmsg.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	sipmsg.CopyHeaders("Route", inv, req)
	req.SetTransport(inv.Transport())
	req.SetDestination(inv.Destination())
	req.Laddr = inv.Laddr
	c.s.request(c.ctx, req, nil, func(*sipmsg.Response, error) {})
}

// bye sends BYE on l once; the call waits for its answer before it ends.
func (c *call) bye(l *leg, cause string) {
	if l == nil || c.byeSent[l] {
		return
	}
	c.byeSent[l] = true
	if aw := c.awaits[l]; aw != nil {
		aw.timer.Stop()
		delete(c.awaits, l)
	}
	req := l.newRequest(sipmsg.BYE, 0)
	if cause != "" {
		q850 := CauseNormalClearing
		if c.byeCause != 0 {
			q850 = c.byeCause
		}
		req.AppendHeader(sipmsg.NewHeader("Reason", reasonValue(q850, cause)))
	}
	c.pending++
	c.s.request(c.ctx, req, nil, func(*sipmsg.Response, error) {
		c.post(func() {
			c.pending--
			c.maybeFinish()
		})
	})
}

// respondCaller sends a final failure to the caller's INVITE.
func (c *call) respondCaller(f *Failure) {
	c.aFinal = true
	res := c.callerResponse(f.Status, reasonPhrase(f.Status), nil)
	res.AppendHeader(sipmsg.NewHeader("Reason", f.Reason()))
	if f.RetryAfter > 0 {
		res.AppendHeader(sipmsg.NewHeader("Retry-After", strconv.Itoa(f.RetryAfter)))
	}
	addWarning(res, f)
	if err := c.aTx.Respond(res); err != nil {
		c.log.Debug("answer to caller failed", "status", f.Status, "err", err)
	}
	if f.Status >= 500 && f.Err != nil {
		// Our side failed (SCP, registry, media): the operator needs the
		// underlying error, which the caller's answer does not carry.
		c.log.Warn("call failed", "status", f.Status, "cause", f.Cause, "text", f.Text, "err", f.Err)
		return
	}
	c.log.Debug("call failed", "status", f.Status, "cause", f.Cause, "text", f.Text)
}

// callerResponse builds a response to the caller's INVITE that carries
// nothing of the terminal's: our tag, our Contact, the given body.
func (c *call) callerResponse(code int, phrase string, body []byte) *sipmsg.Response {
	if phrase == "" {
		phrase = reasonPhrase(code)
	}
	res := sipmsg.NewResponseFromRequest(c.aReq, code, phrase, body)
	if code > 100 && code < 300 {
		res.AppendHeader(c.s.contact(c.a.transport))
		res.AppendHeader(sipmsg.NewHeader("Allow", allowed))
	}
	res.AppendHeader(sipmsg.NewHeader("Server", c.s.cfg.UserAgent))
	return res
}

// expectAck starts retransmitting res, a 2xx to an INVITE from l, until
// l's ACK arrives; without one in AckTimeout both legs end (RFC 3261
// §13.3.1.4).
func (c *call) expectAck(l *leg, tx sipmsg.ServerTransaction, res *sipmsg.Response) {
	aw := &await2xx{
		tx:       tx,
		res:      res,
		seq:      res.CSeq().SeqNo,
		interval: sipmsg.T1,
		deadline: time.Now().Add(c.s.cfg.AckTimeout),
		reliable: sipmsg.IsReliable(l.transport),
	}
	if old := c.awaits[l]; old != nil {
		old.timer.Stop()
	}
	c.awaits[l] = aw
	var tick func()
	tick = func() {
		if c.awaits[l] != aw {
			return
		}
		if time.Now().After(aw.deadline) {
			delete(c.awaits, l)
			c.log.Info("no ACK for 2xx: ending call", "leg", l.name)
			c.end("ACK timeout")
			return
		}
		wait := time.Until(aw.deadline)
		if !aw.reliable {
			_ = aw.tx.Respond(aw.res)
			aw.interval = min(2*aw.interval, sipmsg.T2)
			wait = min(wait, aw.interval)
		}
		aw.timer = c.after(wait, tick)
	}
	first := c.s.cfg.AckTimeout
	if !aw.reliable {
		first = min(first, aw.interval)
	}
	aw.timer = c.after(first, tick)
}

// onRequest handles a request within one of the call's dialogs. sr is nil
// for an ACK.
func (c *call) onRequest(req *sipmsg.Request, sr *serverReq) {
	from, to, side := c.legOf(req)
	if from == nil {
		if sr != nil {
			sr.respond(c.response(sr.req, 481, "", nil))
		}
		return
	}
	seq := req.CSeq().SeqNo
	if req.IsAck() {
		if aw := c.awaits[from]; aw != nil && aw.seq == seq {
			aw.timer.Stop()
			delete(c.awaits, from)
		}
		c.onDelayedAnswer(from, req)
		return
	}
	// RFC 3261 §12.2.2: a CSeq lower than the last one is out of order.
	if seq < from.remoteSeq || (seq == from.remoteSeq && req.Method != sipmsg.INVITE) {
		sr.respond(c.response(req, 500, "CSeq out of order", nil))
		return
	}
	from.remoteSeq = seq
	switch req.Method {
	case sipmsg.BYE:
		sr.respond(c.response(req, 200, "", nil))
		if from == c.a && !c.aFinal {
			// A BYE on the early dialog: the INVITE ends with 487.
			c.respondCaller(&Failure{Status: 487, Cause: CauseNormalClearing, Text: "caller BYE"})
		}
		c.byeSent[from] = true // that dialog is over; no BYE back
		delete(c.awaits, from)
		c.end(from.name + " BYE")
		return
	}
	if c.ending || !c.aAnswered || !c.bAnswered || to == nil {
		sr.respond(c.response(req, 481, "call not established", nil))
		return
	}
	if req.Method == sipmsg.INVITE || req.Method == sipmsg.UPDATE {
		if c.reinvite {
			// RFC 3261 §14.2: one offer at a time.
			sr.respond(c.response(req, 491, "", nil))
			return
		}
		c.reinvite = true
		from.updateTarget(req.Contact())
	}
	c.relay(from, to, side, sr)
}

// legOf says which leg req came on (by our tag), the other leg, and the side
// it came from.
func (c *call) legOf(req *sipmsg.Request) (from, to *leg, side Side) {
	tag, _ := req.To().Params.Get("tag")
	switch {
	case tag == c.a.localTag:
		return c.a, c.b, Caller
	case c.b != nil && tag == c.b.localTag:
		return c.b, c.a, Callee
	}
	return nil, nil, Caller
}

// relayHeaders are copied from a relayed in-dialog request; everything else
// is rebuilt so neither side learns the other's topology.
var relayHeaders = []string{"Content-Type", "Content-Disposition", "Info-Package", "Event", "Subscription-State", "Reason"}

// relay forwards an in-dialog request to the other leg and its answer back.
func (c *call) relay(from, to *leg, side Side, sr *serverReq) {
	req := sr.req
	out := to.newRequest(req.Method, 0)
	body := sdpBody(req)
	for _, h := range relayHeaders {
		if len(body) == 0 && (h == "Content-Type" || h == "Content-Disposition") {
			continue // they describe a body that is not there
		}
		copyHeader(req, out, h)
	}
	isOffer := req.Method == sipmsg.INVITE || req.Method == sipmsg.UPDATE
	if isOffer {
		out.AppendHeader(c.s.contact(to.transport))
		if len(body) > 0 {
			var err error
			if body, err = c.media.Offer(c.ctx, side, body); err != nil {
				c.reinvite = false
				f := offerFailure(err)
				res := c.response(req, f.Status, "", nil)
				res.AppendHeader(sipmsg.NewHeader("Reason", f.Reason()))
				addWarning(res, f)
				sr.respond(res)
				return
			}
		}
	}
	out.SetBody(body)
	// A re-INVITE answered with a provisional only would keep its
	// transaction open without Timer B (RFC 3261 §17.1.1.2); bound it.
	ctx, cancel := context.WithTimeout(c.ctx, c.s.cfg.TxTimeout)
	c.s.request(ctx, out, nil, func(res *sipmsg.Response, err error) {
		cancel()
		c.post(func() { c.onRelayed(from, to, side, sr, out, res, err) })
	})
}

func (c *call) onRelayed(from, to *leg, side Side, sr *serverReq, out *sipmsg.Request, res *sipmsg.Response, err error) {
	req := sr.req
	isOffer := req.Method == sipmsg.INVITE || req.Method == sipmsg.UPDATE
	if isOffer {
		c.reinvite = false
	}
	if err != nil {
		sr.respond(c.response(req, 408, "no answer from the other side", nil))
		return
	}
	body := sdpBody(res)
	hadOffer := len(sdpBody(out)) > 0
	var ack *sipmsg.Request
	if req.Method == sipmsg.INVITE && res.StatusCode >= 200 && res.StatusCode < 300 {
		to.updateTarget(res.Contact())
		ack = to.newRequest(sipmsg.ACK, out.CSeq().SeqNo)
	}
	// A re-INVITE without SDP gets the other side's offer in the 2xx; the
	// requester answers it in its ACK (RFC 3261 §14.1, RFC 3264 §2).
	offer := ack != nil && !hadOffer && len(body) > 0
	if ack != nil && !offer {
		// ACK the other side's 2xx at once; the ACK of our own 2xx from
		// this side is absorbed by expectAck.
		c.sendAck(ack)
	}
	if isOffer && !hadOffer && !offer && len(body) > 0 {
		// An answer needs an offer (RFC 3264 §4; RFC 3311 §5.2 for
		// UPDATE): SDP in the 2xx to an UPDATE without one is dropped
		// rather than relayed past the anchor.
		body = nil
	}
	if isOffer && res.StatusCode < 300 && len(body) > 0 {
		other := side.other()
		rewrite := c.media.Answer
		if offer {
			rewrite = c.media.Offer
		}
		b, err := rewrite(c.ctx, other, body)
		if err != nil {
			if offer {
				// The other side's 2xx is ACKed all the same; the
				// requester keeps the session it had.
				c.sendAck(ack)
			}
			// Relaying the raw answer would leak the other party's
			// address and let media bypass the anchor. The requester gets
			// a failure and keeps the session it had (RFC 3261 §14.1);
			// the call goes on.
			c.log.Warn("re-INVITE answer rejected by media anchor", "err", err)
			f := answerFailure(err)
			res := c.response(req, f.Status, "", nil)
			res.AppendHeader(sipmsg.NewHeader("Reason", f.Reason()))
			addWarning(res, f)
			sr.respond(res)
			return
		}
		body = b
	}
	out2 := c.response(req, res.StatusCode, res.Reason, body)
	if len(body) > 0 {
		copyHeader(res, out2, "Content-Type")
	}
	copyHeader(res, out2, "Reason")
	if isOffer && res.StatusCode < 300 {
		out2.AppendHeader(c.s.contact(from.transport))
	}
	if offer {
		c.holdAck(from, side, req.CSeq().SeqNo, ack, to)
	}
	sr.respond(out2)
	if req.Method == sipmsg.INVITE && res.StatusCode < 300 {
		c.expectAck(from, sr.tx, out2)
	}
	// RFC 5057 §5.1: 481 or 408 to an in-dialog request ends the dialog.
	if res.StatusCode == 481 || res.StatusCode == 408 {
		c.byeSent[to] = true
		c.end(fmt.Sprintf("%s dialog lost (%d)", to.name, res.StatusCode))
	}
}

// response builds a response to an in-dialog request.
func (c *call) response(req *sipmsg.Request, code int, phrase string, body []byte) *sipmsg.Response {
	if phrase == "" || code >= 400 && phrase != reasonPhrase(code) && !strings.Contains(phrase, " ") {
		phrase = reasonPhrase(code)
	}
	res := sipmsg.NewResponseFromRequest(req, code, phrase, body)
	res.AppendHeader(sipmsg.NewHeader("Server", c.s.cfg.UserAgent))
	return res
}

// writeRecord hands the record's current state to the recorder; it never
// waits for the database.
func (c *call) writeRecord() { c.s.rec.save(&c.recState, c.rec) }

func (c *call) cleanup() {
	if !c.aFinal {
		c.respondCaller(&Failure{Status: 500, Cause: CauseTemporaryFailure, Text: "call ended"})
	}
	c.stopRing()
	if c.giveUp != nil {
		c.giveUp.Stop()
	}
	for _, aw := range c.awaits {
		aw.timer.Stop()
	}
	// The record is final before the call stops counting as live, so
	// whoever waits for the server to go idle reads a finished record.
	c.rec.EndedAt = time.Now().UTC()
	c.rec.EndCause = c.endCause
	if rs, ok := c.media.(*RTPSession); ok {
		if b, err := json.Marshal(rs.Stats()); err == nil {
			c.rec.Stats = string(b)
		}
	}
	c.writeRecord()
	keys := []string{c.a.key()}
	if c.b != nil {
		keys = append(keys, c.b.key())
		c.s.binv.Delete(c.b.callID)
	}
	c.s.removeCall(c, keys)
	if c.bTx != nil && !c.bTxFailed {
		// A transaction that took a non-2xx final is left to its Timer D,
		// so that it ACKs the terminal's retransmissions of it.
		c.bTx.Terminate()
	}
	if c.media != nil {
		if err := c.media.Close(); err != nil {
			c.log.Warn("media close", "err", err)
		}
	}
	c.cancel(errors.New(c.endCause))
	c.tasks.close()
	close(c.ended)
	c.log.Debug("call ended", "cause", c.endCause)
}

func copyHeader(from, to sipmsg.Message, name string) {
	for _, h := range from.GetHeaders(name) {
		to.AppendHeader(sipmsg.NewHeader(h.Name(), h.Value()))
	}
}

// sendAck sends an ACK of a 2xx (outside any transaction, RFC 3261
// §13.2.2.4); an ACK of the call's own 2xx is kept to answer its
// retransmissions.
func (c *call) sendAck(ack *sipmsg.Request) {
	if c.bInv != nil && ack.CSeq().SeqNo == c.bInv.CSeq().SeqNo && ack.CallID().Value() == c.b.callID {
		c.bAck = ack
	}
	if err := c.s.cli.WriteRequest(ack, c.s.addVia); err != nil {
		c.log.Warn("ACK failed", "call-id", ack.CallID().Value(), "err", err)
	}
}

// delayedOffer tells whether our INVITE to the terminal went without SDP,
// so that the terminal makes the offer (RFC 3261 §13.2.1).
func (c *call) delayedOffer() bool {
	return c.bInv != nil && len(c.bInv.Body()) == 0
}
