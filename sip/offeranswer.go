package sip

import (
	"bytes"

	sipmsg "github.com/emiago/sipgo/sip"
)

// Delayed offer. An INVITE may come without SDP (RFC 3261 §13.2.1): the
// offer is then in the 2xx and the answer in the ACK (RFC 3264 §2). The
// B2BUA relays the INVITE without SDP, rewrites the 2xx's SDP as an offer
// from the side that answered, and holds its own ACK of that 2xx until the
// requester's ACK brings the answer, which is rewritten as an answer and
// sent in the held ACK. This holds for the call's INVITE and for
// re-INVITEs alike.

// delayedAck is an ACK held back until the answer it must carry arrives.
type delayedAck struct {
	seq uint32          // CSeq of the requester's INVITE, which its ACK repeats
	ack *sipmsg.Request // our ACK of the other leg's 2xx, without its body yet
	to  *leg            // the leg the ACK goes to
}

// sdpBody is a message's body, nil when it is empty or only whitespace: a
// stray CRLF after the headers is no offer and must not be relayed as a
// body (RFC 3261 §7.4: the body follows the empty line; RFC 4566 §5 SDP
// starts with v=).
func sdpBody(m sipmsg.Message) []byte {
	b := m.Body()
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	return b
}

// holdAck keeps ack back until the ACK of the requester on from (for the
// INVITE with CSeq seq) brings the answer. No other offer may start before
// the exchange ends (RFC 3261 §14.2; RFC 3264 §4 allows one offer at a
// time).
func (c *session) holdAck(from *leg, seq uint32, ack *sipmsg.Request, to *leg) {
	from.delayed = &delayedAck{seq: seq, ack: ack, to: to}
	c.reinvite = true
}

// onDelayedAnswer takes the requester's ACK on from: its SDP is the answer
// to the offer in our 2xx, relayed in the held ACK. An ACK without a usable
// answer still releases the held ACK (a 2xx is always ACKed) and then ends
// the call, as RFC 3261 §13.2.2.4 tells a UAC that cannot answer an offer
// in a 2xx.
func (c *session) onDelayedAnswer(from *leg, ack *sipmsg.Request) {
	d := from.delayed
	if d == nil || d.seq != ack.CSeq().SeqNo {
		return
	}
	var fail *Failure
	body := sdpBody(ack)
	if len(body) == 0 {
		fail = &Failure{Status: 488, Cause: CauseInterworking, Text: "ACK without the answer to the offer in the 2xx"}
	} else if out, err := c.media.Answer(c.ctx, from.id, d.to.id, body); err != nil {
		fail = answerFailure(err)
	} else {
		if ack.GetHeader("Content-Type") != nil {
			copyHeader(ack, d.ack, "Content-Type")
		} else {
			d.ack.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
		}
		d.ack.SetBody(out)
		from.remoteSDP, d.to.localSDP = body, out
	}
	c.releaseAck(from)
	if fail != nil {
		c.log.Warn("answer in ACK rejected: ending call", "leg", from.id, "err", fail)
		c.byeCause = fail.Cause
		c.end(fail.Text)
	}
}

// releaseAck sends the ACK held for from's answer, with whatever body it
// has by now.
func (c *session) releaseAck(from *leg) {
	d := from.delayed
	if d == nil {
		return
	}
	from.delayed = nil
	if !c.holding() {
		c.reinvite = false
	}
	c.sendAck(d.to, d.ack)
}

// holding tells whether an ACK is held on any leg.
func (c *session) holding() bool {
	for _, l := range c.legs() {
		if l.delayed != nil {
			return true
		}
	}
	return false
}

// releaseAcks sends every held ACK, without an answer, before the
// session's BYEs: a 2xx must be ACKed even when the dialog is ended at
// once.
func (c *session) releaseAcks() {
	for _, l := range c.legs() {
		c.releaseAck(l)
	}
}

// legs lists every leg, those that reached us first.
func (c *session) legs() []*leg {
	out := make([]*leg, 0, len(c.uas)+len(c.uac))
	for _, u := range c.uas {
		out = append(out, &u.leg)
	}
	for _, l := range c.uac {
		out = append(out, &l.leg)
	}
	return out
}
