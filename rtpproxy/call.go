package rtpproxy

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// Call anchors the media of one call between leg A (the caller) and leg B
// (the callee). The SIP layer passes every SDP it relays through
// RewriteOffer or RewriteAnswer, calls Answered on the final 2xx, watches
// Done for dead media, and calls Close when the call ends.
//
// Its methods are safe for concurrent use, but SDP must be passed in the
// order of the offer/answer exchange (RFC 3264), which the call's own event
// loop guarantees.
type Call struct {
	p      *Proxy
	id     string
	w      *worker
	ctx    context.Context
	cancel context.CancelCauseFunc

	mu       sync.Mutex
	streams  []*stream
	origin   [2]origin // the o= line of what we send to each side
	answered int64     // proxy clock at Answered; 0 before
	closed   bool
}

// stream is one m-line of the session, anchored on both legs.
type stream struct {
	media string
	ep    [2]*endpoint // nil while the m-line was never active
	// live[s]: the latest SDP from side s has this stream sendrecv, with a
	// real address and a non-zero port, so s is expected to send.
	live  [2]bool
	since int64 // proxy clock when the stream last became live on both legs
}

// origin is our o= line toward one side: RFC 3264 §8 wants the same
// session id throughout, and the version incremented by one exactly when
// the SDP changes.
type origin struct {
	id, version uint64
	last        []byte
}

func newCall(ctx context.Context, p *Proxy, cc CallConfig) *Call {
	cctx, cancel := context.WithCancelCause(ctx)
	c := &Call{p: p, id: cc.ID, w: p.eng.pick(), ctx: cctx, cancel: cancel}
	for i := range c.origin {
		c.origin[i].id = p.sessionID()
		c.origin[i].version = 1
	}
	return c
}

// Done is closed when the call should end: its context ended, supervision
// found dead media (Err wraps ErrMediaTimeout), or it was closed.
func (c *Call) Done() <-chan struct{} { return c.ctx.Done() }

// Err tells why Done was closed; nil while it is open.
func (c *Call) Err() error {
	if c.ctx.Err() == nil {
		return nil
	}
	return context.Cause(c.ctx)
}

func (c *Call) end(cause error) { c.cancel(cause) }

// RewriteOffer rewrites an offer that side from sent, for the other side:
// every address becomes the proxy's advertised address and every port one
// of the proxy's ports on the other leg. It opens the ports of new m-lines.
// Errors are *Error values that carry their SIP status.
func (c *Call) RewriteOffer(from Side, body []byte) ([]byte, error) {
	return c.rewrite(from, body, true)
}

// RewriteAnswer rewrites the answer (in a 183 or the 2xx, or the answer to a
// re-INVITE) that side from sent, for the other side.
func (c *Call) RewriteAnswer(from Side, body []byte) ([]byte, error) {
	return c.rewrite(from, body, false)
}

// Answered tells the call that the final answer was given: media
// supervision starts now (ringing without early media must not time out).
func (c *Call) Answered() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.answered == 0 {
		c.answered = c.p.now()
	}
}

// Close stops relaying and releases the call's ports (they drain first). It
// is idempotent.
func (c *Call) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	for _, st := range c.streams {
		for _, ep := range st.ep {
			if ep != nil {
				c.p.eng.releasePair(ep)
			}
		}
	}
	c.mu.Unlock()
	c.cancel(ErrClosed)
	c.p.forget(c)
	return nil
}

// ensure opens the ports of stream i on both legs if it has none yet.
func (c *Call) ensure(i int, media string) (*stream, error) {
	for len(c.streams) <= i {
		c.streams = append(c.streams, &stream{})
	}
	st := c.streams[i]
	if st.ep[0] != nil {
		return st, nil
	}
	st.media = media
	var eps [2]*endpoint
	for s := range eps {
		eps[s] = &endpoint{side: Side(s), media: media, isRTP: true}
	}
	eps[0].peer, eps[1].peer = eps[1], eps[0]
	for s := range eps {
		if err := c.p.eng.openPair(c.w, eps[s]); err != nil {
			if s == 1 {
				c.p.eng.releasePair(eps[0])
			}
			return nil, err
		}
	}
	st.ep = eps
	return st, nil
}

// checkMedia returns a cause when a leg of an answered call sent no RTP for
// timeout on any stream that both legs have live. Held streams (sendonly,
// recvonly, inactive, 0.0.0.0) are exempt, and the clock restarts when a
// stream is resumed.
func (c *Call) checkMedia(now, timeout int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.answered == 0 || c.ctx.Err() != nil {
		return nil
	}
	for side := range 2 {
		active := false
		var last int64
		for _, st := range c.streams {
			if st.ep[0] == nil || !st.live[0] || !st.live[1] {
				continue
			}
			active = true
			last = max(last, st.ep[side].lastSeen.Load(), st.since, c.answered)
		}
		if active && now-last > timeout {
			return fmt.Errorf("%w: no RTP from leg %v for %v", ErrMediaTimeout, Side(side), time.Duration(timeout))
		}
	}
	return nil
}

// LegStats are the counters of what one leg's party sent on one stream
// (RFC 3550 A.3 loss, A.8 jitter), for the call record and the metrics.
type LegStats struct {
	Stream      int       `json:"stream"` // m-line index
	Side        string    `json:"side"`   // "a" or "b"
	Media       string    `json:"media"`
	LocalPort   int       `json:"local_port"`
	Remote      string    `json:"remote,omitempty"` // where the proxy sends this party's media
	Latched     bool      `json:"latched"`
	Packets     uint64    `json:"packets"`
	Bytes       uint64    `json:"bytes"`
	RTCPPackets uint64    `json:"rtcp_packets"`
	Expected    uint64    `json:"expected"`
	Lost        int64     `json:"lost"`
	JitterMs    float64   `json:"jitter_ms"`
	Dropped     uint64    `json:"dropped"` // from strangers, or not RTP
	LastSeen    time.Time `json:"last_seen,omitzero"`
}

// Stats returns the counters of every leg of every stream.
func (c *Call) Stats() []LegStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []LegStats
	for i, st := range c.streams {
		for _, ep := range st.ep {
			if ep == nil {
				continue
			}
			ls := LegStats{Stream: i, Side: ep.side.String(), Media: ep.media, LocalPort: ep.rtp.port}
			if r := ep.dstRTP.Load(); r != nil {
				ls.Remote = r.ap.String()
			}
			if t := ep.lastSeen.Load(); t != 0 {
				ls.LastSeen = c.p.epoch.Add(time.Duration(t))
			}
			clock := ep.clock.Load()
			ep.mu.Lock()
			ls.Latched = ep.latched
			ls.Packets, ls.Bytes = ep.st.packets, ep.st.bytes
			ls.RTCPPackets = ep.rtcpPackets
			ls.Expected = ep.st.prevExpected + ep.st.expected()
			ls.Lost = ep.st.lost()
			ls.Dropped = ep.dropped
			if clock > 0 {
				ls.JitterMs = float64(ep.st.jitter>>4) * 1000 / float64(clock)
			}
			ep.mu.Unlock()
			out = append(out, ls)
		}
	}
	return out
}

// LocalPorts gives, for side s, the RTP port of each m-line the proxy
// listens on for that side's party (0 for an m-line without ports).
func (c *Call) LocalPorts(s Side) []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]int, len(c.streams))
	for i, st := range c.streams {
		if st.ep[s] != nil {
			out[i] = st.ep[s].rtp.port
		}
	}
	return out
}

func addrPort(a netip.Addr, port int) netip.AddrPort { return netip.AddrPortFrom(a, uint16(port)) }
