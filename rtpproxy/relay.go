package rtpproxy

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"sync/atomic"
)

// endpoint is one leg of one media stream: the port pair that leg's party
// sends to, and what we know of that party (where to send to it, what it
// sent). Where packets arriving here go is the stream's forwarding table's
// business; they leave from the receiving endpoints' own sockets, so each
// party sees media from the address its SDP was given.
type endpoint struct {
	leg   Leg
	media string // "audio", "video", ...
	strm  *stream
	call  *Call
	idx   int  // index in strm.eps and in the table's routes; never changes
	v6    bool // the sockets are IPv6; so is every remote address
	rtp   *sock
	rtcp  *sock
	// isRTP is false for plain UDP streams (T.38 over UDPTL): no SSRC, so
	// the latch never moves once set.
	isRTP bool

	// Read by the relay thread on every packet sent to this party, hence
	// atomic; replaced (never mutated) when the latch moves.
	dstRTP  atomic.Pointer[remote]
	dstRTCP atomic.Pointer[remote]

	lastSeen atomic.Int64  // proxy clock of the last RTP from this party; 0: never
	clock    atomic.Uint32 // RTP clock rate of the stream, for jitter

	mu sync.Mutex // guards the rest; held once per batch by the relay thread
	// latched: dstRTP was learned from packets (symmetric RTP, RFC 4961),
	// not taken from the SDP.
	latched     bool
	rtcpLatched bool
	ssrc        uint32
	lastSeq     uint16
	st          rxStats
	rtcpPackets uint64
	rtcpBytes   uint64
	dropped     uint64 // strangers and invalid packets
	// kern is the entry the kernel forwards this party's RTP with, as
	// put; nil while userspace relays it.
	kern *fwdValue

	// Guarded by the Call's mu.
	live    bool // the leg's latest SDP has this stream sendrecv at a real address
	removed bool // RemoveLeg: released, out of the table, kept for Stats

	// out is what this party was last sent, for the rewrite of a switched
	// source. Only the call's relay thread touches it: every socket of a
	// call belongs to one worker.
	out outState
}

// setSDPRemote records where the SDP says this party receives media. A new
// address undoes the latch: after a re-INVITE that moves the media (a
// transfer, a new device), the next packets latch afresh.
func (ep *endpoint) setSDPRemote(rtp, rtcp netip.AddrPort, isRTP bool) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	ep.isRTP = isRTP
	if cur := ep.dstRTP.Load(); cur != nil && ep.latched && cur.sdp == rtp {
		return // same SDP address: keep what we learned
	}
	ep.dstRTP.Store(newRemote(rtp, rtp))
	ep.dstRTCP.Store(newRemote(rtcp, rtp))
	ep.latched, ep.rtcpLatched = false, false
}

// isRTCP tells RTCP from RTP on a multiplexed port: RTCP packet types
// 192-223 fall in the RTP payload-type range 64-95 that RFC 5761 §4 keeps
// free for this.
func isRTCP(b []byte) bool { return b[1] >= 192 && b[1] <= 223 }

// admitRTP decides whether a packet from src that arrived on the RTP port is
// relayed, moving the latch when the rule allows. Called by the relay thread
// with ep.mu held.
//
// The rule: before anything is latched, the first valid packet latches
// (terminals behind NAT send from an address their SDP does not know).
// Afterwards packets from the latched address pass; a packet from elsewhere
// moves the latch only if it continues the stream (same SSRC, sequence
// number at most window ahead of the last), which a stranger spraying
// packets at the port cannot guess; anything else is dropped. The one
// opening is the first packet: a stranger who sends before the party does
// takes the latch until the SDP address changes (the price of working
// behind NAT without ICE).
func (ep *endpoint) admitRTP(src netip.AddrPort, b []byte, now int64, window uint16) bool {
	if !ep.isRTP {
		cur := ep.dstRTP.Load()
		if !ep.latched {
			ep.latchRTP(src, cur)
		} else if cur.ap != src {
			ep.dropped++
			return false
		}
		ep.st.packets++
		ep.st.bytes += uint64(len(b))
		ep.lastSeen.Store(now)
		return true
	}
	if len(b) < 12 || b[0]>>6 != 2 {
		ep.dropped++
		return false
	}
	cur := ep.dstRTP.Load()
	if isRTCP(b) { // rtcp-mux: relayed only from the latched party
		if !ep.latched || cur.ap != src {
			ep.dropped++
			return false
		}
		ep.rtcpPackets++
		ep.rtcpBytes += uint64(len(b))
		return true
	}
	seq := binary.BigEndian.Uint16(b[2:])
	ssrc := binary.BigEndian.Uint32(b[8:])
	switch {
	case !ep.latched:
		ep.latchRTP(src, cur)
	case cur.ap == src:
	case ssrc == ep.ssrc && seq-ep.lastSeq >= 1 && seq-ep.lastSeq <= window:
		ep.latchRTP(src, cur) // NAT rebinding: same stream, new address
	default:
		ep.dropped++
		return false
	}
	if ssrc != ep.ssrc {
		ep.st.newSource()
		ep.ssrc = ssrc
		ep.lastSeq = seq - 1
	}
	if d := seq - ep.lastSeq; d != 0 && d < 0x8000 {
		ep.lastSeq = seq
	}
	ts := binary.BigEndian.Uint32(b[4:])
	ep.st.update(seq, ts, arrivalUnits(now, ep.clock.Load()), len(b))
	ep.lastSeen.Store(now)
	return true
}

func (ep *endpoint) latchRTP(src netip.AddrPort, cur *remote) {
	if cur == nil || cur.ap != src {
		sdp := src
		if cur != nil {
			sdp = cur.sdp
		}
		ep.dstRTP.Store(newRemote(src, sdp))
	}
	ep.latched = true
}

// admitRTCP is admitRTP for the RTCP port. RTCP latches only to the
// address (host) the RTP came from, or before any RTP to the SDP's address,
// so a stranger cannot take it either.
func (ep *endpoint) admitRTCP(src netip.AddrPort, b []byte) bool {
	if len(b) < 8 || b[0]>>6 != 2 {
		ep.dropped++
		return false
	}
	cur := ep.dstRTCP.Load()
	rtp := ep.dstRTP.Load()
	switch {
	case cur != nil && cur.ap == src:
	case rtp != nil && src.Addr() == rtp.ap.Addr() &&
		(!ep.rtcpLatched || !ep.isRTP || binary.BigEndian.Uint32(b[4:]) == ep.ssrc):
		var sdp netip.AddrPort
		if cur != nil {
			sdp = cur.sdp
		}
		ep.dstRTCP.Store(newRemote(src, sdp))
		ep.rtcpLatched = true
	default:
		ep.dropped++
		return false
	}
	ep.rtcpPackets++
	ep.rtcpBytes += uint64(len(b))
	return true
}

// arrivalUnits is the arrival time in RTP timestamp units (RFC 3550 A.8).
func arrivalUnits(now int64, clock uint32) uint32 {
	if clock == 0 {
		clock = 8000
	}
	return uint32(uint64(now/1000) * uint64(clock) / 1e6)
}

// rxStats are the reception statistics of RFC 3550 A.1, A.3 and A.8 for the
// packets one party sent.
type rxStats struct {
	packets, bytes uint64
	init           bool
	maxSeq         uint16
	cycles         uint32
	baseSeq        uint32
	badSeq         uint32
	received       uint64 // of the current source
	prevExpected   uint64 // of earlier sources (SSRC changes)
	prevReceived   uint64
	transit        uint32
	jitter         uint32 // RFC 3550 A.8, scaled by 16
}

const (
	maxDropout  = 3000 // RFC 3550 A.1
	maxMisorder = 100
	seqMod      = 1 << 16
)

func (s *rxStats) newSource() {
	if s.init {
		s.prevExpected += s.expected()
		s.prevReceived += s.received
	}
	s.init = false
	s.received = 0
}

func (s *rxStats) initSeq(seq uint16) {
	s.init = true
	s.baseSeq = uint32(seq)
	s.maxSeq = seq
	s.badSeq = seqMod + 1
	s.cycles = 0
	s.received = 0
}

func (s *rxStats) update(seq uint16, ts, arrival uint32, size int) {
	s.packets++
	s.bytes += uint64(size)
	if !s.init {
		s.initSeq(seq)
		s.received = 1
		s.transit = arrival - ts
		return
	}
	udelta := seq - s.maxSeq
	switch {
	case udelta < maxDropout:
		if seq < s.maxSeq {
			s.cycles += seqMod
		}
		s.maxSeq = seq
	case udelta <= seqMod-maxMisorder:
		// a very large jump: the source restarted, unless it is a stray
		if uint32(seq) == s.badSeq {
			s.prevExpected += s.expected()
			s.prevReceived += s.received
			s.initSeq(seq)
		} else {
			s.badSeq = (uint32(seq) + 1) & (seqMod - 1)
			return
		}
	default:
		// duplicate or reordered: counted, no sequence change
	}
	s.received++
	transit := arrival - ts
	d := int32(transit - s.transit)
	s.transit = transit
	if d < 0 {
		d = -d
	}
	s.jitter += uint32(d) - ((s.jitter + 8) >> 4)
}

func (s *rxStats) expected() uint64 {
	if !s.init {
		return 0
	}
	return uint64(s.cycles) + uint64(s.maxSeq) - uint64(s.baseSeq) + 1
}

// lost is the cumulative number of packets lost, RFC 3550 A.3; negative
// when duplicates outnumber losses.
func (s *rxStats) lost() int64 {
	return int64(s.prevExpected+s.expected()) - int64(s.prevReceived+s.received)
}
