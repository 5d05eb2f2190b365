package rtpproxy

// Leg names one party of a call: the SIP layer's dialog on that side
// ("caller", "callee", a fork branch, a conference member). Each leg has
// its own endpoint on every stream of the call.
type Leg string

// Sink receives the RTP one leg sends, instead of (or beside) the other
// legs: the conference mixer implements it. WriteRTP is called on the
// call's relay thread for every RTP packet the leg's party sent and the
// latch admitted (never RTCP); pkt is only valid during the call, so a
// sink that keeps it copies it, and a sink that blocks stalls the relay
// thread of the call and of every call sharing that thread.
type Sink interface {
	WriteRTP(from Leg, pkt []byte)
}

// table is the forwarding table of one stream: for each endpoint (by
// endpoint.idx), who receives what its party sends. A table is never
// changed once published; a change builds a new one and swaps it in
// (stream.table), so the relay thread reads it without a lock.
type table struct {
	routes []route
}

type route struct {
	to   []dest
	sink Sink
}

// dest is one receiver of a route. rewrite: the receiver gets one
// continuous stream whatever the source (outState).
type dest struct {
	ep      *endpoint
	rewrite bool
}

// edge is a directed "from's media goes to to".
type edge struct{ from, to Leg }

// sinkRoute is a Sink for the streams of one media type.
type sinkRoute struct {
	media string
	s     Sink
}

// routing is the call's forwarding policy in terms of legs; every change
// rebuilds the tables of all streams from it. Guarded by Call.mu.
type routing struct {
	edges    map[edge]bool
	rewrite  map[Leg]bool
	sinks    map[Leg]sinkRoute
	offered  map[edge]bool // the offer from→to was seen: to→from is connected
	answered map[edge]bool // the answer from→to was seen: both ways connected
}

func newRouting() routing {
	return routing{
		edges:    map[edge]bool{},
		rewrite:  map[Leg]bool{},
		sinks:    map[Leg]sinkRoute{},
		offered:  map[edge]bool{},
		answered: map[edge]bool{},
	}
}

// build makes the table of st from the routing. Removed endpoints neither
// send nor receive; their slots stay so that idx keeps its meaning.
func (r *routing) build(st *stream) *table {
	t := &table{routes: make([]route, len(st.eps))}
	for i, src := range st.eps {
		if src.removed {
			continue
		}
		for _, d := range st.eps {
			if d != src && !d.removed && d.leg != src.leg && r.edges[edge{src.leg, d.leg}] {
				t.routes[i].to = append(t.routes[i].to, dest{ep: d, rewrite: r.rewrite[d.leg]})
			}
		}
		if sr, ok := r.sinks[src.leg]; ok && sr.media == st.media {
			t.routes[i].sink = sr.s
		}
	}
	return t
}

// publish rebuilds and swaps in the table of every stream. Called with
// c.mu held after any change to the routing or to the endpoints.
func (c *Call) publish() {
	for _, st := range c.streams {
		st.table.Store(c.route.build(st))
	}
	c.syncKernel()
}

// Connect makes from's media go to to (on every stream both have), beside
// whatever else to already hears and wherever else from's media goes:
// calling it for several receivers fans one leg out to them.
func (c *Call) Connect(from, to Leg) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.route.edges[edge{from, to}] = true
	c.publish()
}

// Disconnect stops from's media going to to.
func (c *Call) Disconnect(from, to Leg) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.route.edges, edge{from, to})
	c.publish()
}

// Select makes to hear only from, among all the call's legs, and turns on
// the rewrite toward to: from then on, to receives one RTP stream with one
// SSRC and continuous sequence numbers and timestamps, however often the
// source is switched (RFC 3550 §8.2, RFC 7160). The switch takes effect
// with the next packet the relay thread handles; packets in flight from
// the old source may still arrive before it. RTCP is relayed unchanged:
// sender reports keep their source's SSRC, which the receiver does not
// know and ignores (RFC 3550 §6.4.1 ties a report to its SSRC).
func (c *Call) Select(to, from Leg) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for e := range c.route.edges {
		if e.to == to && e.from != from {
			delete(c.route.edges, e)
		}
	}
	c.route.edges[edge{from, to}] = true
	c.route.rewrite[to] = true
	c.publish()
}

// SetRewrite turns the continuous-stream rewrite toward to on or off (see
// Select). Off, the default, relays packets byte for byte.
func (c *Call) SetRewrite(to Leg, on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if on {
		c.route.rewrite[to] = true
	} else {
		delete(c.route.rewrite, to)
	}
	c.publish()
}

// SetSink hands the RTP that from sends on its streams of the given media
// ("audio") to s as well as to the legs it is connected to; Disconnect
// those for a leg that only feeds the sink. A nil s removes the sink.
func (c *Call) SetSink(from Leg, media string, s Sink) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s == nil {
		delete(c.route.sinks, from)
	} else {
		c.route.sinks[from] = sinkRoute{media: media, s: s}
	}
	c.publish()
}

// RemoveLeg releases the leg's endpoints (their ports drain first) and
// takes it out of every route; its counters stay in Stats. Media between
// the other legs is not disturbed.
func (c *Call) RemoveLeg(l Leg) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	ls := c.leg(l)
	if ls == nil {
		return nil
	}
	ls.removed = true
	for _, st := range c.streams {
		if ep := st.endpointOf(l); ep != nil {
			ep.removed, ep.live = true, false
			c.p.eng.releasePair(ep)
		}
	}
	for e := range c.route.edges {
		if e.from == l || e.to == l {
			delete(c.route.edges, e)
		}
	}
	for _, m := range []map[edge]bool{c.route.offered, c.route.answered} {
		for e := range m {
			if e.from == l || e.to == l {
				delete(m, e)
			}
		}
	}
	delete(c.route.rewrite, l)
	delete(c.route.sinks, l)
	c.publish()
	return nil
}

// routeOf is where ep's packets go; nil before the first table.
func (t *table) routeOf(ep *endpoint) *route {
	if t == nil || ep.idx >= len(t.routes) {
		return nil
	}
	return &t.routes[ep.idx]
}
