package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/imcall/b2bua/rtpproxy"
	"github.com/imcall/b2bua/sip"
)

var (
	descTwoPaths = prometheus.NewDesc("b2bua_dual_path_sessions_two_paths",
		"Dual-path calls with two answered near legs.", nil, nil)
	descSwitches = prometheus.NewDesc("b2bua_dual_path_switches_total",
		"Media source switches between the paths of dual-path calls.", nil, nil)
	descGap = prometheus.NewDesc("b2bua_dual_path_switch_gap_seconds",
		"Silence of the path left at a switch.", nil, nil)
)

// pathCollector exports the SIP server's dual-path counters.
type pathCollector struct{ read func() sip.PathMetrics }

func (c pathCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descTwoPaths
	ch <- descSwitches
	ch <- descGap
}

func (c pathCollector) Collect(ch chan<- prometheus.Metric) {
	pm := c.read()
	ch <- prometheus.MustNewConstMetric(descTwoPaths, prometheus.GaugeValue, float64(pm.TwoPaths))
	ch <- prometheus.MustNewConstMetric(descSwitches, prometheus.CounterValue, float64(pm.Switches))
	// The server buckets the gaps in milliseconds; the exposition is in
	// seconds, the base unit.
	buckets := map[float64]uint64{}
	var cum uint64
	for i, n := range pm.GapBuckets {
		cum += n
		if i < len(pm.GapBounds) {
			buckets[float64(pm.GapBounds[i])/1000] = cum
		}
	}
	ch <- prometheus.MustNewConstHistogram(descGap, cum, float64(pm.GapSumMs)/1000, buckets)
}

// rtpDesc is one of the RTP proxy's counters.
type rtpDesc struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(rtpproxy.Metrics) float64
}

func rtp(name, help string, kind prometheus.ValueType, v func(rtpproxy.Metrics) float64) rtpDesc {
	return rtpDesc{prometheus.NewDesc(name, help, nil, nil), kind, v}
}

var rtpDescs = []rtpDesc{
	rtp("b2bua_rtp_calls", "Calls whose media the RTP proxy anchors now.", prometheus.GaugeValue,
		func(m rtpproxy.Metrics) float64 { return float64(m.Calls) }),
	rtp("b2bua_rtp_port_pairs", "RTP/RTCP port pairs (even port, odd port + 1) in --rtp-ports.", prometheus.GaugeValue,
		func(m rtpproxy.Metrics) float64 { return float64(m.PortPairs) }),
	rtp("b2bua_rtp_port_pairs_in_use", "Port pairs not free for a new call: held by a call's media stream or draining.", prometheus.GaugeValue,
		func(m rtpproxy.Metrics) float64 { return float64(m.PortPairs - m.PortPairsFree) }),
	rtp("b2bua_rtp_port_pairs_draining", "Port pairs of ended media streams still reading and discarding late packets before they return to the pool.", prometheus.GaugeValue,
		func(m rtpproxy.Metrics) float64 { return float64(m.Draining) }),
	rtp("b2bua_rtp_packets_relayed_total", "RTP and RTCP datagrams the proxy sent on to the other party.", prometheus.CounterValue,
		func(m rtpproxy.Metrics) float64 { return float64(m.Packets) }),
	rtp("b2bua_rtp_packets_kernel_total", "Of b2bua_rtp_packets_relayed_total, the RTP datagrams forwarded in the kernel (--rtp-kernel).", prometheus.CounterValue,
		func(m rtpproxy.Metrics) float64 { return float64(m.KernelPackets) }),
	rtp("b2bua_rtp_kernel_streams", "Streams (one direction of one m-line) forwarded in the kernel now: latched, two-party, not held.", prometheus.GaugeValue,
		func(m rtpproxy.Metrics) float64 { return float64(m.KernelStreams) }),
	rtp("b2bua_rtp_bytes_relayed_total", "UDP payload bytes of the relayed RTP and RTCP datagrams.", prometheus.CounterValue,
		func(m rtpproxy.Metrics) float64 { return float64(m.Bytes) }),
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
	rtp("b2bua_rtp_packets_dropped_total", "Datagrams read on a call's live port and not relayed: "+
		"not RTP/RTCP (version 2, minimum length) or truncated; "+
		"from an address that is not the latched party and does not continue its stream (strangers, or a party's RTCP before its first RTP latched its address, which can happen on clean calls behind NAT); "+
		"no destination known for the other party yet, or its port already released at the call's end; "+
		"or the send failed (socket buffer full). "+
		"Packets on draining ports are counted in b2bua_rtp_drain_dropped_total instead.", prometheus.CounterValue,
		func(m rtpproxy.Metrics) float64 { return float64(m.Dropped) }),
	rtp("b2bua_rtp_drain_dropped_total", "Datagrams that arrived on a port after its call's media ended (the last packets in flight at hang-up, or a party still sending), discarded while the port drains.", prometheus.CounterValue,
		func(m rtpproxy.Metrics) float64 { return float64(m.DrainDropped) }),
	rtp("b2bua_rtp_media_timeouts_total", "Answered calls ended because no RTP arrived from a party for --media-timeout (held streams exempt).", prometheus.CounterValue,
		func(m rtpproxy.Metrics) float64 { return float64(m.MediaTimeouts) }),
}

// rtpCollector exports the RTP proxy's counters, read once per scrape.
type rtpCollector struct{ read func() rtpproxy.Metrics }

func (c rtpCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range rtpDescs {
		ch <- d.desc
	}
}

func (c rtpCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.read()
	for _, d := range rtpDescs {
		ch <- prometheus.MustNewConstMetric(d.desc, d.kind, d.value(m))
	}
}
