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
// when media is anchored.
func (d *Daemon) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	metric := func(name, kind, help string, v any) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %v\n", name, help, name, kind, name, v)
	}
	metric("b2bua_calls_active", "gauge", "Calls in progress.", d.sip.ActiveCalls())
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
	metric("b2bua_rtp_calls", "gauge", "Calls anchored in the RTP proxy.", m.Calls)
	metric("b2bua_rtp_port_pairs", "gauge", "RTP/RTCP port pairs in the configured range.", m.PortPairs)
	metric("b2bua_rtp_port_pairs_in_use", "gauge", "Port pairs held by calls or draining.", m.PortPairs-m.PortPairsFree)
	metric("b2bua_rtp_port_pairs_draining", "gauge", "Port pairs released and still draining.", m.Draining)
	metric("b2bua_rtp_packets_relayed_total", "counter", "RTP and RTCP packets relayed.", m.Packets)
	metric("b2bua_rtp_bytes_relayed_total", "counter", "RTP and RTCP bytes relayed.", m.Bytes)
	metric("b2bua_rtp_packets_dropped_total", "counter", "Packets dropped: from strangers, invalid or unroutable.", m.Dropped)
	metric("b2bua_rtp_drain_dropped_total", "counter", "Packets that arrived on a draining port.", m.DrainDropped)
	metric("b2bua_rtp_media_timeouts_total", "counter", "Calls ended because their media stopped.", m.MediaTimeouts)
}
