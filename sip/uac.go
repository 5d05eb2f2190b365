package sip

import (
	"errors"
	"strconv"
	"strings"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

// prepare makes a leg towards t with its INVITE; false when the session
// has failed doing so.
func (c *session) prepare(t Target) bool {
	o := c.origin
	id := LegID("uac-" + strconv.Itoa(len(c.uac)+1))
	body := sdpBody(o.inv)
	if len(body) > 0 {
		var err error
		if body, err = c.media.Offer(c.ctx, o.id, id, body); err != nil {
			c.fail(offerFailure(err), false)
			return false
		}
	}
	callerUser := c.caller
	if callerUser == "" {
		callerUser = "anonymous"
	}
	l := &uacLeg{target: t}
	l.leg = newLeg(id, "callee", dialogState{
		callID:    newCallID(),
		local:     sipmsg.Uri{Scheme: "sip", User: callerUser, Host: c.s.cfg.Domain},
		localName: o.inv.From().DisplayName,
		localTag:  sipmsg.GenerateTagN(16),
		remote:    sipmsg.Uri{Scheme: "sip", User: c.callee, Host: c.s.cfg.Domain},
		target:    t.URI,
		dest:      t.Dest,
		transport: t.Transport,
		laddr:     c.s.laddr(t.Transport),
	})
	l.leg.uac = l
	l.se, l.minSE = c.s.cfg.SessionExpires, c.s.cfg.MinSE
	c.uac = append(c.uac, l)
	l.inv = c.buildInvite(l, body)
	return true
}

// buildInvite makes l's INVITE with body, at l's next CSeq.
func (c *session) buildInvite(l *uacLeg, body []byte) *sipmsg.Request {
	o := c.origin
	inv := l.newRequest(sipmsg.INVITE, 0)
	// Max-Forwards goes down by one across the B2BUA, so a routing loop
	// through several B2BUAs still ends in 483 (RFC 3261 §16.6 item 3).
	if mf := o.inv.MaxForwards(); mf != nil {
		v := sipmsg.MaxForwardsHeader(mf.Val() - 1)
		inv.ReplaceHeader(&v)
	}
	inv.AppendHeader(c.s.contact(l.target.Transport))
	inv.AppendHeader(sipmsg.NewHeader("Allow", allowed))
	// 100rel only with an offer: an offer in a reliable provisional
	// needs its answer in our PRACK (RFC 3262 §5), which only the caller
	// could give.
	if len(body) > 0 {
		inv.AppendHeader(sipmsg.NewHeader("Supported", supportedHeader))
	} else {
		inv.AppendHeader(sipmsg.NewHeader("Supported", tagTimer))
	}
	c.timerRequestHeaders(inv, l.se, l.minSE)
	inv.AppendHeader(sipmsg.NewHeader("User-Agent", c.s.cfg.UserAgent))
	if len(body) > 0 {
		copyHeader(o.inv, inv, "Content-Type")
	}
	inv.SetBody(body)
	l.localSDP = body
	return inv
}

// send sends l's INVITE.
func (c *session) send(l *uacLeg) {
	c.s.setDialog(l.dialogID(), c)
	c.s.binv.Store(l.callID, c)
	tx, err := c.s.cli.TransactionRequest(c.ctx, l.inv, c.s.addVia)
	if err != nil {
		l.txDone = true
		c.uacFailed(l, &Failure{Status: 502, Cause: CauseDestinationOutOfOrd, Text: "terminal unreachable", Err: err})
		return
	}
	l.tx = tx
	c.s.wg.Add(1)
	go func() {
		defer c.s.wg.Done()
		// Responses are taken in wire order by onWire; the transaction's
		// own copy of the final says the transaction is through with it:
		// sipgo sends the ACK of a non-2xx final before it passes the
		// response up. Ending the session (and terminating the
		// transaction) earlier would leave the terminal's 487 unACKed.
		for {
			select {
			case res := <-tx.Responses():
				if res.StatusCode >= 200 {
					c.post(func() { c.onUACTxFinal(l, tx, res) })
					return
				}
			case <-tx.Done():
				c.post(func() { c.onUACTxDone(l, tx) })
				return
			}
		}
	}()
}

// uacOf is the placed leg with Call-ID callID.
func (c *session) uacOf(callID string) *uacLeg {
	for _, l := range c.uac {
		if l.callID == callID {
			return l
		}
	}
	return nil
}

// onWireResponse takes a response to one of our INVITEs in the order it
// arrived on the wire.
func (c *session) onWireResponse(res *sipmsg.Response) {
	if l := c.uacOf(res.CallID().Value()); l != nil {
		c.onUACResponse(l, res)
	}
}

// onUACResponse takes l's responses to our INVITE.
func (c *session) onUACResponse(l *uacLeg, res *sipmsg.Response) {
	if l.inv == nil || res.CSeq().SeqNo != l.inv.CSeq().SeqNo {
		return // a response to a re-INVITE: its own transaction handles it
	}
	o := c.origin
	code := res.StatusCode
	switch {
	case code < 200:
		if l.final {
			return
		}
		if !c.takeReliable(l, res) {
			return // a retransmission, or out of sequence (RFC 3262 §4)
		}
		l.provisional = true
		if l.cancelWanted {
			c.sendCancel(l)
			return
		}
		if code == 100 || o.final {
			return
		}
		if code == 180 || code == 183 {
			l.alerted = true
			if c.rec.RingingAt.IsZero() {
				// Post-dial delay ends here; written with the next change
				// of the record (answer or end), not a write of its own.
				c.rec.RingingAt = time.Now().UTC()
			}
		}
		body := sdpBody(res)
		if l.delayedOffer() && o.rel.on {
			// The terminal's offer would reach the caller reliably and
			// want its answer in the PRACK, which the terminal never
			// sees: the 2xx carries the offer instead.
			body = nil
		}
		if len(body) > 0 {
			var err error
			rewrite := c.media.Answer
			if l.delayedOffer() {
				// Our INVITE had no offer: SDP in an unreliable 18x is the
				// terminal's offer, which its 2xx repeats (RFC 6337 §3.1.1,
				// §5.1).
				rewrite = c.media.Offer
			}
			if body, err = rewrite(c.ctx, l.id, o.id, body); err != nil {
				// Relayed without SDP: the caller still learns of the
				// progress, no media bypasses the anchor, and the 2xx,
				// which must repeat the answer, decides the call.
				c.log.Warn("early media answer rejected", "err", err)
				body = nil
			}
			if body != nil && !l.delayedOffer() {
				l.earlyAnswer = body
			}
		}
		out := c.uasResponse(o, code, res.Reason, body)
		if len(body) > 0 {
			copyHeader(res, out, "Content-Type")
		}
		c.provisionalToCaller(o, out)
		c.provisionalToPaths(code, res.Reason) // pathsignal.go
	case code < 300:
		if l.up {
			c.onUAC2xxAgain(l, res)
			return
		}
		c.onUAC2xx(l, res)
	default:
		if l.final {
			return
		}
		if code == 422 && c.canRetryMinSE(l, res) {
			// Sent again once the transaction has ACKed the 422 (its own
			// copy comes after the ACK), so the terminal sees the ACK
			// before the new INVITE.
			if l.txFinal {
				c.retryMinSE(l, res)
			}
			return
		}
		l.final = true
		c.uacFailed(l, failureFromResponse(res))
	}
}

// onUAC2xx takes the 2xx that confirms l's dialog.
func (c *session) onUAC2xx(l *uacLeg, res *sipmsg.Response) {
	o := c.origin
	l.final, l.up = true, true
	l.ok = res
	l.confirm(res)
	ack := l.newRequest(sipmsg.ACK, l.inv.CSeq().SeqNo)
	if o.final || l.cancelWanted || c.ending || c.winner != nil {
		// The caller gave up, or another branch won, while this one
		// answered: end its fresh dialog (RFC 3261 §9.1's race).
		c.sendAck(&l.leg, ack)
		c.bye(&l.leg, "")
		c.maybeFinish()
		return
	}
	c.stopRing()
	body := sdpBody(res)
	offer := l.delayedOffer() && len(body) > 0
	if len(body) > 0 {
		var err error
		if offer {
			// Our INVITE had no SDP: the 2xx carries the terminal's
			// offer, answered in the caller's ACK (RFC 3264 §2).
			body, err = c.media.Offer(c.ctx, l.id, o.id, body)
		} else {
			body, err = c.media.Answer(c.ctx, l.id, o.id, body)
		}
		if err != nil {
			// A 2xx without the answer would break RFC 3264 §5 and the
			// raw one would bypass the anchor: the terminal gets ACK and
			// BYE, the caller the anchor's failure.
			c.log.Warn("SDP of the 2xx rejected by media anchor", "offer", offer, "err", err)
			c.sendAck(&l.leg, ack)
			c.fail(answerFailure(err), false)
			return
		}
	}
	c.winner = l
	c.bridge(&o.leg, &l.leg)
	l.remoteSDP = sdpBody(res)
	c.timerFromAnswer(l, res)
	c.startTimer(&l.leg)
	c.startCallLimit()
	for _, loser := range c.policy.answered(c, l) {
		c.log.Debug("fork lost", "leg", loser.id)
		c.cancelUAC(loser)
		c.media.Release(loser.id)
	}
	if offer {
		c.holdAck(&o.leg, o.inv.CSeq().SeqNo, ack, &l.leg)
	} else {
		c.sendAck(&l.leg, ack)
	}
	switch {
	case offer:
	case o.rel.answered:
		// The caller has the answer from a reliable provisional; the
		// exchange is over (RFC 3262 §5), so the 2xx carries none.
		body = nil
	case len(body) == 0 && l.earlyAnswer != nil:
		// The terminal ended the exchange in a reliable 18x and its 2xx
		// has no SDP; the caller got that 18x unreliably, so its 2xx
		// carries the answer (RFC 3261 §13.3.1).
		body = l.earlyAnswer
		if res.GetHeader("Content-Type") == nil {
			res.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
		}
	}
	out := c.uasResponse(o, res.StatusCode, res.Reason, body)
	if len(body) > 0 {
		copyHeader(res, out, "Content-Type")
	}
	c.timerAnswerCaller(o, out)
	c.answerCaller(o, out)
	c.mediaAnswered()
	c.farAnswered()
	c.rec.AnsweredAt = time.Now().UTC()
	c.rec.TerminalID = l.target.Terminal.ID // the branch that took the call
	c.writeRecord()
	c.saveDialogs()
	c.compactLater() // compact.go
	c.log.Debug("call answered", "leg", l.id)
}

// onUAC2xxAgain takes a 2xx on a leg that has its dialog already: the same
// 2xx again, or one from another dialog of the same INVITE.
func (c *session) onUAC2xxAgain(l *uacLeg, res *sipmsg.Response) {
	if res == l.ok {
		return // the transaction's copy of the 2xx we took from the wire
	}
	tag := ""
	if to := res.To(); to != nil {
		tag, _ = to.Params.Get("tag")
	}
	if tag == l.remoteTag {
		// A retransmitted 2xx: our ACK was lost (RFC 3261 §13.2.2.4).
		if l.ack != nil {
			c.writeAck(l.ack)
		}
		return
	}
	if ack := l.strays[tag]; ack != nil {
		c.writeAck(ack)
		return
	}
	// A forking proxy downstream let a second callee answer: RFC 3261
	// §13.2.2.4 has the UAC ACK that dialog and end it with BYE, since
	// the call has its dialog already.
	d := l.dialogState
	d.localSeq = l.inv.CSeq().SeqNo
	d.confirm(res)
	ack := d.newRequest(sipmsg.ACK, l.inv.CSeq().SeqNo)
	if l.strays == nil {
		l.strays = map[string]*sipmsg.Request{}
	}
	l.strays[tag] = ack
	c.writeAck(ack)
	c.log.Info("2xx of a second dialog: ACK and BYE", "leg", l.id)
	c.sendBye(d.newRequest(sipmsg.BYE, 0))
}

// confirm takes the dialog's state from the 2xx that confirms it.
func (d *dialogState) confirm(res *sipmsg.Response) {
	if to := res.To(); to != nil {
		d.remoteTag, _ = to.Params.Get("tag")
	}
	d.updateTarget(res.Contact())
	// RFC 3261 §12.1.2: the UAC route set is the Record-Route list in
	// reverse order.
	rr := res.GetHeaders("Record-Route")
	d.routeSet = nil
	for i := len(rr) - 1; i >= 0; i-- {
		d.routeSet = append(d.routeSet, rr[i].Value())
	}
	d.remoteSeq = 0
}

// uacFailed takes l's failure to answer: the session fails with the best
// failure of its branches once the bridge policy says none is left.
func (c *session) uacFailed(l *uacLeg, f *Failure) {
	l.final = true
	l.end(f.Text)
	if c.origin.final || l.cancelWanted || c.ending {
		c.maybeFinish()
		return
	}
	c.forkFailure = betterFailure(c.forkFailure, f)
	// RFC 3261 §16.7 step 5: a 6xx ends the fork, the other branches are
	// CANCELed.
	if f.Status >= 600 || c.policy.legEnded(c, &l.leg) {
		c.stopRing()
		c.fail(c.forkFailure, true)
		return
	}
	c.log.Debug("branch failed", "leg", l.id, "status", f.Status, "err", f.Err)
	c.media.Release(l.id)
	c.maybeFinish()
}

// betterFailure picks the answer a forked call gives the caller (RFC 3261
// §16.7 step 6): a 6xx, else the lowest class; the first of a class.
func betterFailure(best, f *Failure) *Failure {
	switch {
	case best == nil:
		return f
	case best.Status >= 600:
		return best
	case f.Status >= 600 || f.Status/100 < best.Status/100:
		return f
	}
	return best
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
	if f.Status == 422 {
		// Its Min-SE is the terminal's, not ours; the caller's interval
		// was fine with us (RFC 4028 §7.4 retries once).
		f.Status, f.Cause, f.Text = 500, CauseInterworking, "terminal refused the session interval"
	}
	if f.Status >= 300 && f.Status < 400 {
		// A redirect would reveal the terminal's addresses.
		f.Status, f.Cause, f.Text = 480, CauseNoRoute, "terminal redirected the call"
	}
	return f
}

// onUACTxFinal runs when l's INVITE transaction has taken its final
// response (and ACKed it when it is not a 2xx).
func (c *session) onUACTxFinal(l *uacLeg, tx sipmsg.ClientTransaction, res *sipmsg.Response) {
	if tx != l.tx {
		return
	}
	l.txFinal = true
	l.txFailed = res.StatusCode >= 300
	if !l.final {
		// The transaction layer's copy came before onWire's.
		c.onUACResponse(l, res)
	}
	c.maybeFinish()
}

func (c *session) onUACTxDone(l *uacLeg, tx sipmsg.ClientTransaction) {
	if tx != l.tx {
		return
	}
	l.txDone = true
	if !l.final {
		err := tx.Err()
		f := &Failure{Status: 502, Cause: CauseDestinationOutOfOrd, Text: "terminal unreachable", Err: err}
		if errors.Is(err, sipmsg.ErrTransactionTimeout) {
			f = &Failure{Status: 480, Cause: CauseNoUserResponding, Text: "terminal not responding", Err: err}
		}
		c.uacFailed(l, f)
		return
	}
	c.maybeFinish()
}

// cancelUAC gives up on l's INVITE.
func (c *session) cancelUAC(l *uacLeg) {
	l.cancelWanted = true
	// RFC 3261 §9.1: no CANCEL before a provisional response; once one
	// arrives onUACResponse sends it.
	if l.provisional {
		c.sendCancel(l)
	}
}

func (c *session) sendCancel(l *uacLeg) {
	if l.cancelSent || l.inv == nil {
		return
	}
	l.cancelSent = true
	inv := l.inv
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
	if c.winner != nil && c.winner != l {
		// RFC 3326 §2: another branch took the call, so the client does
		// not show it as missed.
		req.AppendHeader(sipmsg.NewHeader("Reason", `SIP;cause=200;text="Call completed elsewhere"`))
	}
	req.SetTransport(inv.Transport())
	req.SetDestination(inv.Destination())
	req.Laddr = inv.Laddr
	c.s.request(c.ctx, req, nil, func(*sipmsg.Response, error) {})
}

// sendAck sends an ACK of a 2xx on l; the ACK of a placed leg's INVITE
// is kept to answer the 2xx's retransmissions.
func (c *session) sendAck(l *leg, ack *sipmsg.Request) {
	if u := l.uac; u != nil && u.inv != nil && ack.CSeq().SeqNo == u.inv.CSeq().SeqNo {
		u.ack = ack
	}
	c.writeAck(ack)
}

// writeAck sends an ACK of a 2xx, outside any transaction (RFC 3261
// §13.2.2.4).
func (c *session) writeAck(ack *sipmsg.Request) {
	if err := c.s.cli.WriteRequest(ack, c.s.addVia); err != nil {
		c.log.Warn("ACK failed", "call-id", ack.CallID().Value(), "err", err)
	}
}

// delayedOffer tells whether our INVITE on l went without SDP, so that the
// terminal makes the offer (RFC 3261 §13.2.1).
func (l *uacLeg) delayedOffer() bool {
	return l.inv != nil && len(l.inv.Body()) == 0
}

// retryMinSE sends l's INVITE again after a 422, with the Session-Expires
// the terminal's Min-SE asks for (RFC 4028 §7.4); once per leg.
func (c *session) retryMinSE(l *uacLeg, res *sipmsg.Response) {
	m := minSEOf(res)
	l.retriedSE = true
	l.se, l.minSE = max(l.se, m), max(l.minSE, m)
	l.inv = c.buildInvite(l, l.inv.Body())
	l.tx, l.provisional, l.txFinal, l.txFailed, l.txDone = nil, false, false, false, false
	c.log.Debug("422 from the terminal: INVITE again", "leg", l.id, "session-expires", l.se)
	c.send(l)
}

// canRetryMinSE tells whether l's 422 res can be answered by a new INVITE.
func (c *session) canRetryMinSE(l *uacLeg, res *sipmsg.Response) bool {
	return !l.retriedSE && minSEOf(res) > 0 && c.s.cfg.SessionExpires >= 0 && !c.ending && l.trying()
}
