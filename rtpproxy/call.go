package rtpproxy

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Call anchors the media of one call among its legs. The SIP layer passes
// every SDP it relays from one leg to another through RewriteOffer or
// RewriteAnswer, calls Answered on the final 2xx, watches Done for dead
// media, and calls Close when the call ends. Who hears whom follows the
// offer/answer exchanges (two legs that completed one hear each other) and
// can be changed at any time with Connect, Disconnect, Select, SetSink and
// RemoveLeg, while packets flow.
//
// Its methods are safe for concurrent use, but SDP must be passed in the
// order of the offer/answer exchange (RFC 3264), which the call's own event
// loop guarantees.
type Call struct {
	p      *Proxy
	id     string
	w      *worker // relay thread of all the call's sockets
	ctx    context.Context
	cancel context.CancelCauseFunc

	mu       sync.Mutex
	legs     []*legState
	streams  []*stream
	route    routing
	answered int64 // proxy clock at Answered; 0 before
	closed   bool
}

// legState is the call's view of one leg.
type legState struct {
	name    Leg
	origin  origin // the o= line of what we send to this leg
	removed bool
}

// stream is one m-line of the session, with an endpoint per leg that
// negotiated it.
type stream struct {
	media string
	eps   []*endpoint // in the order they were opened; only ever appended to
	table atomic.Pointer[table]
	since int64 // proxy clock when the stream last got two live legs
}

// endpointOf is l's endpoint on st, nil if it has none.
func (st *stream) endpointOf(l Leg) *endpoint {
	for _, ep := range st.eps {
		if ep.leg == l && !ep.removed {
			return ep
		}
	}
	return nil
}

func (st *stream) liveCount() int {
	n := 0
	for _, ep := range st.eps {
		if ep.live {
			n++
		}
	}
	return n
}

// origin is our o= line toward one leg: RFC 3264 §8 wants the same
// session id throughout, and the version incremented by one exactly when
// the SDP changes.
type origin struct {
	id, version uint64
	last        []byte
}

func newCall(ctx context.Context, p *Proxy, cc CallConfig) *Call {
	cctx, cancel := context.WithCancelCause(ctx)
	return &Call{p: p, id: cc.ID, w: p.eng.pick(), ctx: cctx, cancel: cancel, route: newRouting()}
}

// leg is the live state of l, nil if unknown or removed.
func (c *Call) leg(l Leg) *legState {
	for _, ls := range c.legs {
		if ls.name == l && !ls.removed {
			return ls
		}
	}
	return nil
}

// addLeg returns l's state, creating it on first mention.
func (c *Call) addLeg(l Leg) *legState {
	if ls := c.leg(l); ls != nil {
		return ls
	}
	ls := &legState{name: l, origin: origin{id: c.p.sessionID(), version: 1}}
	c.legs = append(c.legs, ls)
	return ls
}

// Done is closed when the call should end: its context ended, supervision
// found dead media (Err wraps ErrMediaTimeout), or it was closed.
func (c *Call) Done() <-chan struct{} { return c.ctx.Done() }

// Context is the call's context: Done is its Done, Err its cause. A
// caller can wait on it without a goroutine (context.AfterFunc).
func (c *Call) Context() context.Context { return c.ctx }

// Err tells why Done was closed; nil while it is open.
func (c *Call) Err() error {
	if c.ctx.Err() == nil {
		return nil
	}
	return context.Cause(c.ctx)
}

func (c *Call) end(cause error) { c.cancel(cause) }

// RewriteOffer rewrites an offer that leg from sent, for delivery to leg
// to: every address becomes the proxy's advertised address and every port
// one of to's endpoint ports, which it opens for new m-lines (and from's,
// for the answer). It learns where from receives. From then on to's media
// reaches from, who must be ready for it (RFC 3264 §5.1: early media).
// Errors are *Error values that carry their SIP status.
func (c *Call) RewriteOffer(from, to Leg, body []byte) ([]byte, error) {
	return c.rewrite(from, to, body, true)
}

// RewriteAnswer rewrites the answer (in a 183 or the 2xx, or the answer to
// a re-INVITE) that leg from sent to to's offer, for delivery to to. After
// the first answer between them, from and to hear each other both ways;
// later answers leave the table as it is.
func (c *Call) RewriteAnswer(from, to Leg, body []byte) ([]byte, error) {
	return c.rewrite(from, to, body, false)
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
	c.syncKernel() // before the ports drain: their packets come back to userspace
	for _, st := range c.streams {
		for _, ep := range st.eps {
			if !ep.removed {
				c.p.eng.releasePair(ep)
			}
		}
	}
	c.mu.Unlock()
	c.cancel(ErrClosed)
	c.p.forget(c)
	return nil
}

// ensure opens the ports of stream i for legs from and to (in that order)
// where they have none yet, in the address family v6.
func (c *Call) ensure(i int, media string, v6 bool, legs ...Leg) (*stream, error) {
	for len(c.streams) <= i {
		c.streams = append(c.streams, &stream{})
	}
	st := c.streams[i]
	if len(st.eps) == 0 {
		st.media = media
	}
	for _, l := range legs {
		if st.endpointOf(l) != nil {
			continue
		}
		ep := &endpoint{leg: l, media: st.media, strm: st, call: c, idx: len(st.eps), v6: v6, isRTP: true}
		if err := c.p.eng.openPair(c.w, ep); err != nil {
			return nil, err
		}
		st.eps = append(st.eps, ep)
		// before any packet can reach the new sockets: the worker adds
		// them only after this returns
		c.publish()
	}
	return st, nil
}

// checkMedia returns a cause when a leg of an answered call sent no RTP for
// timeout on any stream where it and another leg are live. Held streams
// (sendonly, recvonly, inactive, 0.0.0.0) are exempt, and the clock
// restarts when a stream is resumed.
func (c *Call) checkMedia(now, timeout int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.answered == 0 || c.ctx.Err() != nil {
		return nil
	}
	for _, ls := range c.legs {
		if ls.removed {
			continue
		}
		active := false
		var last int64
		for _, st := range c.streams {
			ep := st.endpointOf(ls.name)
			if ep == nil || !ep.live || st.liveCount() < 2 {
				continue
			}
			if c.p.kern != nil {
				ep.mu.Lock()
				c.p.refreshSeen(ep)
				ep.mu.Unlock()
			}
			active = true
			last = max(last, ep.lastSeen.Load(), st.since, c.answered)
		}
		if active && now-last > timeout {
			return fmt.Errorf("%w: no RTP from leg %s for %v", ErrMediaTimeout, ls.name, time.Duration(timeout))
		}
	}
	return nil
}

// LegStats are the counters of what one leg's party sent on one stream
// (RFC 3550 A.3 loss, A.8 jitter), for the call record and the metrics.
type LegStats struct {
	Stream      int       `json:"stream"` // m-line index
	Leg         Leg       `json:"leg"`
	Media       string    `json:"media"`
	LocalPort   int       `json:"local_port"`
	Remote      string    `json:"remote,omitempty"` // where the proxy sends this party's media
	Latched     bool      `json:"latched"`
	Kernel      bool      `json:"kernel,omitempty"`  // forwarded in the kernel now
	Removed     bool      `json:"removed,omitempty"` // RemoveLeg: the counters stopped there
	Packets     uint64    `json:"packets"`
	Bytes       uint64    `json:"bytes"`
	RTCPPackets uint64    `json:"rtcp_packets"`
	Expected    uint64    `json:"expected"`
	Lost        int64     `json:"lost"`
	JitterMs    float64   `json:"jitter_ms"`
	Dropped     uint64    `json:"dropped"` // from strangers, or not RTP
	LastSeen    time.Time `json:"last_seen,omitzero"`
}

// Stats returns the counters of every leg of every stream, stream by
// stream, legs in the order their endpoints were opened.
func (c *Call) Stats() []LegStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []LegStats
	for i, st := range c.streams {
		for _, ep := range st.eps {
			ls := LegStats{Stream: i, Leg: ep.leg, Media: ep.media, LocalPort: ep.rtp.port, Removed: ep.removed}
			if r := ep.dstRTP.Load(); r != nil {
				ls.Remote = r.ap.String()
			}
			clock := ep.clock.Load()
			ep.mu.Lock()
			st, last := ep.st, ep.lastSeen.Load()
			if c.p.kern != nil {
				st, last = c.p.kernelView(ep)
			}
			ls.Latched = ep.latched
			ls.Kernel = ep.kern != nil
			ls.Packets, ls.Bytes = st.packets, st.bytes
			ls.RTCPPackets = ep.rtcpPackets
			ls.Expected = st.prevExpected + st.expected()
			ls.Lost = st.lost()
			ls.Dropped = ep.dropped
			if clock > 0 {
				ls.JitterMs = float64(st.jitter>>4) * 1000 / float64(clock)
			}
			ep.mu.Unlock()
			if last != 0 {
				ls.LastSeen = c.p.epoch.Add(time.Duration(last))
			}
			out = append(out, ls)
		}
	}
	return out
}

// LocalPorts gives, for leg l, the RTP port of each m-line the proxy
// listens on for that leg's party (0 for an m-line without ports).
func (c *Call) LocalPorts(l Leg) []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]int, len(c.streams))
	for i, st := range c.streams {
		if ep := st.endpointOf(l); ep != nil {
			out[i] = ep.rtp.port
		}
	}
	return out
}

func addrPort(a netip.Addr, port int) netip.AddrPort { return netip.AddrPortFrom(a, uint16(port)) }
