package sip

import (
	"bytes"
	"strconv"
	"strings"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

// Session timers (RFC 4028), on every answered leg on its own: each leg
// negotiates its own interval and refresher with its peer. Where we are
// the refresher we send a refresh (UPDATE without SDP, or a re-INVITE
// repeating our last SDP unchanged) at half the interval; where the peer
// is, we expect its refresh. A leg whose session expires, or whose refresh
// gets 408 or 481 or no answer, ends the call with BYE on every leg. A
// peer's refresh that changes nothing is answered on its leg, never
// relayed to the other.

// tagTimer is RFC 4028's option tag.
const tagTimer = "timer"

// afterClock runs fn on the session's loop after d of the Clock.
func (c *session) afterClock(d time.Duration, fn func()) Timer {
	return c.s.clock.AfterFunc(d, func() { c.post(fn) })
}

// sessTimer is a leg's session timer.
type sessTimer struct {
	interval  time.Duration // the negotiated Session-Expires
	minSE     time.Duration // the larger of our Min-SE and the peer's
	weRefresh bool
	useUpdate bool  // the peer allows UPDATE (RFC 4028 §9: preferred)
	peerTimer bool  // the peer supports "timer": our 2xx may Require it
	timer     Timer // the next refresh, or the expiry we wait for
	expiry    Timer // when we refresh: the end if no refresh succeeds
	inFlight  bool  // our refresh is waiting for its answer
	retried   bool  // a 422 to our refresh was taken once
}

func (t *sessTimer) stop() {
	if t == nil {
		return
	}
	for _, tm := range []Timer{t.timer, t.expiry} {
		if tm != nil {
			tm.Stop()
		}
	}
	t.timer, t.expiry = nil, nil
}

// sessionExpires reads a Session-Expires header (compact form x): the
// interval and the refresher parameter.
func sessionExpires(m interface{ GetHeader(string) sipmsg.Header }) (time.Duration, string, bool) {
	h := m.GetHeader("Session-Expires")
	if h == nil {
		h = m.GetHeader("x")
	}
	if h == nil {
		return 0, "", false
	}
	parts := strings.Split(h.Value(), ";")
	n, err := strconv.Atoi(strings.TrimSpace(parts[0]))
	if err != nil || n <= 0 {
		return 0, "", false
	}
	refresher := ""
	for _, p := range parts[1:] {
		if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(k, "refresher") {
			refresher = strings.ToLower(strings.TrimSpace(v))
		}
	}
	return time.Duration(n) * time.Second, refresher, true
}

// minSEOf reads a Min-SE header; 0 without one.
func minSEOf(m interface{ GetHeader(string) sipmsg.Header }) time.Duration {
	h := m.GetHeader("Min-SE")
	if h == nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(h.Value(), ";", 2)[0]))
	if err != nil || n <= 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}

func seconds(d time.Duration) string { return strconv.Itoa(int(d / time.Second)) }

// allows tells whether m's Allow header lists method.
func allows(m interface{ GetHeader(string) sipmsg.Header }, method string) bool {
	h := m.GetHeader("Allow")
	return h != nil && hasListed(h.Value(), method)
}

func hasListed(list, v string) bool {
	for _, t := range strings.Split(list, ",") {
		if strings.EqualFold(strings.TrimSpace(t), v) {
			return true
		}
	}
	return false
}

// refuseShortSE answers 422 to an INVITE whose Session-Expires is below
// our Min-SE (RFC 4028 §8.1); it reports whether it did.
func (s *Server) refuseShortSE(req *sipmsg.Request, tx sipmsg.ServerTransaction) bool {
	if s.cfg.SessionExpires < 0 {
		return false
	}
	se, _, ok := sessionExpires(req)
	if !ok || se >= s.cfg.MinSE {
		return false
	}
	s.respond(tx, req, 422, "", sipmsg.NewHeader("Min-SE", seconds(s.cfg.MinSE)))
	return true
}

// timerRequestHeaders adds our session timer headers to an INVITE we
// place (RFC 4028 §7.1).
func (c *session) timerRequestHeaders(req *sipmsg.Request, se, minSE time.Duration) {
	if c.s.cfg.SessionExpires < 0 {
		return
	}
	req.AppendHeader(sipmsg.NewHeader("Session-Expires", seconds(se)))
	req.AppendHeader(sipmsg.NewHeader("Min-SE", seconds(minSE)))
}

// timerAnswerCaller negotiates the caller's leg's timer from its INVITE and
// puts it in our 2xx (RFC 4028 §9): its interval, bounded by ours, and its
// refresher, the caller when it asked or supports timers, else us.
func (c *session) timerAnswerCaller(u *uasLeg, res *sipmsg.Response) {
	cfg := c.s.cfg
	if cfg.SessionExpires < 0 {
		return
	}
	t := &sessTimer{
		minSE:     max(cfg.MinSE, minSEOf(u.inv)),
		useUpdate: allows(u.inv, "UPDATE"),
		peerTimer: hasTag(u.inv, "Supported", tagTimer) || hasTag(u.inv, "Require", tagTimer),
	}
	se, refresher, ok := sessionExpires(u.inv)
	if !ok || se > cfg.SessionExpires {
		se = max(cfg.SessionExpires, t.minSE)
	}
	t.interval = se
	switch {
	case refresher == "uac" || refresher == "uas":
	case t.peerTimer:
		refresher = "uac"
	default:
		refresher = "uas" // §9: the only choice when the caller has no timer
	}
	t.weRefresh = refresher == "uas"
	if t.peerTimer {
		res.AppendHeader(sipmsg.NewHeader("Require", tagTimer))
	}
	res.AppendHeader(sipmsg.NewHeader("Session-Expires", seconds(se)+";refresher="+refresher))
	u.st = t
}

// timerFromAnswer takes the far leg's timer from its 2xx (RFC 4028 §7.2):
// the interval and refresher it names; none named, we refresh at what we
// asked.
func (c *session) timerFromAnswer(l *uacLeg, res *sipmsg.Response) {
	if c.s.cfg.SessionExpires < 0 {
		return
	}
	t := &sessTimer{minSE: l.minSE, useUpdate: allows(res, "UPDATE"), peerTimer: hasTag(res, "Require", tagTimer)}
	se, refresher, ok := sessionExpires(res)
	if !ok {
		se, refresher = l.se, "uac"
	}
	t.interval = se
	t.weRefresh = refresher != "uas"
	l.st = t
}

// startTimer arms l's session timer for its current interval.
func (c *session) startTimer(l *leg) {
	t := l.st
	if t == nil || c.ending {
		return
	}
	t.stop()
	if t.weRefresh {
		t.timer = c.afterClock(t.interval/2, func() { c.refresh(l) })
		t.expiry = c.afterClock(t.interval, func() { c.sessionExpired(l) })
		return
	}
	// §10: the side that is not the refresher ends the session at the
	// interval less a third of it or 32 s, whichever is smaller.
	t.timer = c.afterClock(t.interval-min(32*time.Second, t.interval/3), func() { c.sessionExpired(l) })
}

func (c *session) sessionExpired(l *leg) {
	if c.ending || l.st == nil {
		return
	}
	c.log.Info("session timer expired: ending the call", "leg", l.id)
	c.byeCause = CauseRecoveryOnTimer
	c.end("session expired on " + l.name + " leg")
}

// refresh sends our session refresh on l: UPDATE without SDP where the
// peer allows it, else a re-INVITE with our last SDP unchanged (§7.4,
// RFC 3264 §8: the same version is no change).
func (c *session) refresh(l *leg) {
	t := l.st
	if c.ending || t == nil || !l.up {
		return
	}
	method := sipmsg.UPDATE
	if !t.useUpdate && len(l.localSDP) > 0 {
		method = sipmsg.INVITE
	}
	if t.inFlight || method == sipmsg.INVITE && c.reinvite {
		// An offer is in progress (RFC 3261 §14.2); its answer
		// refreshes the leg, or we try again shortly.
		t.timer = c.afterClock(time.Second, func() { c.refresh(l) })
		return
	}
	req := l.newRequest(method, 0)
	req.AppendHeader(c.s.contact(l.transport))
	req.AppendHeader(sipmsg.NewHeader("Supported", supportedHeader))
	req.AppendHeader(sipmsg.NewHeader("Session-Expires", seconds(t.interval)+";refresher=uac"))
	req.AppendHeader(sipmsg.NewHeader("Min-SE", seconds(t.minSE)))
	if method == sipmsg.INVITE {
		req.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
		req.SetBody(l.localSDP)
		c.reinvite = true
	}
	t.inFlight = true
	c.s.request(c.ctx, req, nil, func(res *sipmsg.Response, err error) {
		c.post(func() { c.onRefreshed(l, req, res, err) })
	})
}

func (c *session) onRefreshed(l *leg, req *sipmsg.Request, res *sipmsg.Response, err error) {
	t := l.st
	if req.Method == sipmsg.INVITE {
		c.reinvite = c.holding()
		if res != nil && res.IsSuccess() {
			c.sendAck(l, l.newRequest(sipmsg.ACK, req.CSeq().SeqNo))
		}
	}
	if t == nil || c.ending {
		return
	}
	t.inFlight = false
	switch {
	case err != nil || res.StatusCode == 408 || res.StatusCode == 481:
		// §10: a refresh that times out or gets 408/481 ends the session.
		status := "no answer"
		if res != nil {
			status = strconv.Itoa(res.StatusCode)
		}
		c.log.Info("session refresh failed: ending the call", "leg", l.id, "answer", status, "err", err)
		c.byeCause = CauseRecoveryOnTimer
		c.end("session refresh failed on " + l.name + " leg (" + status + ")")
	case res.IsSuccess():
		if se, refresher, ok := sessionExpires(res); ok {
			t.interval = max(se, t.minSE)
			t.weRefresh = refresher != "uas"
		}
		t.retried = false
		c.startTimer(l)
	case res.StatusCode == 422 && !t.retried:
		t.retried = true
		if m := minSEOf(res); m > t.interval {
			t.minSE, t.interval = m, m
		}
		c.refresh(l)
	case (res.StatusCode == 501 || res.StatusCode == 405) && req.Method == sipmsg.UPDATE && len(l.localSDP) > 0:
		t.useUpdate = false
		c.refresh(l)
	default:
		// Another failure leaves the session as it was (RFC 3261 §14.1);
		// it ends at its expiry unless a later refresh succeeds.
		c.log.Debug("session refresh refused", "leg", l.id, "status", res.StatusCode)
	}
}

// answerRefresh answers, on its own leg, a peer's refresh that changes
// nothing: an UPDATE without SDP, or a re-INVITE repeating the last SDP it
// sent (RFC 4028 §7.4). It reports whether it answered.
func (c *session) answerRefresh(from *leg, sr *serverReq) bool {
	req := sr.req
	body := sdpBody(req)
	switch {
	case req.Method == sipmsg.UPDATE && len(body) == 0:
	case req.Method == sipmsg.INVITE && len(body) > 0 && len(from.localSDP) > 0 && sameSDP(body, from.remoteSDP):
	default:
		return false
	}
	res := c.response(req, 200, "", nil)
	res.AppendHeader(c.s.contact(from.transport))
	if t := from.st; t != nil {
		se, refresher, ok := sessionExpires(req)
		if ok && se >= t.minSE {
			t.interval = se
		}
		if refresher == "" {
			refresher = "uac" // §9: the requester refreshes, as before
			if t.weRefresh {
				refresher = "uas"
			}
		}
		t.weRefresh = refresher == "uas"
		if hasTag(req, "Supported", tagTimer) {
			res.AppendHeader(sipmsg.NewHeader("Require", tagTimer))
		}
		res.AppendHeader(sipmsg.NewHeader("Session-Expires", seconds(t.interval)+";refresher="+refresher))
		c.startTimer(from)
	}
	if req.Method == sipmsg.INVITE {
		res.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
		res.SetBody(from.localSDP)
	}
	sr.respond(res)
	if req.Method == sipmsg.INVITE {
		c.expectAck(from, sr.tx, res)
	}
	return true
}

// sameSDP tells whether b repeats a. The o= version alone (RFC 3264 §8)
// is not trusted: clients change SDP without raising it, and such a
// change must reach the other side.
func sameSDP(a, b []byte) bool {
	return len(a) > 0 && bytes.Equal(bytes.TrimSpace(a), bytes.TrimSpace(b))
}

// startCallLimit ends the call after MaxCallDuration from its answer.
func (c *session) startCallLimit() {
	d := c.s.cfg.MaxCallDuration
	if d <= 0 || c.maxDur != nil {
		return
	}
	c.maxDur = c.afterClock(d, func() {
		if c.ending {
			return
		}
		c.log.Info("maximum call duration reached: ending the call", "limit", d)
		c.end("maximum call duration")
	})
}

// stopTimers stops every leg's session timer and the duration limit.
func (c *session) stopTimers() {
	for _, l := range c.legs() {
		l.st.stop()
	}
	if c.maxDur != nil {
		c.maxDur.Stop()
	}
}

func refresherName(we bool, us, them string) string {
	if we {
		return us
	}
	return them
}

// relayedOffer notes what a relayed offer/answer left on both legs (the
// last SDP of each side) and refreshes both legs' timers: the 2xx to an
// INVITE or UPDATE is a refresh of each dialog (RFC 4028 §10). out2, our
// answer to from, gets from's Session-Expires.
func (c *session) relayedOffer(from, to *leg, req, out *sipmsg.Request, res *sipmsg.Response, out2 *sipmsg.Response) {
	if b := sdpBody(req); len(b) > 0 {
		from.remoteSDP = b
	}
	if b := sdpBody(out); len(b) > 0 {
		to.localSDP = b
	}
	if b := sdpBody(res); len(b) > 0 {
		to.remoteSDP = b
	}
	if b := sdpBody(out2); len(b) > 0 {
		from.localSDP = b
	}
	if t := to.st; t != nil {
		if se, refresher, ok := sessionExpires(res); ok {
			t.interval = max(se, t.minSE)
			t.weRefresh = refresher != "uas"
		}
		c.startTimer(to)
	}
	if t := from.st; t != nil {
		if se, refresher, ok := sessionExpires(req); ok {
			if se >= t.minSE {
				t.interval = se
			}
			if refresher != "" {
				t.weRefresh = refresher == "uas"
			}
		}
		if hasTag(req, "Supported", tagTimer) {
			out2.AppendHeader(sipmsg.NewHeader("Require", tagTimer))
		}
		out2.AppendHeader(sipmsg.NewHeader("Session-Expires", seconds(t.interval)+";refresher="+refresherName(t.weRefresh, "uas", "uac")))
		c.startTimer(from)
	}
}
