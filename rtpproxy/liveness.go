package rtpproxy

import "time"

// LastRTP tells when leg l's party last sent RTP that the relay admitted,
// on any of its streams; the zero time if it never did. It reads the
// relay's per-endpoint clock and allocates nothing, so a caller may poll
// it often (the SIP layer does, to pick the live path of a dual-path
// call).
func (c *Call) LastRTP(l Leg) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var last int64
	for _, st := range c.streams {
		if ep := st.endpointOf(l); ep != nil {
			if c.p.kern != nil {
				ep.mu.Lock()
				c.p.refreshSeen(ep)
				ep.mu.Unlock()
			}
			last = max(last, ep.lastSeen.Load())
		}
	}
	if last == 0 {
		return time.Time{}
	}
	return c.p.epoch.Add(time.Duration(last))
}
