package sip

import (
	"context"
	"fmt"

	sipmsg "github.com/emiago/sipgo/sip"
)

// Signalling liveness of the near legs of a dual-path session, beside
// their media (pathmedia.go): the transport flow an INVITE came on, and
// in-dialog OPTIONS we send on each answered path.

// pathProbe is one near leg's probing state.
type pathProbe struct {
	timer   Timer              // the next probe, or the pending one's timeout
	cancel  context.CancelFunc // of the pending probe; nil between probes
	pending uint32             // CSeq of the pending probe
}

// watchPathFlow ends near leg u when the TCP/TLS flow its INVITE came on
// fails (flow.go): over a stream, that flow is the path.
func (c *session) watchPathFlow(u *uasLeg) {
	if c.dual == nil || !streamTransport(u.inv.Transport()) {
		return
	}
	id := flowID(u.inv.Transport(), u.inv.Source())
	if c.s.flows.watch(id, "leg "+u.key(), func() { c.post(func() { c.pathFlowFailed(u) }) }) == flowFailed {
		c.post(func() { c.pathFlowFailed(u) }) // it failed while the INVITE was handled
	}
}

// unwatchPathFlows drops the session's flow watchers as it ends.
func (c *session) unwatchPathFlows() {
	for _, u := range c.uas {
		if u.inv != nil && streamTransport(u.inv.Transport()) {
			c.s.flows.unwatch(flowID(u.inv.Transport(), u.inv.Source()), "leg "+u.key())
		}
	}
}

// pathFlowFailed ends near leg u, whose flow failed, as a dead path. Only
// a session that has had two paths does: an ordinary call outlives its
// connection, since a UA may open another for its next request (RFC 3261
// §18).
func (c *session) pathFlowFailed(u *uasLeg) {
	if _, dual := c.policy.(dualPath); c.ending || u.ended() || !dual {
		return
	}
	c.log.Info("path flow failed: ending it", "leg", u.id)
	if !u.final {
		u.final = true // nothing reaches its INVITE's transaction now
	}
	u.byeSent = true // nor a BYE on that path
	c.legEnded(&u.leg, "path flow failed")
}

// startProbes probes every answered near leg that is not probed yet.
func (c *session) startProbes() {
	if c.dual.probes == nil {
		c.dual.probes = map[*uasLeg]*pathProbe{}
	}
	for _, u := range c.upNear() {
		if c.dual.probes[u] == nil {
			p := &pathProbe{}
			c.dual.probes[u] = p
			p.timer = c.pathAfter(c.s.cfg.DualPath.ProbeInterval, func() { c.probe(u) })
		}
	}
}

// probe sends an in-dialog OPTIONS on near leg u (RFC 3261 §11: OPTIONS
// in a dialog asks the peer about that dialog). A 481 or 408, or no
// answer within ProbeTimeout, ends the path (RFC 5057 §5.1); any other
// answer, even a 405, says it lives.
func (c *session) probe(u *uasLeg) {
	p := c.dual.probes[u]
	if p == nil || c.ending || u.ended() {
		return
	}
	req := u.newRequest(sipmsg.OPTIONS, 0)
	req.AppendHeader(sipmsg.NewHeader("Accept", "application/sdp"))
	seq := req.CSeq().SeqNo
	ctx, cancel := context.WithCancel(c.ctx)
	p.pending, p.cancel = seq, cancel
	p.timer = c.pathAfter(c.s.cfg.DualPath.ProbeTimeout, func() {
		if p.pending == seq {
			c.probeFailed(u, "no answer to OPTIONS")
		}
	})
	c.s.request(ctx, req, nil, func(res *sipmsg.Response, err error) {
		c.post(func() { c.onProbe(u, seq, res, err) })
	})
}

func (c *session) onProbe(u *uasLeg, seq uint32, res *sipmsg.Response, err error) {
	p := c.dual.probes[u]
	if p == nil || p.pending != seq || c.ending || u.ended() {
		return
	}
	switch {
	case err != nil:
		c.probeFailed(u, "no answer to OPTIONS")
		return
	case res.StatusCode == 481 || res.StatusCode == 408:
		u.byeSent = res.StatusCode == 481 // the peer has no such dialog: no BYE
		c.probeFailed(u, fmt.Sprintf("OPTIONS answered %d", res.StatusCode))
		return
	}
	p.timer.Stop()
	p.cancel()
	p.pending, p.cancel = 0, nil
	p.timer = c.pathAfter(c.s.cfg.DualPath.ProbeInterval, func() { c.probe(u) })
}

// probeFailed ends near leg u, whose probe failed, with BYE and Reason
// (Q.850 102: recovery on timer expiry).
func (c *session) probeFailed(u *uasLeg, why string) {
	c.stopProbe(u)
	c.log.Info("path probe failed: ending it", "leg", u.id, "why", why)
	old := c.byeCause
	c.byeCause = CauseRecoveryOnTimer
	c.bye(&u.leg, "path probe failed: "+why)
	c.byeCause = old
	c.legEnded(&u.leg, "path probe failed: "+why)
}

// stopProbe stops probing near leg u.
func (c *session) stopProbe(u *uasLeg) {
	p := c.dual.probes[u]
	if p == nil {
		return
	}
	p.timer.Stop()
	if p.cancel != nil {
		p.cancel()
	}
	delete(c.dual.probes, u)
}

// stopProbes stops every probe as the session ends.
func (c *session) stopProbes() {
	for u := range c.dual.probes {
		c.stopProbe(u)
	}
}
