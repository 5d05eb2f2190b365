package rtpproxy

import (
	"bytes"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// maxMediaLines bounds the m-lines of one SDP: each costs two port pairs.
const maxMediaLines = 16

// iceAttributes are removed: candidates would tell each party the other's
// real addresses and let media bypass the anchor (topology hiding).
var iceAttributes = map[string]bool{
	"candidate": true, "remote-candidates": true, "end-of-candidates": true,
	"ice-ufrag": true, "ice-pwd": true, "ice-options": true, "ice-lite": true, "ice-mismatch": true,
}

// parseSDP parses body and never panics: a panic in the parser on hostile
// input becomes a malformed-SDP error.
func parseSDP(body []byte) (sd *sdp.SessionDescription, err error) {
	defer func() {
		if r := recover(); r != nil {
			sd, err = nil, malformed("unparseable")
		}
	}()
	sd = &sdp.SessionDescription{}
	if e := sd.Unmarshal(body); e != nil {
		return nil, malformed("%v", e)
	}
	return sd, nil
}

// mline is what one m-line of an incoming SDP asks for.
type mline struct {
	port    int
	addr    netip.Addr // effective connection address
	hold    bool       // c=0.0.0.0, the RFC 2543 hold form (RFC 3264 §8.4)
	rtcp    netip.AddrPort
	mux     bool
	relay   bool // UDP-based: the proxy can carry it
	isRTP   bool
	dirLive bool // sendrecv
	clock   uint32
}

func (c *Call) rewrite(from, to Leg, body []byte, offer bool) ([]byte, error) {
	if from == to {
		return nil, &Error{Status: 500, WarnCode: 399, Text: "SDP relayed to the leg it came from", Err: ErrUnsupportedSDP}
	}
	sd, err := parseSDP(body)
	if err != nil {
		return nil, err
	}
	if len(sd.MediaDescriptions) > maxMediaLines {
		return nil, unsupported(399, "%d m-lines, at most %d supported", len(sd.MediaDescriptions), maxMediaLines)
	}
	// Validate everything before touching state, so a bad SDP changes nothing.
	lines := make([]mline, len(sd.MediaDescriptions))
	sessDir := direction(sd.Attributes)
	v6ok := c.p.cfg.BindV6.IsValid()
	for i, md := range sd.MediaDescriptions {
		if err := inspect(sd, md, i, sessDir, v6ok, &lines[i]); err != nil {
			return nil, err
		}
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, &Error{Status: 500, WarnCode: 399, Text: "call closed", Err: ErrClosed}
	}
	if !offer && len(lines) > len(c.streams) {
		// RFC 3264 §6: the answer has exactly the offer's m-lines.
		return nil, unsupported(399, "answer has %d m-lines, the offer had %d", len(lines), len(c.streams))
	}
	if err := c.checkFamilies(lines, from, to); err != nil {
		return nil, err
	}
	c.addLeg(from)
	toLeg := c.addLeg(to)
	now := c.p.now()
	for i, md := range sd.MediaDescriptions {
		ml := &lines[i]
		var st *stream
		if ml.port != 0 && ml.relay && (offer || (i < len(c.streams) && c.streams[i].endpointOf(from) != nil && c.streams[i].endpointOf(to) != nil)) {
			if st, err = c.ensure(i, md.MediaName.Media, ml.addr.Is6(), from, to); err != nil {
				return nil, err
			}
		} else if i < len(c.streams) {
			st = c.streams[i]
		} else {
			c.streams = append(c.streams, &stream{media: md.MediaName.Media})
			st = c.streams[i]
		}
		fromEp, toEp := st.endpointOf(from), st.endpointOf(to)
		active := fromEp != nil && toEp != nil && ml.port != 0 && ml.relay
		wasLive := st.liveCount() >= 2
		if fromEp != nil {
			fromEp.live = active && ml.dirLive && !ml.hold
		}
		if st.liveCount() >= 2 && !wasLive {
			st.since = now
		}
		if active && !ml.hold {
			rtp := addrPort(ml.addr, ml.port)
			rtcp := ml.rtcp
			if ml.mux {
				rtcp = rtp // RFC 5761 §5.1.3: RTCP on the RTP port
			}
			fromEp.setSDPRemote(rtp, rtcp, ml.isRTP)
			fromEp.clock.Store(ml.clock)
			if !offer && !ml.mux {
				// The answer declined rtcp-mux (RFC 5761 §5.1.1): the offerer
				// falls back to its separate RTCP port.
				toEp.demux()
			}
		}
		// Rewrite the m-line for the other side.
		origPort := ml.port
		if active {
			md.MediaName.Port.Value = toEp.rtp.port
		} else {
			md.MediaName.Port.Value = 0
		}
		if md.ConnectionInformation != nil {
			c.setConn(md.ConnectionInformation)
		}
		attrs := md.Attributes[:0]
		for _, a := range md.Attributes {
			if iceAttributes[a.Key] {
				continue
			}
			if a.Key == "rtcp" && active {
				a.Value = rewriteRTCPAttr(a.Value, origPort, toEp, c.advertise(toEp.v6), ml.hold)
			}
			attrs = append(attrs, a)
		}
		md.Attributes = attrs
	}
	v6 := false
	if sd.ConnectionInformation != nil {
		v6 = sd.ConnectionInformation.AddressType == "IP6"
		c.setConn(sd.ConnectionInformation)
	} else if len(lines) > 0 {
		v6 = lines[0].addr.Is6()
	}
	attrs := sd.Attributes[:0]
	for _, a := range sd.Attributes {
		if !iceAttributes[a.Key] {
			attrs = append(attrs, a)
		}
	}
	sd.Attributes = attrs
	c.connect(from, to, offer)
	return c.stamp(toLeg, sd, v6)
}

// connect adds the routes an exchange implies, once per pair, so that a
// re-INVITE never undoes what the session set up with Select or
// Disconnect.
func (c *Call) connect(from, to Leg, offer bool) {
	r := &c.route
	if offer {
		if !r.offered[edge{from, to}] {
			r.offered[edge{from, to}] = true
			r.edges[edge{to, from}] = true
		}
	} else if !r.answered[edge{from, to}] {
		r.answered[edge{from, to}] = true
		r.edges[edge{to, from}] = true
		r.edges[edge{from, to}] = true
	}
	c.publish()
}

// checkFamilies refuses an SDP whose m-line would move an existing
// endpoint of from or to to the other address family: an endpoint's
// sockets are of one family, and the relay does not translate between
// IPv4 and IPv6 within a leg.
func (c *Call) checkFamilies(lines []mline, from, to Leg) error {
	for i := range lines {
		ml := &lines[i]
		if ml.port == 0 || !ml.relay || !ml.addr.IsValid() || i >= len(c.streams) {
			continue
		}
		for _, l := range []Leg{from, to} {
			if ep := c.streams[i].endpointOf(l); ep != nil && ep.v6 != ml.addr.Is6() {
				return unsupported(301, "m-line %d: the media of leg %s is already on IP%s", i, l, map[bool]string{false: "4", true: "6"}[ep.v6])
			}
		}
	}
	return nil
}

// advertise is the address written into SDP for an endpoint of the family.
func (c *Call) advertise(v6 bool) netip.Addr {
	if v6 {
		return c.p.cfg.AdvertiseV6
	}
	return c.p.cfg.AdvertiseAddr
}

// stamp sets our o= line toward leg ls and marshals: the version moves
// only when the content changed (RFC 3264 §8).
func (c *Call) stamp(ls *legState, sd *sdp.SessionDescription, v6 bool) ([]byte, error) {
	o := &ls.origin
	at := "IP4"
	if v6 {
		at = "IP6"
	}
	sd.Origin = sdp.Origin{
		Username: "-", SessionID: o.id, SessionVersion: o.version,
		NetworkType: "IN", AddressType: at, UnicastAddress: c.advertise(v6).String(),
	}
	out, err := sd.Marshal()
	if err != nil {
		return nil, malformed("%v", err)
	}
	if o.last != nil && !bytes.Equal(out, o.last) {
		o.version++
		sd.Origin.SessionVersion = o.version
		if out, err = sd.Marshal(); err != nil {
			return nil, malformed("%v", err)
		}
	}
	o.last = out
	return out, nil
}

// setConn points a c= line at the proxy in the line's own family (the
// relay keeps each leg's family), except that the hold form 0.0.0.0 stays
// so the other party still sees hold.
func (c *Call) setConn(ci *sdp.ConnectionInformation) {
	if ci.Address != nil && ci.Address.Address == "0.0.0.0" {
		return
	}
	v6 := ci.AddressType == "IP6"
	ci.NetworkType, ci.AddressType = "IN", "IP4"
	if v6 {
		ci.AddressType = "IP6"
	}
	ci.Address = &sdp.Address{Address: c.advertise(v6).String()}
}

// rewriteRTCPAttr rewrites a=rtcp (RFC 3605): the port the other party
// sends RTCP to on our side, and our address if one was given.
func rewriteRTCPAttr(v string, rtpPort int, ep *endpoint, adv netip.Addr, hold bool) string {
	fs := strings.Fields(v)
	port := ep.rtcp.port
	if p, err := strconv.Atoi(fs[0]); err == nil && p == rtpPort {
		port = ep.rtp.port // the rtcp-mux form: RTCP on the RTP port
	}
	out := strconv.Itoa(port)
	if len(fs) >= 4 {
		a := adv.String()
		if hold {
			a = "0.0.0.0"
		}
		at := "IP4"
		if adv.Is6() {
			at = "IP6"
		}
		out += " IN " + at + " " + a
	}
	return out
}

// inspect validates one m-line and extracts what the relay needs.
// IPv6 media (c=IN IP6) is anchored when the proxy has an IPv6 address
// (v6ok); otherwise it is refused as before.
func inspect(sd *sdp.SessionDescription, md *sdp.MediaDescription, i int, sessDir string, v6ok bool, ml *mline) error {
	ml.port = md.MediaName.Port.Value
	if ml.port < 0 || ml.port > 65535 {
		return malformed("m-line %d: port %d", i, ml.port)
	}
	if md.MediaName.Port.Range != nil && *md.MediaName.Port.Range > 1 {
		return unsupported(399, "m-line %d: port ranges are not supported", i)
	}
	if len(md.MediaName.Protos) == 0 {
		return malformed("m-line %d: no transport protocol", i)
	}
	proto := strings.ToUpper(strings.Join(md.MediaName.Protos, "/"))
	ml.isRTP = strings.Contains(proto, "RTP")
	ml.relay = !strings.HasPrefix(proto, "TCP") && !strings.Contains(proto, "SCTP") &&
		(ml.isRTP || strings.HasPrefix(proto, "UDP"))
	ci := md.ConnectionInformation
	if ci == nil {
		ci = sd.ConnectionInformation
	}
	if ci == nil {
		if ml.port == 0 {
			return nil
		}
		return malformed("m-line %d has no connection address (c=)", i)
	}
	if ci.NetworkType != "IN" {
		return unsupported(300, "network type %q is not supported", ci.NetworkType)
	}
	if ci.Address == nil {
		return malformed("m-line %d: c= line without an address", i)
	}
	var addr netip.Addr
	var err error
	switch {
	case ci.AddressType == "IP4":
		addr, err = netip.ParseAddr(ci.Address.Address)
		if err != nil || !addr.Is4() {
			return unsupported(301, "connection address %q is not an IPv4 address", ci.Address.Address)
		}
	case ci.AddressType == "IP6" && v6ok:
		addr, err = netip.ParseAddr(ci.Address.Address)
		if err != nil || !addr.Is6() || addr.Is4In6() || addr.Zone() != "" {
			return unsupported(301, "connection address %q is not an IPv6 address", ci.Address.Address)
		}
	case v6ok:
		return unsupported(301, "address type %q is not supported, only IP4 and IP6", ci.AddressType)
	default:
		return unsupported(301, "address type %q is not supported, only IP4", ci.AddressType)
	}
	if addr.IsMulticast() || (addr.IsUnspecified() && addr != netip.IPv4Unspecified()) {
		return unsupported(301, "multicast media is not supported")
	}
	ml.addr = addr
	ml.hold = addr.IsUnspecified()
	ml.rtcp = addrPort(addr, ml.port+1)
	if ml.port == 65535 {
		ml.rtcp = addrPort(addr, ml.port)
	}
	dir := direction(md.Attributes)
	if dir == "" {
		dir = sessDir
	}
	ml.dirLive = dir == "" || dir == "sendrecv"
	for _, a := range md.Attributes {
		switch a.Key {
		case "rtcp-mux":
			ml.mux = true
		case "rtcp":
			fs := strings.Fields(a.Value)
			if len(fs) == 0 {
				return malformed("m-line %d: empty a=rtcp", i)
			}
			p, err := strconv.Atoi(fs[0])
			if err != nil || p <= 0 || p > 65535 {
				return malformed("m-line %d: a=rtcp port %q", i, fs[0])
			}
			ra := addr
			if len(fs) >= 4 {
				want := map[bool]string{false: "IP4", true: "IP6"}[addr.Is6()]
				if fs[2] != want {
					return unsupported(301, "m-line %d: a=rtcp address type %q is not supported", i, fs[2])
				}
				if ra, err = netip.ParseAddr(fs[3]); err != nil || ra.Is6() != addr.Is6() || ra.Is4In6() {
					return unsupported(301, "m-line %d: a=rtcp address %q is not an IPv%s address", i, fs[3], want[3:])
				}
			} else if len(fs) != 1 {
				return malformed("m-line %d: a=rtcp %q", i, a.Value)
			}
			ml.rtcp = addrPort(ra, p)
		}
	}
	ml.clock = clockRate(md)
	return nil
}

// direction returns the direction attribute among attrs, "" if none.
func direction(attrs []sdp.Attribute) string {
	for _, a := range attrs {
		switch a.Key {
		case "sendrecv", "sendonly", "recvonly", "inactive":
			return a.Key
		}
	}
	return ""
}

// clockRate is the RTP clock of the m-line's first format, for jitter.
func clockRate(md *sdp.MediaDescription) uint32 {
	def := uint32(8000)
	if md.MediaName.Media == "video" {
		def = 90000
	}
	if len(md.MediaName.Formats) == 0 {
		return def
	}
	pt := md.MediaName.Formats[0]
	for _, a := range md.Attributes {
		if a.Key != "rtpmap" || !strings.HasPrefix(a.Value, pt+" ") {
			continue
		}
		enc := strings.Split(strings.TrimSpace(a.Value[len(pt)+1:]), "/")
		if len(enc) >= 2 {
			if r, err := strconv.ParseUint(enc[1], 10, 32); err == nil && r > 0 && r <= 1000000 {
				return uint32(r)
			}
		}
	}
	return def
}

// demux points RTCP back at the party's separate RTCP port, unless RTCP
// already latched there.
func (ep *endpoint) demux() {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if ep.rtcpLatched {
		return
	}
	if r := ep.dstRTP.Load(); r != nil && ep.dstRTCP.Load() != nil && ep.dstRTCP.Load().ap == r.sdp {
		ep.dstRTCP.Store(newRemote(addrPort(r.sdp.Addr(), int(r.sdp.Port())+1), r.sdp))
	}
}
