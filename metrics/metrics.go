// Package metrics is the product's Prometheus exposition: what the SIP
// side, the messaging rules, the SCP backend and the RTP proxy count,
// labelled and named by Prometheus conventions (base units, _total on
// counters), with the process and Go runtime collectors beside them. It
// implements the small observer interfaces those packages define, and
// reads the counters they keep themselves when scraped.
package metrics

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/imcall/b2bua/rtpproxy"
	"github.com/imcall/b2bua/sip"
)

// Config names what the metrics read at scrape time. Nil fields leave
// their series out.
type Config struct {
	// ActiveCalls is the number of calls in progress.
	ActiveCalls func() int
	// Paths are the dual-path counters.
	Paths func() sip.PathMetrics
	// Overload is the SIP overload guard's state.
	Overload func() sip.OverloadStats
	// RTP are the RTP proxy's counters; nil in passthrough mode.
	RTP func() rtpproxy.Metrics
	// Clients is the number of clients logged in now (live REGISTER
	// bindings).
	Clients func(ctx context.Context) (int, error)
	// SCPBackend labels the SCP lookups: the scheme of --scp.
	SCPBackend string
}

// Metrics holds every series. Its methods are safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	calls       *prometheus.CounterVec
	postDial    prometheus.Histogram
	answers     *prometheus.CounterVec
	scpLookups  *prometheus.CounterVec
	scpDuration *prometheus.HistogramVec
	registers   prometheus.Counter
	messages    *prometheus.CounterVec
	rtpLoss     *prometheus.HistogramVec
	rtpJitter   *prometheus.HistogramVec
	limits      *prometheus.CounterVec
	backend     string
}

// New builds the metrics and registers every collector.
func New(cfg Config) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), backend: cfg.SCPBackend}
	m.calls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "b2bua_calls_total",
		Help: "Calls ended, by outcome (as calls list shows it) and the Q.850 cause of the caller's answer (0: none sent).",
	}, []string{"outcome", "q850_cause"})
	m.postDial = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "b2bua_post_dial_delay_seconds",
		Help:    "Post-dial delay of ended calls that rang or were answered: from the INVITE to the first 180/183, or to the answer (ITU-T E.431).",
		Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20},
	})
	m.answers = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "b2bua_sip_responses_sent_total",
		Help: "SIP responses written to the wire, by status class (1xx to 6xx); retransmissions count again.",
	}, []string{"class"})
	m.scpLookups = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "b2bua_scp_lookups_total",
		Help: "SCP location queries, by backend and outcome (online, busy, absent, unknown, timeout, unavailable).",
	}, []string{"backend", "outcome"})
	m.scpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "b2bua_scp_lookup_duration_seconds",
		Help:    "Time an SCP location query took, whatever its outcome.",
		Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5},
	}, []string{"backend"})
	m.registers = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "b2bua_registrations_total",
		Help: "REGISTER requests answered 200: logins, refreshes and logouts.",
	})
	m.messages = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "b2bua_messages_total",
		Help: "MESSAGE requests the delivery rules decided on, by decision: forward, link (stored, link sent), defer (kept), reject, fail.",
	}, []string{"decision"})
	m.rtpLoss = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "b2bua_rtp_loss_ratio",
		Help:    "Per ended call and leg, the fraction of the RTP packets expected from the leg's party that never arrived (RFC 3550 A.3).",
		Buckets: []float64{0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5},
	}, []string{"leg"})
	m.rtpJitter = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "b2bua_rtp_jitter_seconds",
		Help:    "Per ended call and leg, the interarrival jitter of the party's RTP at the call's end (RFC 3550 A.8).",
		Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16},
	}, []string{"leg"})
	m.limits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "b2bua_sip_limit_events_total",
		Help: "Per-source SIP limits at work: rate_limited (a request refused with 503), locked_out (refused with 403), lockout_started (failed authentications began a lock-out).",
	}, []string{"event"})
	m.reg.MustRegister(m.calls, m.postDial, m.answers, m.scpLookups, m.scpDuration, m.registers, m.messages,
		m.rtpLoss, m.rtpJitter, m.limits,
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector())
	// The label values known in advance are exported at 0, so that a
	// rate() over them has a start and a dashboard shows them before the
	// first event.
	for _, c := range []string{"1xx", "2xx", "3xx", "4xx", "5xx", "6xx"} {
		m.answers.WithLabelValues(c)
	}
	for _, e := range []string{sip.LimitRate, sip.LimitLockedOut, sip.LimitLockoutStarted} {
		m.limits.WithLabelValues(e)
	}
	m.registerPulled(cfg)
	return m
}

// Handler serves the exposition (text format, or protobuf when asked).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry is the registry the metrics are in, for tests.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// registerPulled registers the series read from their owners at scrape
// time: counters those packages keep themselves.
func (m *Metrics) registerPulled(cfg Config) {
	if cfg.ActiveCalls != nil {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "b2bua_calls_active",
			Help: "Calls the SIP side holds now, from the INVITE accepted until both legs are ended.",
		}, func() float64 { return float64(cfg.ActiveCalls()) }))
	}
	if cfg.Overload != nil {
		m.reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "b2bua_sip_overload_refused_total",
				Help: "New INVITEs answered 503 with Retry-After because the node was past its capacity (--overload-delay, --max-calls).",
			}, func() float64 { return float64(cfg.Overload().Refused) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "b2bua_sip_overload_shedding",
				Help: "1 while new calls are refused for overload.",
			}, func() float64 {
				if cfg.Overload().Shedding {
					return 1
				}
				return 0
			}),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "b2bua_sip_sched_delay_p90_seconds",
				Help: "90th percentile of the time goroutines waited to run in the overload guard's last window (0 when not watched or idle).",
			}, func() float64 { return cfg.Overload().Delay.Seconds() }),
		)
	}
	if cfg.Clients != nil {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "b2bua_clients_logged_in",
			Help: "Clients logged in now: REGISTER bindings not yet expired, of every user.",
		}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			n, err := cfg.Clients(ctx)
			if err != nil {
				return -1 // the registry did not answer; -1 says so rather than a false 0
			}
			return float64(n)
		}))
	}
	if cfg.Paths != nil {
		m.reg.MustRegister(pathCollector{cfg.Paths})
	}
	if cfg.RTP != nil {
		m.reg.MustRegister(rtpCollector{cfg.RTP})
	}
}
