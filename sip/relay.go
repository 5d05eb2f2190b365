package sip

import (
	"context"
	"fmt"
	"strings"

	sipmsg "github.com/emiago/sipgo/sip"
)

// onRequest handles a request within one of the session's dialogs. sr is
// nil for an ACK.
func (c *session) onRequest(req *sipmsg.Request, sr *serverReq) {
	from := c.legOf(req)
	if from == nil {
		if sr != nil {
			sr.respond(c.response(sr.req, 481, "", nil))
		}
		return
	}
	seq := req.CSeq().SeqNo
	if req.IsAck() {
		from.ackArrived(seq)
		c.onDelayedAnswer(from, req)
		c.onPathAnswer(from, req) // pathsignal.go
		return
	}
	// RFC 3261 §12.2.2: a CSeq lower than the last one is out of order.
	if seq < from.remoteSeq || (seq == from.remoteSeq && req.Method != sipmsg.INVITE) {
		sr.respond(c.response(req, 500, "CSeq out of order", nil))
		return
	}
	from.remoteSeq = seq
	switch req.Method {
	case sipmsg.PRACK:
		c.onPrack(from, sr)
		return
	case sipmsg.BYE:
		sr.respond(c.response(req, 200, "", nil))
		if u := from.uas; u != nil && !u.final {
			// A BYE on the early dialog: the INVITE ends with 487.
			c.respondUAS(u, &Failure{Status: 487, Cause: CauseNormalClearing, Text: u.name + " BYE"})
		}
		from.byeSent = true // that dialog is over; no BYE back
		c.legEnded(from, from.name+" BYE")
		return
	}
	if c.answerPathProbe(from, sr) || c.answerPathReinvite(from, sr) {
		return
	}
	to := c.peer[from]
	if c.ending || !from.up || to == nil || !to.up {
		sr.respond(c.response(req, 481, "call not established", nil))
		return
	}
	if req.Method == sipmsg.INVITE || req.Method == sipmsg.UPDATE {
		if c.reinvite {
			// RFC 3261 §14.2: one offer at a time.
			sr.respond(c.response(req, 491, "", nil))
			return
		}
		if c.answerRefresh(from, sr) { // sessiontimer.go
			from.updateTarget(req.Contact())
			return
		}
		c.reinvite = true
		from.updateTarget(req.Contact())
	}
	c.relay(from, to, sr)
}

// legOf says which leg req came on, by our tag.
func (c *session) legOf(req *sipmsg.Request) *leg {
	tag, _ := req.To().Params.Get("tag")
	for _, u := range c.uas {
		if tag == u.localTag {
			return &u.leg
		}
	}
	for _, l := range c.uac {
		if tag == l.localTag {
			return &l.leg
		}
	}
	return nil
}

// relayHeaders are copied from a relayed in-dialog request; everything else
// is rebuilt so neither side learns the other's topology.
var relayHeaders = []string{"Content-Type", "Content-Disposition", "Info-Package", "Event", "Subscription-State", "Reason"}

// relay forwards an in-dialog request to the peer leg and its answer back.
func (c *session) relay(from, to *leg, sr *serverReq) {
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
		if t := to.st; t != nil {
			// Each leg its own interval and refresher (RFC 4028 §7.4): we
			// are this request's UAC.
			out.AppendHeader(sipmsg.NewHeader("Supported", supportedHeader))
			out.AppendHeader(sipmsg.NewHeader("Session-Expires", seconds(t.interval)+";refresher="+refresherName(t.weRefresh, "uac", "uas")))
		}
		if len(body) > 0 {
			var err error
			if body, err = c.media.Offer(c.ctx, from.id, to.id, body); err != nil {
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
		c.post(func() { c.onRelayed(from, to, sr, out, res, err) })
	})
}

func (c *session) onRelayed(from, to *leg, sr *serverReq, out *sipmsg.Request, res *sipmsg.Response, err error) {
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
		c.refreshDialogs()
	}
	// A re-INVITE without SDP gets the other side's offer in the 2xx; the
	// requester answers it in its ACK (RFC 3261 §14.1, RFC 3264 §2).
	offer := ack != nil && !hadOffer && len(body) > 0
	if ack != nil && !offer {
		// ACK the other side's 2xx at once; the ACK of our own 2xx from
		// this side is absorbed by expectAck.
		c.sendAck(to, ack)
	}
	if isOffer && !hadOffer && !offer && len(body) > 0 {
		// An answer needs an offer (RFC 3264 §4; RFC 3311 §5.2 for
		// UPDATE): SDP in the 2xx to an UPDATE without one is dropped
		// rather than relayed past the anchor.
		body = nil
	}
	if isOffer && res.StatusCode < 300 && len(body) > 0 {
		rewrite := c.media.Answer
		if offer {
			rewrite = c.media.Offer
		}
		b, err := rewrite(c.ctx, to.id, from.id, body)
		if err != nil {
			if offer {
				// The other side's 2xx is ACKed all the same; the
				// requester keeps the session it had.
				c.sendAck(to, ack)
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
		c.relayedOffer(from, to, req, out, res, out2)
	}
	if offer {
		c.holdAck(from, req.CSeq().SeqNo, ack, to)
	}
	sr.respond(out2)
	if req.Method == sipmsg.INVITE && res.StatusCode < 300 {
		c.expectAck(from, sr.tx, out2)
	}
	// RFC 5057 §5.1: 481 or 408 to an in-dialog request ends the dialog.
	if res.StatusCode == 481 || res.StatusCode == 408 {
		to.byeSent = true
		c.legEnded(to, fmt.Sprintf("%s dialog lost (%d)", to.name, res.StatusCode))
	}
}

// response builds a response to an in-dialog request.
func (c *session) response(req *sipmsg.Request, code int, phrase string, body []byte) *sipmsg.Response {
	if phrase == "" || code >= 400 && phrase != reasonPhrase(code) && !strings.Contains(phrase, " ") {
		phrase = reasonPhrase(code)
	}
	res := sipmsg.NewResponseFromRequest(req, code, phrase, body)
	res.AppendHeader(sipmsg.NewHeader("Server", c.s.cfg.UserAgent))
	return res
}
