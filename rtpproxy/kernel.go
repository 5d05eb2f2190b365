package rtpproxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// KernelMode says whether the RTP of latched two-party streams is
// forwarded in the kernel (an eBPF program on the interfaces' ingress)
// instead of by the relay threads.
type KernelMode int

const (
	// KernelOff relays everything in userspace (the default).
	KernelOff KernelMode = iota
	// KernelAuto forwards in the kernel where the program loads, and in
	// userspace where it does not (no privilege, no BPF): Proxy.Kernel
	// says which and why.
	KernelAuto
	// KernelOn forwards in the kernel; New fails if it cannot.
	KernelOn
)

// ParseKernelMode reads "off", "auto" or "on".
func ParseKernelMode(s string) (KernelMode, error) {
	switch s {
	case "off":
		return KernelOff, nil
	case "auto":
		return KernelAuto, nil
	case "on":
		return KernelOn, nil
	}
	return KernelOff, fmt.Errorf("rtpproxy: kernel forwarding %q: want auto, on or off", s)
}

func (m KernelMode) String() string {
	switch m {
	case KernelAuto:
		return "auto"
	case KernelOn:
		return "on"
	}
	return "off"
}

// KernelStatus tells whether in-kernel forwarding is active.
type KernelStatus struct {
	Active bool
	// Reason is why it is not active: off by configuration, or the
	// loader's error under KernelAuto.
	Reason string
}

// Kernel reports whether in-kernel forwarding is active.
func (p *Proxy) Kernel() KernelStatus {
	if p.kern != nil {
		return KernelStatus{Active: true}
	}
	return KernelStatus{Reason: p.kernWhy}
}

// fastPath is the forwarding map of the in-kernel path, by the RTP port of
// the endpoint the party sends to.
type fastPath interface {
	// put installs or replaces the entry.
	put(port int, v *fwdValue) error
	// take removes the entry and returns it as it was at that moment.
	take(port int) (fwdValue, bool)
	// peek reads the entry.
	peek(port int) (fwdValue, bool)
	// totals are the packets and bytes the kernel forwarded so far.
	totals() (packets, bytes uint64)
	// route gives the interface toward a: 0 for an address of this host
	// (the program hands such packets back to the stack), false if there
	// is no route.
	route(a netip.Addr) (ifindex uint32, ok bool)
	// runStats is how often the program ran and for how long in all,
	// while the kernel keeps the figures (EnableKernelRunStats).
	runStats() (runs uint64, total time.Duration, err error)
	close() error
}

// KernelRunStats tells how many packets the in-kernel program looked at
// and the CPU time it took for them, counted while EnableKernelRunStats
// is in force (the kernel does not keep the figures otherwise).
func (p *Proxy) KernelRunStats() (runs uint64, total time.Duration, err error) {
	if p.kern == nil {
		return 0, 0, errors.New("rtpproxy: in-kernel forwarding is not active")
	}
	return p.kern.runStats()
}

// Offsets in a forwarding map value (fwdProgram reads and writes them).
const (
	vLocalIP  = 0  // [4]byte, network order; 0: any local address
	vSrcIP    = 4  // [4]byte: the latched party
	vOutDaddr = 8  // [4]byte: the receiver
	vSrcPort  = 12 // [2]byte
	vFlags    = 14 // uint16
	vOutPorts = 16 // [2]byte receiver's endpoint port, [2]byte receiver's port
	vSSRC     = 20 // [4]byte, as on the wire
	vClock    = 24 // uint32, RTP clock rate
	vMaxSeq   = 28 // uint16
	vCycles   = 32 // uint32
	vTransit  = 36 // uint32
	vJitter   = 40 // uint32, scaled by 16
	// vOutIfindex: the interface toward a receiver elsewhere; 0: on this
	// host, delivered by the local stack.
	vOutIfindex = 44 // uint32
	vEpoch      = 48 // uint64: CLOCK_MONOTONIC ns of the proxy clock's zero
	vPackets    = 56 // uint64
	vBytes      = 64 // uint64
	vLast       = 72 // uint64, proxy clock of the last packet
	valueSize   = 80
)

// fwdValue is one entry of the forwarding map (layout: the v* offsets
// above). Addresses and ports are in network order, as the
// program compares them with the packet.
type fwdValue struct {
	localIP  [4]byte // the proxy's address the party sends to; zero: any
	srcIP    [4]byte // the latched party
	srcPort  uint16
	outDaddr [4]byte // the receiver
	outSport uint16  // the receiver's endpoint port, the packets' new source
	outDport uint16
	ssrc     uint32
	clock    uint32
	ifindex  uint32 // toward the receiver; 0: it is on this host

	// The reception state of the party's stream (rxStats), seeded by
	// userspace and carried on by the kernel.
	maxSeq  uint16
	cycles  uint32
	transit uint32
	jitter  uint32
	epoch   uint64 // CLOCK_MONOTONIC of the proxy clock's zero
	packets uint64 // forwarded by the kernel since the entry was put
	bytes   uint64
	last    uint64 // proxy clock of the last of them
}

func (v *fwdValue) marshal() []byte {
	b := make([]byte, valueSize)
	copy(b[vLocalIP:], v.localIP[:])
	copy(b[vSrcIP:], v.srcIP[:])
	copy(b[vOutDaddr:], v.outDaddr[:])
	binary.BigEndian.PutUint16(b[vSrcPort:], v.srcPort)
	binary.BigEndian.PutUint16(b[vOutPorts:], v.outSport)
	binary.BigEndian.PutUint16(b[vOutPorts+2:], v.outDport)
	binary.BigEndian.PutUint32(b[vSSRC:], v.ssrc)
	ne := binary.NativeEndian
	ne.PutUint32(b[vClock:], v.clock)
	ne.PutUint32(b[vOutIfindex:], v.ifindex)
	ne.PutUint16(b[vMaxSeq:], v.maxSeq)
	ne.PutUint32(b[vCycles:], v.cycles)
	ne.PutUint32(b[vTransit:], v.transit)
	ne.PutUint32(b[vJitter:], v.jitter)
	ne.PutUint64(b[vEpoch:], v.epoch)
	ne.PutUint64(b[vPackets:], v.packets)
	ne.PutUint64(b[vBytes:], v.bytes)
	ne.PutUint64(b[vLast:], v.last)
	return b
}

func (v *fwdValue) unmarshal(b []byte) {
	copy(v.localIP[:], b[vLocalIP:])
	copy(v.srcIP[:], b[vSrcIP:])
	copy(v.outDaddr[:], b[vOutDaddr:])
	v.srcPort = binary.BigEndian.Uint16(b[vSrcPort:])
	v.outSport = binary.BigEndian.Uint16(b[vOutPorts:])
	v.outDport = binary.BigEndian.Uint16(b[vOutPorts+2:])
	v.ssrc = binary.BigEndian.Uint32(b[vSSRC:])
	ne := binary.NativeEndian
	v.clock = ne.Uint32(b[vClock:])
	v.ifindex = ne.Uint32(b[vOutIfindex:])
	v.maxSeq = ne.Uint16(b[vMaxSeq:])
	v.cycles = ne.Uint32(b[vCycles:])
	v.transit = ne.Uint32(b[vTransit:])
	v.jitter = ne.Uint32(b[vJitter:])
	v.epoch = ne.Uint64(b[vEpoch:])
	v.packets = ne.Uint64(b[vPackets:])
	v.bytes = ne.Uint64(b[vBytes:])
	v.last = ne.Uint64(b[vLast:])
}

// sameRoute: a and b forward the same packets the same way.
func (v *fwdValue) sameRoute(o *fwdValue) bool {
	return v.localIP == o.localIP && v.srcIP == o.srcIP && v.srcPort == o.srcPort &&
		v.outDaddr == o.outDaddr && v.outSport == o.outSport && v.outDport == o.outDport &&
		v.ssrc == o.ssrc && v.clock == o.clock && v.ifindex == o.ifindex
}

// kernelRoute is the entry that would forward ep's RTP in the kernel, or
// false when ep's stream must stay in userspace: it is in the kernel only
// while the party is latched on IPv4 RTP, the stream is live both ways
// (not held), and its packets go to exactly one other leg, byte for byte
// (no fan-out, no sink, no rewrite after a switch), to a receiver there
// is a route to. Called with c.mu and ep.mu held.
func (c *Call) kernelRoute(ep *endpoint, t *table) (fwdValue, bool) {
	var v fwdValue
	if !ep.isRTP || ep.v6 || !ep.latched || ep.removed || !ep.live || !ep.st.init {
		return v, false
	}
	rt := t.routeOf(ep)
	if rt == nil || len(rt.to) != 1 || rt.sink != nil || rt.to[0].rewrite {
		return v, false
	}
	d := rt.to[0].ep
	src, dst := ep.dstRTP.Load(), d.dstRTP.Load()
	if d.removed || !d.live || d.v6 || src == nil || dst == nil ||
		ep.rtp.state.Load() != sockLive || d.rtp.state.Load() != sockLive {
		return v, false
	}
	var ok bool
	if v.ifindex, ok = c.p.kern.route(dst.ap.Addr()); !ok {
		return v, false
	}
	if b := c.p.cfg.BindAddr; !b.IsUnspecified() {
		v.localIP = b.As4()
	}
	v.srcIP, v.srcPort = src.ap.Addr().As4(), src.ap.Port()
	v.outDaddr, v.outDport = dst.ap.Addr().As4(), dst.ap.Port()
	v.outSport = uint16(d.rtp.port)
	v.ssrc = ep.ssrc
	v.clock = ep.clock.Load()
	if v.clock == 0 {
		v.clock = 8000 // as arrivalUnits
	}
	return v, true
}

// syncKernel brings the forwarding map in line with the call's state:
// every endpoint whose stream may be forwarded in the kernel has its entry,
// and no other has one. Called with c.mu held, after anything that can
// change the answer (the table, an SDP, a latch).
func (c *Call) syncKernel() {
	k := c.p.kern
	if k == nil {
		return
	}
	for _, st := range c.streams {
		t := st.table.Load()
		for _, ep := range st.eps {
			ep.mu.Lock()
			want, ok := c.kernelRoute(ep, t)
			if c.closed {
				ok = false
			}
			if ep.kern != nil && (!ok || !ep.kern.sameRoute(&want)) {
				c.p.evict(ep)
			}
			if ok && ep.kern == nil {
				c.p.admit(ep, &want)
			}
			ep.mu.Unlock()
		}
	}
}

// admit hands ep's stream to the kernel, seeded with the reception state
// userspace has, so the counters go on where they are. ep.mu held.
func (p *Proxy) admit(ep *endpoint, v *fwdValue) {
	v.maxSeq, v.cycles = ep.st.maxSeq, ep.st.cycles
	v.transit, v.jitter = ep.st.transit, ep.st.jitter
	v.epoch = p.monoEpoch
	if err := p.kern.put(ep.rtp.port, v); err != nil {
		p.log.Warn("in-kernel forwarding: stream stays in userspace", "port", ep.rtp.port, "err", err)
		return
	}
	ep.kern = v
	p.kernStreams.Add(1)
}

// evict takes ep's stream back from the kernel and folds what the kernel
// counted into ep's state. ep.mu held.
func (p *Proxy) evict(ep *endpoint) {
	if v, ok := p.kern.take(ep.rtp.port); ok {
		ep.fold(&v)
	}
	ep.kern = nil
	p.kernStreams.Add(-1)
}

// fold adds what the kernel counted under v to ep's state (into st, and
// the relay's view of the stream). ep.mu held.
func (ep *endpoint) fold(v *fwdValue) {
	if v.packets == 0 {
		return
	}
	ep.st.foldKernel(v)
	ep.lastSeq = v.maxSeq
	if int64(v.last) > ep.lastSeen.Load() {
		ep.lastSeen.Store(int64(v.last))
	}
}

func (s *rxStats) foldKernel(v *fwdValue) {
	s.packets += v.packets
	s.bytes += v.bytes
	s.received += v.packets
	s.maxSeq, s.cycles = v.maxSeq, v.cycles
	s.transit, s.jitter = v.transit, v.jitter
}

// kernelView is ep's reception state with what the kernel counted so far
// included, without taking the stream back. ep.mu held.
func (p *Proxy) kernelView(ep *endpoint) (rxStats, int64) {
	st, last := ep.st, ep.lastSeen.Load()
	if ep.kern != nil {
		if v, ok := p.kern.peek(ep.rtp.port); ok && v.packets > 0 {
			st.foldKernel(&v)
			last = max(last, int64(v.last))
		}
	}
	return st, last
}

// refreshSeen updates the last-seen clock of ep from the kernel's entry,
// for media supervision. ep.mu held.
func (p *Proxy) refreshSeen(ep *endpoint) {
	if ep.kern == nil {
		return
	}
	if v, ok := p.kern.peek(ep.rtp.port); ok && int64(v.last) > ep.lastSeen.Load() {
		ep.lastSeen.Store(int64(v.last))
	}
}

// mustEvict: a packet from src reached userspace while ep's stream is in
// the kernel, and it is one the stream's state decides on (from the
// latched party: a new SSRC or a jump the kernel leaves to userspace; or
// the stream's SSRC from a new address: a NAT rebinding). userspace needs
// the kernel's state for it. A stranger's packet does not take the stream
// out. ep.mu held.
func (ep *endpoint) mustEvict(src netip.AddrPort, b []byte) bool {
	if len(b) < 12 || b[0]>>6 != 2 || isRTCP(b) {
		return false
	}
	cur := ep.dstRTP.Load()
	return (cur != nil && cur.ap == src) || binary.BigEndian.Uint32(b[8:]) == ep.ssrc
}

// kernelSync re-examines calls whose latches moved (the relay threads
// report them here without waiting for the call's lock).
type kernelSync struct {
	mu    sync.Mutex
	dirty map[*Call]struct{}
	wake  chan struct{}
}

// kick marks c for a syncKernel; it never blocks.
func (p *Proxy) kick(c *Call) {
	p.ksync.mu.Lock()
	p.ksync.dirty[c] = struct{}{}
	p.ksync.mu.Unlock()
	select {
	case p.ksync.wake <- struct{}{}:
	default:
	}
}

// syncLoop runs syncKernel for kicked calls until the proxy stops.
func (p *Proxy) syncLoop() {
	defer p.wg.Done()
	var list []*Call
	for {
		select {
		case <-p.stop:
			return
		case <-p.ksync.wake:
		}
		list = list[:0]
		p.ksync.mu.Lock()
		for c := range p.ksync.dirty {
			list = append(list, c)
			delete(p.ksync.dirty, c)
		}
		p.ksync.mu.Unlock()
		for _, c := range list {
			c.mu.Lock()
			c.syncKernel()
			c.mu.Unlock()
		}
	}
}
