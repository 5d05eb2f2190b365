package sip

import (
	sipmsg "github.com/emiago/sipgo/sip"
)

// Signalling of a second path beyond its INVITE: the far party's later
// provisionals, an INVITE without an offer, and its own re-INVITEs, which
// the far party must never see (it knows one dialog, with the path it
// hears bridged).

// provisionalToPaths gives the far party's progress to every other near
// leg still waiting for the answer. Without SDP: early media on a second
// path would need an offer/answer exchange of its own, and the far
// party's answer in its 2xx reaches every path anyway.
func (c *session) provisionalToPaths(code int, phrase string) {
	if c.dual == nil {
		return
	}
	for _, u := range c.uas {
		if u != c.origin && !u.final && !u.ended() {
			_ = u.tx.Respond(c.uasResponse(u, code, phrase, nil))
		}
	}
}

// farSDP is the far party's session description as its 2xx gave it: an
// answer, or its offer when the far call went out without one.
func (c *session) farSDP() []byte { return sdpBody(c.winner.ok) }

// nearBody gives the SDP of near leg u's 2xx: the far party's answer
// with u's own ports when u offered, else the far party's description as
// our offer, answered in u's ACK (RFC 3264 §2; onPathAnswer).
func (c *session) nearBody(u *uasLeg, offer []byte) ([]byte, *Failure) {
	far := c.winner
	if len(offer) == 0 {
		body, err := c.media.Offer(c.ctx, far.id, u.id, c.farSDP())
		if err != nil {
			return nil, offerFailure(err)
		}
		c.dual.awaitAnswer[u] = u.inv.CSeq().SeqNo
		return body, nil
	}
	if _, err := c.media.Offer(c.ctx, u.id, far.id, offer); err != nil {
		return nil, offerFailure(err)
	}
	body, err := c.media.Answer(c.ctx, far.id, u.id, c.farSDP())
	if err != nil {
		return nil, answerFailure(err)
	}
	return body, nil
}

// onPathAnswer takes the answer in the ACK of a near leg whose 2xx carried
// our offer. No answer, or one the relay cannot take, ends that path
// (RFC 3261 §13.2.2.4); the far party keeps hearing the one it heard.
func (c *session) onPathAnswer(from *leg, ack *sipmsg.Request) {
	if c.dual == nil || from.uas == nil {
		return
	}
	u := from.uas
	seq, ok := c.dual.awaitAnswer[u]
	if !ok || seq != ack.CSeq().SeqNo {
		return
	}
	delete(c.dual.awaitAnswer, u)
	body := sdpBody(ack)
	reason := "ACK without the answer to our offer"
	if len(body) > 0 {
		_, err := c.media.Answer(c.ctx, u.id, c.winner.id, body)
		if err == nil {
			c.startPaths() // the answer connected u to the far leg both ways
			return
		}
		reason = "answer in ACK rejected"
	}
	c.log.Warn("second path's answer: ending the path", "leg", u.id, "why", reason)
	c.bye(from, reason)
	c.legEnded(from, reason)
}

// answerPathReinvite answers a re-INVITE or UPDATE on a near leg that is
// not bridged with the far leg (the path the far party does not hear)
// itself, with the far party's current description for that leg's ports:
// relaying it would give the far party a re-INVITE from a dialog it does
// not know. Its new target and, with an offer, its media address are
// taken. True when it has answered.
func (c *session) answerPathReinvite(from *leg, sr *serverReq) bool {
	req := sr.req
	if c.dual == nil || from.uas == nil || c.winner == nil || c.ending || !from.up || c.peer[from] != nil ||
		(req.Method != sipmsg.INVITE && req.Method != sipmsg.UPDATE) {
		return false
	}
	if c.reinvite {
		// RFC 3261 §14.2: one offer at a time.
		sr.respond(c.response(req, 491, "", nil))
		return true
	}
	u := from.uas
	from.updateTarget(req.Contact())
	offer := sdpBody(req)
	if req.Method == sipmsg.UPDATE && len(offer) == 0 {
		// A target refresh alone (RFC 3311 §5.2): nothing to answer.
		res := c.response(req, 200, "", nil)
		res.AppendHeader(c.s.contact(from.transport))
		sr.respond(res)
		return true
	}
	var body []byte
	var f *Failure
	if len(offer) == 0 {
		// The 2xx offers the far party's description again; the ACK's
		// answer is taken like the join's (onPathAnswer).
		body, f = c.nearBody(u, nil)
		if f == nil {
			c.dual.awaitAnswer[u] = req.CSeq().SeqNo
		}
	} else {
		body, f = c.nearBody(u, offer)
	}
	if f != nil {
		res := c.response(req, f.Status, "", nil)
		res.AppendHeader(sipmsg.NewHeader("Reason", f.Reason()))
		addWarning(res, f)
		sr.respond(res)
		return true
	}
	res := c.response(req, 200, "", body)
	res.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
	res.AppendHeader(c.s.contact(from.transport))
	sr.respond(res)
	if req.Method == sipmsg.INVITE {
		c.expectAck(from, sr.tx, res)
	}
	c.startPaths() // keep the far party hearing one path
	return true
}
