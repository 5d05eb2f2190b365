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
}

// Select makes to hear only from, rewriting towards to so that it sees one
// RTP stream across switches (rtpproxy.Call.Select).
func (s *RTPSession) Select(to, from LegID) { s.call.Select(rtpproxy.Leg(to), rtpproxy.Leg(from)) }

// LastRTP is when leg last sent RTP.
func (s *RTPSession) LastRTP(leg LegID) time.Time { return s.call.LastRTP(rtpproxy.Leg(leg)) }

var _ PathSelector = (*RTPSession)(nil)

// pathState is which near leg the far party hears, and what the switches
// cost.
type pathState struct {
	active   LegID
	timer    *time.Timer
	switches int
	gaps     []time.Duration // per switch: the active path's silence when it was left
	silent   map[LegID]bool  // past --leg-media-timeout: not a source
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
	if p.timer == nil && len(c.upNear()) >= 2 {
		p.timer = c.after(c.pathPoll(), c.pollPaths)
	}
}

// pollPaths switches the far party's source away from a path that went
// silent, and ends a path silent for --leg-timeout. The incumbent stays
// while it carries media, so two live paths never flap (the hysteresis);
// a path is left once it has been silent for SwitchAfter and another has
// sent within that time.
func (c *session) pollPaths() {
	p := &c.dual.paths
	p.timer = nil
	sel, ok := c.media.(PathSelector)
	if c.ending || !ok || c.winner == nil {
		return
	}
	cfg := c.s.cfg.DualPath
	now := time.Now()
	near := c.upNear()
	if len(near) < 2 {
		return
	}
	if p.silent == nil {
		p.silent = map[LegID]bool{}
	}
	var activeLast time.Time
	var best *uasLeg
	var bestLast time.Time
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
		if u.id == p.active {
			activeLast = last
			continue
		}
		if quiet <= cfg.SwitchAfter && last.After(bestLast) {
			best, bestLast = u, last
		}
	}
	if c.ending {
		return
	}
	if best != nil && now.Sub(activeLast) > cfg.SwitchAfter {
		c.switchPath(sel, best.id, now.Sub(activeLast))
	}
	if len(c.upNear()) >= 2 {
		p.timer = c.after(c.pathPoll(), c.pollPaths)
	}
}

// switchPath makes the far party hear leg to.
func (c *session) switchPath(sel PathSelector, to LegID, gap time.Duration) {
	p := &c.dual.paths
	c.log.Info("path switched", "from", p.active, "to", to, "gap", gap)
	sel.Select(c.winner.id, to)
	p.active = to
	p.switches++
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
		gap = time.Since(last)
	}
	c.switchPath(sel, best.id, gap)
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
	if c.dual != nil && c.dual.paths.timer != nil {
		c.dual.paths.timer.Stop()
		c.dual.paths.timer = nil
	}
}
