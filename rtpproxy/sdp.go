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

func (c *Call) rewrite(from Side, body []byte, offer bool) ([]byte, error) {
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
	for i, md := range sd.MediaDescriptions {
		if err := inspect(sd, md, i, sessDir, &lines[i]); err != nil {
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
	to := from.other()
	now := c.p.now()
	adv := c.p.cfg.AdvertiseAddr
	for i, md := range sd.MediaDescriptions {
		ml := &lines[i]
		var st *stream
		if ml.port != 0 && ml.relay && (offer || (i < len(c.streams) && c.streams[i].ep[0] != nil)) {
			if st, err = c.ensure(i, md.MediaName.Media); err != nil {
				return nil, err
			}
		} else if i < len(c.streams) {
			st = c.streams[i]
		} else {
			c.streams = append(c.streams, &stream{media: md.MediaName.Media})
			st = c.streams[i]
		}
		active := st.ep[0] != nil && ml.port != 0 && ml.relay
		wasLive := st.live[0] && st.live[1]
		st.live[from] = active && ml.dirLive && !ml.hold
		if st.live[0] && st.live[1] && !wasLive {
			st.since = now
		}
		if active && !ml.hold {
			ep := st.ep[from]
			rtp := addrPort(ml.addr, ml.port)
			rtcp := ml.rtcp
			if ml.mux {
				rtcp = rtp // RFC 5761 §5.1.3: RTCP on the RTP port
			}
			ep.setSDPRemote(rtp, rtcp, ml.isRTP)
			ep.clock.Store(ml.clock)
			if !offer && !ml.mux {
				// The answer declined rtcp-mux (RFC 5761 §5.1.1): the offerer
				// falls back to its separate RTCP port.
				st.ep[to].demux()
			}
		}
		// Rewrite the m-line for the other side.
		origPort := ml.port
		if active {
			md.MediaName.Port.Value = st.ep[to].rtp.port
		} else {
			md.MediaName.Port.Value = 0
		}
		if md.ConnectionInformation != nil {
			setConn(md.ConnectionInformation, adv)
		}
		attrs := md.Attributes[:0]
		for _, a := range md.Attributes {
			if iceAttributes[a.Key] {
				continue
			}
			if a.Key == "rtcp" && active {
				a.Value = rewriteRTCPAttr(a.Value, origPort, st.ep[to], adv, ml.hold)
			}
			attrs = append(attrs, a)
		}
		md.Attributes = attrs
	}
	if sd.ConnectionInformation != nil {
		setConn(sd.ConnectionInformation, adv)
	}
	attrs := sd.Attributes[:0]
	for _, a := range sd.Attributes {
		if !iceAttributes[a.Key] {
			attrs = append(attrs, a)
		}
	}
	sd.Attributes = attrs
	return c.stamp(to, sd)
}

// stamp sets our o= line toward side to and marshals: the version moves
// only when the content changed (RFC 3264 §8).
func (c *Call) stamp(to Side, sd *sdp.SessionDescription) ([]byte, error) {
	o := &c.origin[to]
	sd.Origin = sdp.Origin{
		Username: "-", SessionID: o.id, SessionVersion: o.version,
		NetworkType: "IN", AddressType: "IP4", UnicastAddress: c.p.cfg.AdvertiseAddr.String(),
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

// setConn points a c= line at the proxy, except that the hold form
// 0.0.0.0 stays so the other party still sees hold.
func setConn(ci *sdp.ConnectionInformation, adv netip.Addr) {
	if ci.Address != nil && ci.Address.Address == "0.0.0.0" {
		return
	}
	ci.NetworkType, ci.AddressType = "IN", "IP4"
	ci.Address = &sdp.Address{Address: adv.String()}
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
		out += " IN IP4 " + a
	}
	return out
}

// inspect validates one m-line and extracts what the relay needs.
func inspect(sd *sdp.SessionDescription, md *sdp.MediaDescription, i int, sessDir string, ml *mline) error {
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
	if ci.AddressType != "IP4" {
		return unsupported(301, "address type %q is not supported, only IP4", ci.AddressType)
	}
	addr, err := netip.ParseAddr(ci.Address.Address)
	if err != nil || !addr.Is4() {
		return unsupported(301, "connection address %q is not an IPv4 address", ci.Address.Address)
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
				if fs[2] != "IP4" {
					return unsupported(301, "m-line %d: a=rtcp address type %q is not supported", i, fs[2])
				}
				if ra, err = netip.ParseAddr(fs[3]); err != nil || !ra.Is4() {
					return unsupported(301, "m-line %d: a=rtcp address %q is not an IPv4 address", i, fs[3])
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
