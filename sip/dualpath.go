package sip

import (
	"context"
	"net/netip"
	"sync"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/registry"
)

// Dual-path calls: one device reaches us twice, over the carrier network
// (a trunk) and over a data network (digest-authenticated), and both near
// legs join one session with one far leg. The far party sees one INVITE
// and never a re-INVITE; its media goes to every live near leg, and it
// hears one near leg at a time (pathmedia.go).

// DualPathConfig turns on dual-path calls (Config.DualPath).
type DualPathConfig struct {
	// Window is how long after a session's first near leg a second path
	// may join it by identity (--dual-path-window); 0: dual-path calls off.
	Window time.Duration
	// Trunks lists the trunks: an INVITE from one of their ranges is a
	// carrier path, not challenged, from its asserted caller number.
	Trunks func(ctx context.Context) ([]registry.Trunk, error)
	// Terminals gives a user's terminals, whose MSISDNs identify the
	// user's carrier path.
	Terminals interface {
		Terminals(ctx context.Context, imID string) ([]registry.Terminal, error)
	}
	// LegMediaTimeout: a near leg silent this long stops being a media
	// source; LegTimeout: and is ended with BYE (--leg-media-timeout,
	// --leg-timeout). 0: 2s and 30s.
	LegMediaTimeout, LegTimeout time.Duration
	// SwitchAfter: the near leg the far party hears is switched once it
	// has been silent this long while another path carries media; 0: 30ms
	// (one and a half packets of 20 ms: a path that lost one packet stays).
	SwitchAfter time.Duration
	// LossMargin: while both paths carry media, the far party's source
	// moves to the other once the one it hears loses this fraction more
	// of its packets over a second; 0: 0.05 (3 packets of 50 more).
	// LossHold: at most one such move this often; 0: 2s.
	LossMargin float64
	LossHold   time.Duration
	// ProbeInterval: an answered near leg of a session with two paths is
	// sent an in-dialog OPTIONS this often, and ended when no answer
	// comes within ProbeTimeout (or the answer is 481 or 408); 0: 10s
	// and 4s.
	ProbeInterval, ProbeTimeout time.Duration
	// Clock is the time of the path logic; nil: the real clock.
	Clock Clock
}

func (d *DualPathConfig) setDefaults() {
	if d.LegMediaTimeout <= 0 {
		d.LegMediaTimeout = 2 * time.Second
	}
	if d.LegTimeout <= 0 {
		d.LegTimeout = 30 * time.Second
	}
	if d.SwitchAfter <= 0 {
		d.SwitchAfter = 30 * time.Millisecond
	}
	if d.LossMargin <= 0 {
		d.LossMargin = 0.05
	}
	if d.LossHold <= 0 {
		d.LossHold = 2 * time.Second
	}
	if d.ProbeInterval <= 0 {
		d.ProbeInterval = 10 * time.Second
	}
	if d.ProbeTimeout <= 0 {
		d.ProbeTimeout = 4 * time.Second
	}
	if d.Clock == nil {
		d.Clock = realClock{}
	}
}

// joinIndex holds a view of every session that a second path may join,
// published by the session's loop, read by the INVITE handlers. Views are
// kept by far party, so that an INVITE looks only at the sessions to the
// party it calls, not at every live call.
type joinIndex struct {
	mu    sync.Mutex
	byFar map[string]map[*session]sessionView
}

func (x *joinIndex) put(c *session, v sessionView) {
	x.mu.Lock()
	if x.byFar == nil {
		x.byFar = map[string]map[*session]sessionView{}
	}
	m := x.byFar[v.Far]
	if m == nil {
		m = map[*session]sessionView{}
		x.byFar[v.Far] = m
	}
	m[c] = v
	x.mu.Unlock()
}

// remove drops c's view; c.callee, its far party, never changes.
func (x *joinIndex) remove(c *session) {
	x.mu.Lock()
	if m := x.byFar[c.callee]; m != nil {
		delete(m, c)
		if len(m) == 0 {
			delete(x.byFar, c.callee)
		}
	}
	x.mu.Unlock()
}

// correlate runs correlate over the published views: those to q's far
// party, or every view for a Join header, whose dialog may belong to a
// session to another party (a 403, correlateJoin).
func (x *joinIndex) correlate(q joinQuery) (*session, *Failure) {
	x.mu.Lock()
	defer x.mu.Unlock()
	var cs []*session
	var vs []sessionView
	add := func(m map[*session]sessionView) {
		for c, v := range m {
			cs = append(cs, c)
			vs = append(vs, v)
		}
	}
	if q.Join != nil {
		for _, m := range x.byFar {
			add(m)
		}
	} else {
		add(x.byFar[q.Far])
	}
	i, f := correlate(q, vs)
	if i < 0 {
		return nil, f
	}
	return cs[i], nil
}

// candidates tells whether a session to far may take a joining leg, so
// that an ordinary call costs no registry lookup.
func (x *joinIndex) candidates(far string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, v := range x.byFar[far] {
		if !v.Ending {
			return true
		}
	}
	return false
}

// dualState is a session's dual-path state, nil when dual-path calls are
// off.
type dualState struct {
	firstAt time.Time
	dev     map[*uasLeg]device
	joined  map[*uasLeg]time.Time
	left    map[*uasLeg]time.Time  // near legs that ended before the session
	paths   pathState              // pathmedia.go
	probes  map[*uasLeg]*pathProbe // pathprobe.go
	// awaitAnswer: near legs whose 2xx carried our offer, by the CSeq
	// their ACK will bring the answer in (pathsignal.go).
	awaitAnswer map[*uasLeg]uint32
	two         bool // counted in pathMetrics.twoPaths
}

// dualTrunk gives the trunk src belongs to, from DualPath.Trunks: the
// carrier path's trunk when no trunk cache (Config.Numbers) is set.
func (s *Server) dualTrunk(ctx context.Context, src string) (registry.Trunk, bool) {
	dp := s.cfg.DualPath
	if dp.Window <= 0 || dp.Trunks == nil {
		return registry.Trunk{}, false
	}
	ap, err := netip.ParseAddrPort(src)
	if err != nil {
		return registry.Trunk{}, false
	}
	ts, err := dp.Trunks(ctx)
	if err != nil {
		s.log.Warn("trunks", "err", err)
		return registry.Trunk{}, false
	}
	return registry.MatchTrunk(ts, ap.Addr().Unmap())
}

// msisdns gives the MSISDNs of imID's terminals.
func (s *Server) msisdns(ctx context.Context, imID string) []string {
	if s.cfg.DualPath.Terminals == nil {
		return nil
	}
	ts, err := s.cfg.DualPath.Terminals.Terminals(ctx, imID)
	if err != nil {
		s.log.Debug("terminals of a caller", "err", err)
		return nil
	}
	var out []string
	for _, t := range ts {
		if t.MobileID.Type == registry.MSISDN {
			out = append(out, t.MobileID.Value)
		}
	}
	return out
}

// joinOf decides whether req, from dev to callee, joins a session: the
// session, or nil for a call of its own; false when req has been answered
// (a refused Join).
func (s *Server) joinOf(req *sipmsg.Request, tx sipmsg.ServerTransaction, dev device, callee string) (*session, bool) {
	if s.cfg.DualPath.Window <= 0 {
		return nil, true
	}
	q := joinQuery{Far: callee, At: s.cfg.DualPath.Clock.Now(), Window: s.cfg.DualPath.Window}
	if h := req.GetHeader("Join"); h != nil {
		j, err := parseJoin(h.Value())
		if err != nil {
			s.respond(tx, req, 400, err.Error())
			return nil, false
		}
		q.Join = &j
	} else if !dev.pairable() || !s.joins.candidates(callee) {
		return nil, true
	}
	q.Device = dev
	c, f := s.joins.correlate(q)
	if f != nil {
		s.respondFailure(tx, req, f)
		return nil, false
	}
	return c, true
}

// joinLeg takes a second path into c: its INVITE's handler waits here
// until the session ends, because sipgo ends a transaction whose handler
// has returned.
func (s *Server) joinLeg(c *session, req *sipmsg.Request, tx sipmsg.ServerTransaction, dev device) {
	if !c.post(func() { c.onJoin(req, tx, dev) }) {
		s.respondFailure(tx, req, &Failure{Status: 481, Cause: CauseInvalidCallRef, Text: "call ended"})
		return
	}
	<-c.ended
}

// initDual starts the dual-path state of a new session whose first leg
// speaks for dev.
func (c *session) initDual(dev device) {
	// A leg of no known path (a trusted peer's) is nobody's other path,
	// and nothing can join it (sameDevice, speaksFor): its session needs
	// no dual-path state, and is kept out of the join index.
	if c.s.cfg.DualPath.Window <= 0 || dev.Path == pathUnknown {
		return
	}
	now := c.now()
	c.dual = &dualState{
		firstAt: now,
		dev:     map[*uasLeg]device{c.origin: dev},
		joined:  map[*uasLeg]time.Time{c.origin: now},
		left:    map[*uasLeg]time.Time{},

		awaitAnswer: map[*uasLeg]uint32{},
	}
	c.watchPathFlow(c.origin)
	c.publishView()
}

// publishView tells the join index what the session looks like now.
func (c *session) publishView() {
	if c.dual == nil {
		return
	}
	v := sessionView{Far: c.callee, FirstAt: c.dual.firstAt, Ending: c.ending}
	for _, u := range c.uas {
		v.Near = append(v.Near, nearView{
			CallID: u.callID, LocalTag: u.localTag, RemoteTag: u.remoteTag,
			Device: c.dual.dev[u], Up: u.up, Live: !u.ended(),
		})
	}
	c.s.joins.put(c, v)
	if two := !c.ending && len(c.upNear()) >= 2; two != c.dual.two {
		c.dual.two = two
		if two {
			c.s.pathMetrics.twoPaths.Add(1)
		} else {
			c.s.pathMetrics.twoPaths.Add(-1)
		}
	}
}

// liveNear gives the near legs that live: answered, or still waiting for
// the far party's answer.
func (c *session) liveNear() []*uasLeg {
	var out []*uasLeg
	for _, u := range c.uas {
		if !u.ended() && (u.up || !u.final) {
			out = append(out, u)
		}
	}
	return out
}

// onJoin takes a second path of the device into the session.
func (c *session) onJoin(req *sipmsg.Request, tx sipmsg.ServerTransaction, dev device) {
	refuse := func(f *Failure) { c.s.respondFailure(tx, req, f) }
	switch {
	case c.ending || c.dual == nil:
		refuse(&Failure{Status: 481, Cause: CauseInvalidCallRef, Text: "call ended"})
		return
	case len(c.liveNear()) >= maxPaths:
		refuse(&Failure{Status: 486, Cause: CauseUserBusy, Text: "both paths of the call are in use"})
		return
	}
	u := c.addUAS(req, tx)
	c.dual.dev[u] = dev
	c.dual.joined[u] = c.now()
	c.policy = dualPath{}
	c.watchPathFlow(u)
	c.s.setDialog(u.dialogID(), c)
	if !tx.OnCancel(func(*sipmsg.Request) { c.post(func() { c.onUASCancel(u) }) }) {
		u.final = true
		c.legEnded(&u.leg, "caller CANCEL")
		return
	}
	c.log.Info("second path joined", "leg", u.id, "path", dev.Path, "call-id", u.callID)
	switch {
	case c.winner != nil:
		c.answerNear(u)
	case c.alerted():
		_ = tx.Respond(c.uasResponse(u, 180, "", nil))
	}
	c.publishView()
}

func (c *session) alerted() bool {
	for _, l := range c.uac {
		if l.alerted {
			return true
		}
	}
	return false
}

// answerNear gives near leg u the far party's answer, with u's own ports,
// or its offer when u sent none (nearBody).
func (c *session) answerNear(u *uasLeg) {
	far := c.winner
	body, f := c.nearBody(u, sdpBody(u.inv))
	if f != nil {
		c.respondUAS(u, f)
		c.legEnded(&u.leg, "SDP rejected")
		return
	}
	out := c.uasResponse(u, far.ok.StatusCode, far.ok.Reason, body)
	out.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
	u.final, u.up = true, true
	if err := u.tx.Respond(out); err != nil {
		c.log.Warn("200 to second path failed", "err", err)
	}
	c.expectAck(&u.leg, u.tx, out)
	c.startPaths()
}

// farAnswered runs when the far party's 2xx has been relayed to the
// session's origin: the other near legs waiting for it get it too.
func (c *session) farAnswered() {
	if c.dual == nil {
		return
	}
	for _, u := range c.uas {
		if u != c.origin && !u.final {
			c.answerNear(u)
		}
	}
	c.publishView()
}

// nearEnded runs when near leg l ended without ending the session: the
// far leg is bridged with a near leg that lives, and the far party's
// source follows.
func (c *session) nearEnded(l *leg) {
	if c.dual == nil || l.uas == nil {
		return
	}
	c.dual.left[l.uas] = c.now()
	c.stopProbe(l.uas)
	live := c.liveNear()
	if len(live) > 0 && l.uas == c.origin {
		// The session's answer and provisionals go to its origin: a near
		// leg that lives takes its place, with its own offer towards
		// every far leg still ringing.
		c.origin = live[0]
		for _, f := range c.uac {
			if f.trying() && !f.up {
				if _, err := c.media.Offer(c.ctx, c.origin.id, f.id, sdpBody(c.origin.inv)); err != nil {
					c.log.Warn("second path's offer rejected", "err", err)
				}
			}
		}
	}
	if c.winner != nil && c.peer[&c.winner.leg] == nil && len(live) > 0 {
		c.bridge(&c.winner.leg, &live[0].leg)
	}
	c.pathGone(l.id)
	c.publishView()
}

// dualPath is the bridge policy of a session with two near legs: it
// lives while a near leg and the far leg live. A near leg's BYE ends that
// leg alone; the far leg's fate is twoParty's.
type dualPath struct{}

func (dualPath) answered(c *session, l *uacLeg) []*uacLeg { return twoParty{}.answered(c, l) }

func (dualPath) legEnded(c *session, l *leg) bool {
	if l.uas != nil {
		return len(c.liveNear()) == 0
	}
	return twoParty{}.legEnded(c, l)
}

var _ bridgePolicy = dualPath{}

// deviceOf says which path of a device an INVITE is, for dual-path
// correlation: the carrier path is a trunk's call to an IM user (the
// device's number asserted), the data path a caller that authenticated by
// digest. A call to a number (a DID), a trusted peer's and any call while
// dual-path is off belong to no device.
func (s *Server) deviceOf(req *sipmsg.Request, in inbound) device {
	switch {
	case s.cfg.DualPath.Window <= 0 || in.did != nil:
		return device{}
	case in.trunk != nil:
		return device{Path: pathCarrier, Number: in.identity.Number}
	case s.cfg.Auth != nil && !s.trusted(req.Source()):
		// The MSISDNs now, not when a carrier path turns up: the session's
		// view must say which number is this device's other path.
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.TxTimeout)
		defer cancel()
		return device{Path: pathData, User: in.caller, MSISDNs: s.msisdns(ctx, in.caller)}
	}
	return device{}
}

// answerPathProbe answers an in-dialog OPTIONS on a near leg of a
// dual-path session itself: the device probes its own path to us, and a
// second path has no peer to relay it to (a 481 would end that path's
// dialog, RFC 5057 §5.1). True when it has answered.
func (c *session) answerPathProbe(from *leg, sr *serverReq) bool {
	if c.dual == nil || len(c.uas) < 2 || from.uas == nil || sr.req.Method != sipmsg.OPTIONS || c.ending || !from.up {
		return false
	}
	res := c.response(sr.req, 200, "", nil)
	res.AppendHeader(sipmsg.NewHeader("Allow", allowed))
	sr.respond(res)
	return true
}
