package daemon

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"

	"github.com/imcall/b2bua/rtpproxy"
	"github.com/imcall/b2bua/sip"
)

// startMedia builds the call media path of cfg.Media: the RTP proxy
// (anchor, the default) or passthrough.
func (d *Daemon) startMedia(cfg Config) (sip.MediaAnchor, error) {
	switch cfg.Media {
	case MediaPassthrough:
		return sip.Passthrough{}, nil
	case MediaAnchor:
	default:
		return nil, fmt.Errorf("media: %q: must be %s or %s", cfg.Media, MediaAnchor, MediaPassthrough)
	}
	bind := cfg.RTPBind
	if !bind.IsValid() {
		var err error
		if bind, err = sipHost(cfg.SIPListen); err != nil {
			return nil, err
		}
	}
	p, err := rtpproxy.New(rtpproxy.Config{
		BindAddr:      bind,
		AdvertiseAddr: cfg.RTPAdvertise,
		BindV6:        cfg.RTPBindV6,
		AdvertiseV6:   cfg.RTPAdvertiseV6,
		PortMin:       cfg.RTPPortMin,
		PortMax:       cfg.RTPPortMax,
		MediaTimeout:  cfg.MediaTimeout,
		Logger:        d.log,
	})
	if err != nil {
		return nil, fmt.Errorf("media: %w", err)
	}
	d.rtp = p
	return sip.RTPProxy{Proxy: p}, nil
}

// sipHost is the RTP proxy's default bind address: the host of the SIP
// listen address, so media and signalling share an interface.
func sipHost(listen string) (netip.Addr, error) {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("media: SIP listen address %q: %w", listen, err)
	}
	a, err := netip.ParseAddr(host)
	if err != nil || !a.Unmap().Is4() {
		return netip.Addr{}, fmt.Errorf("media: SIP listen host %q is not an IPv4 address; set the RTP bind address", host)
	}
	return a.Unmap(), nil
}

// serveMetrics answers GET /metrics in the Prometheus text exposition
// format (version 0.0.4): calls in progress, and the RTP proxy's counters
// when media is anchored. Each HELP says what is counted, so that an
// operator can tell a fault from the normal course of a call.
func (d *Daemon) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	metric := func(name, kind, help string, v any) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %v\n", name, help, name, kind, name, v)
	}
	metric("b2bua_calls_active", "gauge", "Calls the SIP side holds now, from the INVITE accepted until both legs are ended.", d.sip.ActiveCalls())
	ov := d.sip.OverloadStats()
	metric("b2bua_sip_overload_refused_total", "counter", "New INVITEs answered 503 with Retry-After because the node was past its capacity (--overload-delay, --max-calls).", ov.Refused)
	metric("b2bua_sip_overload_shedding", "gauge", "1 while new calls are refused for overload.", map[bool]int{true: 1}[ov.Shedding])
	metric("b2bua_sip_sched_delay_p90_seconds", "gauge", "90th percentile of the time goroutines waited to run in the last window of the overload guard (0 when not watched or idle).", ov.Delay.Seconds())
	pm := d.sip.PathMetrics()
	metric("b2bua_dual_path_sessions_two_paths", "gauge", "Dual-path calls with two answered near legs.", pm.TwoPaths)
	metric("b2bua_dual_path_switches_total", "counter", "Media source switches between the paths of dual-path calls.", pm.Switches)
	fmt.Fprintf(w, "# HELP b2bua_dual_path_switch_gap_ms Silence of the path left at a switch.\n# TYPE b2bua_dual_path_switch_gap_ms histogram\n")
	var cum uint64
	for i, n := range pm.GapBuckets {
		cum += n
		le := "+Inf"
		if i < len(pm.GapBounds) {
			le = strconv.Itoa(pm.GapBounds[i])
		}
		fmt.Fprintf(w, "b2bua_dual_path_switch_gap_ms_bucket{le=%q} %d\n", le, cum)
	}
	fmt.Fprintf(w, "b2bua_dual_path_switch_gap_ms_sum %d\nb2bua_dual_path_switch_gap_ms_count %d\n", pm.GapSumMs, cum)
	if d.rtp == nil {
		return
	}
	m := d.rtp.Metrics()
	metric("b2bua_rtp_calls", "gauge", "Calls whose media the RTP proxy anchors now.", m.Calls)
	metric("b2bua_rtp_port_pairs", "gauge", "RTP/RTCP port pairs (even port, odd port + 1) in --rtp-ports.", m.PortPairs)
	metric("b2bua_rtp_port_pairs_in_use", "gauge", "Port pairs not free for a new call: held by a call's media stream or draining.", m.PortPairs-m.PortPairsFree)
	metric("b2bua_rtp_port_pairs_draining", "gauge", "Port pairs of ended media streams still reading and discarding late packets before they return to the pool.", m.Draining)
	metric("b2bua_rtp_packets_relayed_total", "counter", "RTP and RTCP datagrams the proxy sent on to the other party.", m.Packets)
	metric("b2bua_rtp_bytes_relayed_total", "counter", "UDP payload bytes of the relayed RTP and RTCP datagrams.", m.Bytes)
	// What this counts, from rtpproxy's relay loop: every datagram read on
	// a live port and not sent on. Besides faults and attacks, a clean call
	// legitimately adds a few: a party's RTCP or rtcp-mux packets that come
	// before its first RTP from an address its SDP does not name (NAT, a
	// host whose SDP names another interface) are refused until the RTP
	// latch tells where the party is, and packets racing the call's end
	// meet the other side's port already closed. Measured: baresip 1.0
	// advertises its interface address, sends from loopback, and opens
	// each stream with an RTCP APP packet before its first RTP, so every
	// clean baresip call adds one per party; its later RTCP is relayed.
	metric("b2bua_rtp_packets_dropped_total", "counter", "Datagrams read on a call's live port and not relayed: "+
		"not RTP/RTCP (version 2, minimum length) or truncated; "+
		"from an address that is not the latched party and does not continue its stream (strangers, or a party's RTCP before its first RTP latched its address, which can happen on clean calls behind NAT); "+
		"no destination known for the other party yet, or its port already released at the call's end; "+
		"or the send failed (socket buffer full). "+
		"Packets on draining ports are counted in b2bua_rtp_drain_dropped_total instead.", m.Dropped)
	metric("b2bua_rtp_drain_dropped_total", "counter", "Datagrams that arrived on a port after its call's media ended (the last packets in flight at hang-up, or a party still sending), discarded while the port drains.", m.DrainDropped)
	metric("b2bua_rtp_media_timeouts_total", "counter", "Answered calls ended because no RTP arrived from a party for --media-timeout (held streams exempt).", m.MediaTimeouts)
}
