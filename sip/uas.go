package sip

import (
	"strconv"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

// addUAS makes a leg of the INVITE req that reached us, with our To tag.
func (c *session) addUAS(req *sipmsg.Request, tx sipmsg.ServerTransaction) *uasLeg {
	inv := req.Clone()
	localTag := sipmsg.GenerateTagN(16)
	inv.To().Params.Add("tag", localTag)
	from, to := inv.From(), inv.To()
	remoteTag, _ := from.Params.Get("tag")
	d := dialogState{
		callID:    inv.CallID().Value(),
		local:     *to.Address.Clone(),
		localName: to.DisplayName,
		localTag:  localTag,
		remote:    *from.Address.Clone(),
		remoteNm:  from.DisplayName,
		remoteTag: remoteTag,
		remoteSeq: inv.CSeq().SeqNo,
		target:    *inv.Contact().Address.Clone(),
		dest:      inv.Source(),
		transport: inv.Transport(),
		laddr:     c.s.laddr(inv.Transport()),
		localSeq:  1,
	}
	// RFC 3261 §12.1.1: the UAS route set is the Record-Route list, in order.
	for _, h := range inv.GetHeaders("Record-Route") {
		d.routeSet = append(d.routeSet, h.Value())
	}
	u := &uasLeg{inv: inv, tx: tx, rel: reliable{on: offers100rel(inv)}}
	u.leg = newLeg(LegID("uas-"+strconv.Itoa(len(c.uas)+1)), "caller", d)
	u.leg.uas = u
	u.remoteSDP = sdpBody(inv)
	c.uas = append(c.uas, u)
	return u
}

// onUASCancel takes a CANCEL of u's INVITE.
func (c *session) onUASCancel(u *uasLeg) {
	if u.final {
		return
	}
	// sipgo has answered the CANCEL with 200 and the INVITE with 487.
	u.final = true
	c.legEnded(&u.leg, u.name+" CANCEL")
}

// respondUAS sends a final failure to u's INVITE.
func (c *session) respondUAS(u *uasLeg, f *Failure) {
	u.final = true
	u.stopReliable()
	if u == c.origin {
		c.rec.SIPStatus, c.rec.Q850Cause = f.Status, f.Cause
	}
	res := c.uasResponse(u, f.Status, reasonPhrase(f.Status), nil)
	res.AppendHeader(sipmsg.NewHeader("Reason", f.Reason()))
	if h := retryAfter(f); h != nil {
		res.AppendHeader(h)
	}
	addWarning(res, f)
	if err := u.tx.Respond(res); err != nil {
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

// uasResponse builds a response to u's INVITE that carries nothing of the
// other legs': our tag, our Contact, the given body.
func (c *session) uasResponse(u *uasLeg, code int, phrase string, body []byte) *sipmsg.Response {
	if phrase == "" {
		phrase = reasonPhrase(code)
	}
	res := sipmsg.NewResponseFromRequest(u.inv, code, phrase, body)
	if code > 100 && code < 300 {
		res.AppendHeader(c.s.contact(u.transport))
		res.AppendHeader(sipmsg.NewHeader("Allow", allowed))
		res.AppendHeader(sipmsg.NewHeader("Supported", supportedHeader))
	}
	res.AppendHeader(sipmsg.NewHeader("Server", c.s.cfg.UserAgent))
	return res
}

// expectAck retransmits res, a 2xx to an INVITE from l, until l's ACK
// arrives; without one in AckTimeout the leg ends. RFC 3261 §13.3.1.4 has
// no exemption for reliable transports: a proxy in front of us on TCP may
// forward the 2xx statelessly to a caller on UDP, so it is retransmitted
// on every transport.
func (c *session) expectAck(l *leg, tx sipmsg.ServerTransaction, res *sipmsg.Response) {
	t1 := c.s.cfg.T1
	// T2 is 4s for the default T1; a shortened T1 shortens it alike.
	t2 := min(8*t1, sipmsg.T2)
	aw := &await2xx{
		tx:       tx,
		res:      res,
		seq:      res.CSeq().SeqNo,
		interval: t1,
		deadline: time.Now().Add(c.s.cfg.AckTimeout),
	}
	if old := l.await; old != nil {
		old.timer.Stop()
	}
	l.await = aw
	var tick func()
	tick = func() {
		if l.await != aw {
			return
		}
		if time.Now().After(aw.deadline) {
			l.await = nil
			c.noAck(l, aw.seq)
			return
		}
		_ = aw.tx.Respond(aw.res)
		aw.interval = min(2*aw.interval, t2)
		aw.timer = c.after(min(time.Until(aw.deadline), aw.interval), tick)
	}
	aw.timer = c.after(min(c.s.cfg.AckTimeout, aw.interval), tick)
}

// noAck ends the call whose 2xx on l was never ACKed. RFC 3261 §13.3.1.4:
// the dialog is confirmed and then ended with BYE, on both legs. A call
// whose caller never ACKed its answer never started: its record has no
// answer time (talk time zero) and "ACK timeout" as its end cause.
func (c *session) noAck(l *leg, seq uint32) {
	c.log.Info("no ACK for 2xx: ending call", "leg", l.id)
	if l.uas != nil && l.uas == c.origin && seq == c.origin.inv.CSeq().SeqNo {
		c.rec.AnsweredAt = time.Time{}
	}
	c.legEnded(l, "ACK timeout")
}

// ackArrived stops the retransmission of l's 2xx to the INVITE with CSeq
// seq.
func (l *leg) ackArrived(seq uint32) {
	if aw := l.await; aw != nil && aw.seq == seq {
		aw.timer.Stop()
		l.await = nil
	}
}
