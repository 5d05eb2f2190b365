package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/rtpproxy"
	"github.com/imcall/b2bua/scp"
	"github.com/imcall/b2bua/sip"
	"github.com/imcall/b2bua/sip/messaging"
)

// fakeLocator answers each mobile ID from a table.
type fakeLocator map[string]error

func (f fakeLocator) Locate(_ context.Context, id string) (scp.Location, error) {
	if err := f[id]; err != nil {
		return scp.Location{}, err
	}
	return scp.Location{State: scp.Online}, nil
}

// exercised is a Metrics that every observer method has been called on.
func exercised(t *testing.T) *Metrics {
	t.Helper()
	m := New(Config{
		ActiveCalls: func() int { return 2 },
		Paths: func() sip.PathMetrics {
			return sip.PathMetrics{GapBounds: []int{20, 40}, GapBuckets: []uint64{1, 2, 3}, GapSumMs: 300}
		},
		Overload:   func() sip.OverloadStats { return sip.OverloadStats{Refused: 3, Shedding: true} },
		RTP:        func() rtpproxy.Metrics { return rtpproxy.Metrics{PortPairs: 10, PortPairsFree: 7} },
		Clients:    func(context.Context) (int, error) { return 5, nil },
		SCPBackend: "http",
	})
	pdd := 0.75
	stats, _ := json.Marshal(map[string]any{"media": []map[string]any{
		{"leg": "uas-1", "expected": 1000, "lost": 10, "jitter_ms": 4.0},
		{"leg": "uac-1", "expected": 0, "lost": 0, "jitter_ms": 0.0},
	}})
	m.CallEnded(registry.CallSummary{Outcome: "answered", PostDialSeconds: &pdd, Stats: stats})
	m.CallEnded(registry.CallSummary{Outcome: "busy", Q850Cause: 17})
	m.Registered()
	m.LimitEvent(sip.LimitRate)
	m.MessageDecided(messaging.DecisionLink)
	m.TraceSIP(sip.WireMessage{Out: true, Data: []byte("SIP/2.0 486 Busy Here\r\n\r\n")})
	m.TraceSIP(sip.WireMessage{Out: false, Data: []byte("SIP/2.0 200 OK\r\n\r\n")}) // received: not an answer sent
	m.TraceSIP(sip.WireMessage{Out: true, Data: []byte("INVITE sip:a@b SIP/2.0\r\n\r\n")})
	loc := m.Locator(fakeLocator{"imsi:2": scp.ErrUnknownSubscriber, "imsi:3": scp.ErrTimeout, "imsi:4": errors.New("boom")})
	for _, id := range []string{"imsi:1", "imsi:2", "imsi:3", "imsi:4"} {
		_, _ = loc.Locate(context.Background(), id)
	}
	return m
}

func gather(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}

// documented is the metric names README.md's metrics table lists.
func documented(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range regexp.MustCompile("(?m)^\\| `(b2bua_[a-z0-9_]+)`").FindAllStringSubmatch(string(b), -1) {
		names = append(names, m[1])
	}
	if len(names) < 10 {
		t.Fatalf("README.md's metrics table lists %d names", len(names))
	}
	return names
}

// TestDocumentedMetricsExported: every name in README.md's table is
// exported, every b2bua_ series exported is in the table, counters end in
// _total, and the process and Go collectors are there.
func TestDocumentedMetricsExported(t *testing.T) {
	fams := gather(t, exercised(t))
	docs := documented(t)
	for _, n := range docs {
		if fams[n] == nil {
			t.Errorf("%s is documented and not exported", n)
		}
	}
	for n, f := range fams {
		if strings.HasPrefix(n, "b2bua_") && !slices.Contains(docs, n) {
			t.Errorf("%s is exported and not documented", n)
		}
		if f.GetType() == dto.MetricType_COUNTER && !strings.HasSuffix(n, "_total") {
			t.Errorf("counter %s is not named *_total", n)
		}
		if strings.HasSuffix(n, "_ms") {
			t.Errorf("%s is not in base units", n)
		}
	}
	for _, n := range []string{"process_cpu_seconds_total", "process_resident_memory_bytes", "go_goroutines", "go_memstats_alloc_bytes"} {
		if fams[n] == nil {
			t.Errorf("%s (process or Go collector) not exported", n)
		}
	}
}

// value is the sample of fam whose labels are all of want.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("%s not exported", name)
	}
next:
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		return m
	}
	t.Fatalf("%s has no sample with labels %v", name, want)
	return nil
}

// TestObservedValues: each observer call lands in its series with its
// labels.
func TestObservedValues(t *testing.T) {
	fams := gather(t, exercised(t))
	counters := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"b2bua_calls_total", map[string]string{"outcome": "answered", "q850_cause": "0"}, 1},
		{"b2bua_calls_total", map[string]string{"outcome": "busy", "q850_cause": "17"}, 1},
		{"b2bua_sip_responses_sent_total", map[string]string{"class": "4xx"}, 1},
		{"b2bua_sip_responses_sent_total", map[string]string{"class": "2xx"}, 0},
		{"b2bua_scp_lookups_total", map[string]string{"backend": "http", "outcome": "online"}, 1},
		{"b2bua_scp_lookups_total", map[string]string{"backend": "http", "outcome": "unknown"}, 1},
		{"b2bua_scp_lookups_total", map[string]string{"backend": "http", "outcome": "timeout"}, 1},
		{"b2bua_scp_lookups_total", map[string]string{"backend": "http", "outcome": "unavailable"}, 1},
		{"b2bua_registrations_total", nil, 1},
		{"b2bua_messages_total", map[string]string{"decision": "link"}, 1},
		{"b2bua_sip_limit_events_total", map[string]string{"event": "rate_limited"}, 1},
		{"b2bua_sip_limit_events_total", map[string]string{"event": "locked_out"}, 0},
	}
	for _, c := range counters {
		if got := value(t, fams, c.name, c.labels).GetCounter().GetValue(); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if h := value(t, fams, "b2bua_post_dial_delay_seconds", nil).GetHistogram(); h.GetSampleCount() != 1 || h.GetSampleSum() != 0.75 {
		t.Errorf("post-dial delay: %d samples, sum %v; want 1, 0.75", h.GetSampleCount(), h.GetSampleSum())
	}
	if h := value(t, fams, "b2bua_rtp_loss_ratio", map[string]string{"leg": "uas"}).GetHistogram(); h.GetSampleCount() != 1 || h.GetSampleSum() != 0.01 {
		t.Errorf("loss of uas: %d samples, sum %v; want 1, 0.01", h.GetSampleCount(), h.GetSampleSum())
	}
	if h := value(t, fams, "b2bua_rtp_jitter_seconds", map[string]string{"leg": "uas"}).GetHistogram(); h.GetSampleSum() != 0.004 {
		t.Errorf("jitter of uas: sum %v, want 0.004", h.GetSampleSum())
	}
	for _, m := range fams["b2bua_rtp_loss_ratio"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetValue() == "uac" {
				t.Errorf("a leg with no packets expected was observed")
			}
		}
	}
	if h := value(t, fams, "b2bua_scp_lookup_duration_seconds", map[string]string{"backend": "http"}).GetHistogram(); h.GetSampleCount() != 4 {
		t.Errorf("SCP durations: %d samples, want 4", h.GetSampleCount())
	}
	gap := value(t, fams, "b2bua_dual_path_switch_gap_seconds", nil).GetHistogram()
	if gap.GetSampleCount() != 6 || gap.GetSampleSum() != 0.3 || gap.GetBucket()[0].GetUpperBound() != 0.02 || gap.GetBucket()[1].GetCumulativeCount() != 3 {
		t.Errorf("gap histogram = %v", gap)
	}
	for name, want := range map[string]float64{"b2bua_calls_active": 2, "b2bua_clients_logged_in": 5, "b2bua_rtp_port_pairs_in_use": 3} {
		if got := value(t, fams, name, nil).GetGauge().GetValue(); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

// TestClientsUnknown: a registry that does not answer gives -1 logged-in
// clients, not a false 0.
func TestClientsUnknown(t *testing.T) {
	m := New(Config{Clients: func(context.Context) (int, error) { return 0, errors.New("locked") }})
	if got := value(t, gather(t, m), "b2bua_clients_logged_in", nil).GetGauge().GetValue(); got != -1 {
		t.Errorf("clients = %v, want -1", got)
	}
}
