package sip

import (
	"context"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

// Reliable provisional responses (RFC 3262), each leg on its own: towards
// a caller that offered 100rel we send every provisional after 100
// reliably and wait for its PRACK; from a terminal or trunk that sends
// them reliably we PRACK each one on its early dialog ourselves, whatever
// the caller supports.

// tag100rel is RFC 3262's option tag.
const tag100rel = "100rel"

// supportedTags are the option tags we support (RFC 3261 §8.2.2.3): a
// Require naming any other gets 420.
var supportedTags = []string{tag100rel, tagTimer}

// supportedHeader lists them for Supported headers.
var supportedHeader = strings.Join(supportedTags, ", ")

// reliable is the state of the reliable provisionals we send on a leg
// that reached us (RFC 3262 §3).
type reliable struct {
	on      bool   // the caller offered 100rel (Supported or Require)
	rseq    uint32 // RSeq of the last reliable provisional sent
	pending *relProv
	// queue holds provisionals waiting for the PRACK of the pending one:
	// a second reliable provisional waits for the first's PRACK (§3).
	queue []*sipmsg.Response
	// held is the 2xx kept back until the PRACK of a provisional that
	// carried SDP (§3: no 2xx before such a provisional is PRACKed).
	held *sipmsg.Response
	// answered: an SDP answer reached the caller in a reliable
	// provisional; the offer/answer exchange is over for this INVITE.
	answered bool
}

// relProv is a reliable provisional waiting for its PRACK.
type relProv struct {
	res      *sipmsg.Response
	rseq     uint32
	sdp      bool
	interval time.Duration
	deadline time.Time
	timer    *time.Timer
}

// hasTag tells whether an option tag header (Supported, Require) of m
// names tag.
func hasTag(m sipmsg.Message, header, tag string) bool {
	for _, h := range m.GetHeaders(header) {
		for _, t := range strings.Split(h.Value(), ",") {
			if strings.EqualFold(strings.TrimSpace(t), tag) {
				return true
			}
		}
	}
	return false
}

// offers100rel tells whether a request says it takes reliable
// provisionals (RFC 3262 §4).
func offers100rel(req *sipmsg.Request) bool {
	return hasTag(req, "Supported", tag100rel) || hasTag(req, "Require", tag100rel)
}

// provisionalToCaller sends a provisional to u, reliably when u offered
// 100rel.
func (c *session) provisionalToCaller(u *uasLeg, res *sipmsg.Response) {
	if !u.rel.on || res.StatusCode == 100 {
		_ = u.tx.Respond(res)
		return
	}
	if u.rel.pending != nil {
		u.rel.queue = append(u.rel.queue, res)
		return
	}
	c.sendReliable(u, res)
}

// sendReliable sends res as a reliable provisional and retransmits it
// from T1, doubling, until its PRACK; without one in 64*T1 the INVITE is
// refused with a 5xx (RFC 3262 §3).
func (c *session) sendReliable(u *uasLeg, res *sipmsg.Response) {
	if u.rel.rseq == 0 {
		// §3: the first RSeq is random, between 1 and 2**31 - 1.
		u.rel.rseq = rand.Uint32N(1<<31-1) + 1
	} else {
		u.rel.rseq++
	}
	res.AppendHeader(sipmsg.NewHeader("Require", tag100rel))
	res.AppendHeader(sipmsg.NewHeader("RSeq", strconv.FormatUint(uint64(u.rel.rseq), 10)))
	p := &relProv{
		res:      res,
		rseq:     u.rel.rseq,
		sdp:      len(sdpBody(res)) > 0,
		interval: c.s.cfg.T1,
		deadline: time.Now().Add(64 * c.s.cfg.T1),
	}
	if p.sdp {
		u.rel.answered = true
		u.localSDP = sdpBody(res)
	}
	u.rel.pending = p
	_ = u.tx.Respond(res)
	var tick func()
	tick = func() {
		if u.rel.pending != p || u.final {
			return
		}
		if !time.Now().Before(p.deadline) {
			u.rel.pending = nil
			c.log.Info("no PRACK for a reliable provisional: refusing the call", "leg", u.id, "rseq", p.rseq)
			c.fail(&Failure{Status: 504, Cause: CauseRecoveryOnTimer, Text: "no PRACK for the reliable provisional"}, false)
			return
		}
		_ = u.tx.Respond(p.res)
		p.interval *= 2
		p.timer = c.after(min(p.interval, time.Until(p.deadline)), tick)
	}
	p.timer = c.after(p.interval, tick)
}

// stopReliable ends the provisionals of u once its INVITE has a final
// response: nothing more is retransmitted or sent (§3).
func (u *uasLeg) stopReliable() {
	if p := u.rel.pending; p != nil && p.timer != nil {
		p.timer.Stop()
	}
	u.rel.pending, u.rel.queue, u.rel.held = nil, nil, nil
}

// onPrack takes a PRACK on from (RFC 3262 §3): one that acknowledges the
// provisional we retransmit stops it and lets the next one, or the 2xx
// held for it, go; any other gets 481.
func (c *session) onPrack(from *leg, sr *serverReq) {
	req := sr.req
	u := from.uas
	if u == nil || u.rel.pending == nil || u.final {
		sr.respond(c.response(req, 481, "no reliable provisional to acknowledge", nil))
		return
	}
	p := u.rel.pending
	rseq, cseq, method, ok := parseRAck(req)
	if !ok || rseq != p.rseq || cseq != u.inv.CSeq().SeqNo || method != sipmsg.INVITE {
		sr.respond(c.response(req, 481, "RAck matches no reliable provisional", nil))
		return
	}
	if p.timer != nil {
		p.timer.Stop()
	}
	u.rel.pending = nil
	if len(sdpBody(req)) > 0 {
		// An offer in a PRACK (§5) would open an exchange on the early
		// dialog the other leg knows nothing of: refused, the
		// provisional is acknowledged all the same.
		res := c.response(req, 488, "", nil)
		res.AppendHeader(sipmsg.NewHeader("Warning", `399 b2bua "no offer in PRACK"`))
		sr.respond(res)
	} else {
		sr.respond(c.response(req, 200, "", nil))
	}
	if len(u.rel.queue) > 0 {
		next := u.rel.queue[0]
		u.rel.queue = u.rel.queue[1:]
		c.sendReliable(u, next)
		return
	}
	if held := u.rel.held; held != nil {
		u.rel.held = nil
		c.answerCaller(u, held)
	}
}

// answerCaller sends u the 2xx res and retransmits it until the ACK; while
// a reliable provisional with SDP waits for its PRACK, the 2xx waits too
// (RFC 3262 §3), and queued provisionals are dropped.
func (c *session) answerCaller(u *uasLeg, res *sipmsg.Response) {
	u.rel.queue = nil
	if p := u.rel.pending; p != nil && p.sdp {
		u.rel.held = res
		return
	}
	u.stopReliable()
	u.final, u.up = true, true
	if b := sdpBody(res); len(b) > 0 {
		u.localSDP = b
	}
	if err := u.tx.Respond(res); err != nil {
		c.log.Warn("200 to caller failed", "err", err)
	}
	c.expectAck(&u.leg, u.tx, res)
	c.startTimer(&u.leg)
}

// parseRAck reads a RAck header: response-num CSeq-num method (§7.2).
func parseRAck(req *sipmsg.Request) (rseq, cseq uint32, method sipmsg.RequestMethod, ok bool) {
	h := req.GetHeader("RAck")
	if h == nil {
		return 0, 0, "", false
	}
	f := strings.Fields(h.Value())
	if len(f) != 3 {
		return 0, 0, "", false
	}
	r, err1 := strconv.ParseUint(f[0], 10, 32)
	s, err2 := strconv.ParseUint(f[1], 10, 32)
	if err1 != nil || err2 != nil {
		return 0, 0, "", false
	}
	return uint32(r), uint32(s), sipmsg.RequestMethod(strings.ToUpper(f[2])), true
}

// rseqOf is a reliable provisional's RSeq; ok is false for a provisional
// sent unreliably (no Require: 100rel or no valid RSeq, §4).
func rseqOf(res *sipmsg.Response) (uint32, bool) {
	if res.StatusCode == 100 || !hasTag(res, "Require", tag100rel) {
		return 0, false
	}
	h := res.GetHeader("RSeq")
	if h == nil {
		return 0, false
	}
	n, err := strconv.ParseUint(strings.TrimSpace(h.Value()), 10, 32)
	if err != nil || n == 0 {
		return 0, false
	}
	return uint32(n), true
}

// takeReliable PRACKs a reliable provisional on l's early dialog (RFC 3262
// §4). It reports whether res is to be processed: a retransmission, or one
// whose RSeq is not one above the last of its dialog, is not.
func (c *session) takeReliable(l *uacLeg, res *sipmsg.Response) bool {
	rseq, ok := rseqOf(res)
	if !ok {
		return true
	}
	tag := ""
	if to := res.To(); to != nil {
		tag, _ = to.Params.Get("tag")
	}
	if last, seen := l.rseqs[tag]; seen && rseq != last+1 {
		return false
	}
	if l.rseqs == nil {
		l.rseqs = map[string]uint32{}
	}
	l.rseqs[tag] = rseq
	// The early dialog of this provisional (RFC 3261 §12.1.2): its To
	// tag, its Contact as target, its Record-Route reversed.
	d := l.dialogState
	d.confirm(res)
	req := d.newRequest(sipmsg.PRACK, 0)
	l.localSeq = d.localSeq
	req.AppendHeader(sipmsg.NewHeader("RAck", strconv.FormatUint(uint64(rseq), 10)+" "+strconv.FormatUint(uint64(l.inv.CSeq().SeqNo), 10)+" INVITE"))
	if len(sdpBody(res)) > 0 && l.delayedOffer() {
		// An offer in a reliable provisional needs its answer in the
		// PRACK; we have none without the caller. We say 100rel only
		// when our INVITE has an offer, so only a terminal that sent it
		// unasked gets here.
		c.log.Warn("reliable provisional with an offer to an INVITE without SDP: PRACK without an answer", "leg", l.id)
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.s.cfg.TxTimeout)
	c.s.request(ctx, req, nil, func(res *sipmsg.Response, err error) {
		cancel()
		if err != nil || res.StatusCode >= 300 {
			status := 0
			if res != nil {
				status = res.StatusCode
			}
			c.log.Debug("PRACK not accepted", "status", status, "err", err)
		}
	})
	return true
}

// conferenceRequireRefused answers 420 to an INVITE to a conference URI
// that requires 100rel or timer: the conference's legs (sip/confcall)
// send no reliable provisionals and run no session timers, so for them
// these tags are unsupported (RFC 3261 §8.2.2.3). It reports whether it
// answered.
func (s *Server) conferenceRequireRefused(req *sipmsg.Request, tx sipmsg.ServerTransaction) bool {
	if s.confs == nil || !strings.HasPrefix(req.Recipient.User, ConferencePrefix) {
		return false
	}
	var tags []string
	for _, t := range supportedTags {
		if hasTag(req, "Require", t) {
			tags = append(tags, t)
		}
	}
	if len(tags) == 0 {
		return false
	}
	s.respond(tx, req, 420, "", sipmsg.NewHeader("Unsupported", strings.Join(tags, ", ")))
	return true
}
