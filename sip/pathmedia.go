package sip

import (
	"time"

	"github.com/imcall/b2bua/rtpproxy"
)

// PathSelector is a MediaSession that lets one leg hear only one other,
// switched while media flows with the receiver's stream kept continuous,
// and tells when a leg last sent RTP; the session finds it by type
// assertion for dual-path calls (RTPSession is one).
type PathSelector interface {
	// Select makes to hear from alone.
	Select(to, from LegID)
	// LastRTP is when leg last sent RTP; the zero time if it never did.
	LastRTP(leg LegID) time.Time
	// Reception gives the packets expected from leg so far and the
	// packets of those lost (RFC 3550 A.3, cumulative).
	Reception(leg LegID) (expected uint64, lost int64)
}

// Select makes to hear only from, rewriting towards to so that it sees one
// RTP stream across switches (rtpproxy.Call.Select).
func (s *RTPSession) Select(to, from LegID) { s.call.Select(rtpproxy.Leg(to), rtpproxy.Leg(from)) }

// LastRTP is when leg last sent RTP.
func (s *RTPSession) LastRTP(leg LegID) time.Time { return s.call.LastRTP(rtpproxy.Leg(leg)) }

// Reception sums leg's counters over its streams. It is read once per
// loss window, not per poll, since the counters come as a list.
func (s *RTPSession) Reception(leg LegID) (expected uint64, lost int64) {
	for _, st := range s.call.Stats() {
		if st.Leg == rtpproxy.Leg(leg) {
			expected += st.Expected
			lost += st.Lost
		}
	}
	return expected, lost
}

var _ PathSelector = (*RTPSession)(nil)

// now is the dual-path clock's time.
func (c *session) now() time.Time { return c.s.cfg.DualPath.Clock.Now() }

// pathAfter runs fn on the loop after d on the dual-path clock.
func (c *session) pathAfter(d time.Duration, fn func()) Timer {
	return c.s.cfg.DualPath.Clock.AfterFunc(d, func() { c.post(fn) })
}

// pathState is which near leg the far party hears, and what the switches
// cost.
type pathState struct {
	active     LegID
	timer      Timer
	switches   int
	lastSwitch time.Time
	gaps       []time.Duration // per switch: the active path's silence when it was left
	silent     map[LegID]bool  // past --leg-media-timeout: not a source
	loss       map[LegID]*lossMeter
	lossAt     time.Time // when the loss counters were last read
}

// pathPoll is how often the session looks at its near legs' liveness:
// a fraction of SwitchAfter, so a dead path is left within about
// SwitchAfter of its last packet.
func (c *session) pathPoll() time.Duration {
	return max(c.s.cfg.DualPath.SwitchAfter/6, time.Millisecond)
}

// upNear gives the answered near legs that live.
func (c *session) upNear() []*uasLeg {
	var out []*uasLeg
	for _, u := range c.uas {
		if u.up && !u.ended() {
			out = append(out, u)
		}
	}
	return out
}

// startPaths makes the far party hear one near leg, the one it heard so
// far, and starts watching the paths once two are up.
func (c *session) startPaths() {
	sel, ok := c.media.(PathSelector)
	if !ok || c.winner == nil {
		return
	}
	p := &c.dual.paths
	if p.active == "" {
		p.active = c.origin.id
	}
	// The new path's answer connected it to the far leg both ways; the
	// far party must go on hearing one source.
	sel.Select(c.winner.id, p.active)
	if len(c.upNear()) >= 2 {
		c.startProbes()
		if p.timer == nil {
			p.timer = c.pathAfter(c.pathPoll(), c.pollPaths)
		}
	}
}

// pollPaths switches the far party's source away from a path that went
// silent or lossy (choosePath), and ends a path silent for --leg-timeout.
func (c *session) pollPaths() {
	p := &c.dual.paths
	p.timer = nil
	sel, ok := c.media.(PathSelector)
	if c.ending || !ok || c.winner == nil {
		return
	}
	cfg := c.s.cfg.DualPath
	now := c.now()
	near := c.upNear()
	if len(near) < 2 {
		return
	}
	if p.silent == nil {
		p.silent, p.loss = map[LegID]bool{}, map[LegID]*lossMeter{}
	}
	readLoss := now.Sub(p.lossAt) >= lossWindow/10
	if readLoss {
		p.lossAt = now
	}
	samples := make([]pathSample, 0, len(near))
	var activeLast time.Time
	for _, u := range near {
		last := sel.LastRTP(u.id)
		if last.IsZero() {
			last = c.dual.joined[u]
		}
		quiet := now.Sub(last)
		if quiet > cfg.LegTimeout {
			c.log.Info("path silent: ending it", "leg", u.id, "silent", quiet)
			c.endSilentPath(u)
			continue
		}
		if q := quiet > cfg.LegMediaTimeout; q != p.silent[u.id] {
			p.silent[u.id] = q
			c.log.Info("path media", "leg", u.id, "silent", q)
		}
		m := p.loss[u.id]
		if m == nil {
			m = &lossMeter{}
			p.loss[u.id] = m
		}
		if readLoss {
			exp, lost := sel.Reception(u.id)
			m.sample(now, exp, lost)
		}
		if u.id == p.active {
			activeLast = last
		}
		samples = append(samples, pathSample{id: u.id, last: last, loss: m.loss()})
	}
	if c.ending {
		return
	}
	rules := pathRules{switchAfter: cfg.SwitchAfter, lossMargin: cfg.LossMargin, lossHold: cfg.LossHold}
	if to, why := choosePath(now, p.active, samples, rules, p.lastSwitch); to != "" {
		c.switchPath(sel, to, now.Sub(activeLast), why)
	}
	if len(c.upNear()) >= 2 {
		p.timer = c.pathAfter(c.pathPoll(), c.pollPaths)
	}
}

// switchPath makes the far party hear leg to.
func (c *session) switchPath(sel PathSelector, to LegID, gap time.Duration, why string) {
	p := &c.dual.paths
	c.log.Info("path switched", "from", p.active, "to", to, "gap", gap, "why", why)
	sel.Select(c.winner.id, to)
	p.active = to
	p.switches++
	p.lastSwitch = c.now()
	p.gaps = append(p.gaps, gap)
	c.s.pathMetrics.switched(gap)
}

// pathGone runs when near leg id ended: if the far party heard it, it
// hears another path now.
func (c *session) pathGone(id LegID) {
	p := &c.dual.paths
	sel, ok := c.media.(PathSelector)
	if !ok || c.winner == nil || p.active != id {
		return
	}
	var best *uasLeg
	var bestLast time.Time
	for _, u := range c.upNear() {
		if last := sel.LastRTP(u.id); best == nil || last.After(bestLast) {
			best, bestLast = u, last
		}
	}
	if best == nil {
		return
	}
	gap := time.Duration(0)
	if last := sel.LastRTP(id); !last.IsZero() {
		gap = c.now().Sub(last)
	}
	c.switchPath(sel, best.id, gap, "path ended")
}

// endSilentPath ends near leg u, silent for --leg-timeout, with BYE and a
// Reason (Q.850 102, recovery on timer expiry).
func (c *session) endSilentPath(u *uasLeg) {
	old := c.byeCause
	c.byeCause = CauseRecoveryOnTimer
	c.bye(&u.leg, "path media timeout")
	c.byeCause = old
	c.legEnded(&u.leg, "path media timeout")
}

func (c *session) stopPaths() {
	if c.dual == nil {
		return
	}
	if c.dual.paths.timer != nil {
		c.dual.paths.timer.Stop()
		c.dual.paths.timer = nil
	}
	c.stopProbes()
	c.unwatchPathFlows()
}
