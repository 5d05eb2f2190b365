package metrics

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/scp"
	"github.com/imcall/b2bua/sip"
	"github.com/imcall/b2bua/sip/messaging"
)

// CallEnded counts the call by outcome and cause, and observes its
// post-dial delay and each leg's RTP loss and jitter.
func (m *Metrics) CallEnded(s registry.CallSummary) {
	m.calls.WithLabelValues(s.Outcome, strconv.Itoa(s.Q850Cause)).Inc()
	if s.PostDialSeconds != nil {
		m.postDial.Observe(*s.PostDialSeconds)
	}
	if len(s.Stats) == 0 {
		return
	}
	var tree any
	if json.Unmarshal(s.Stats, &tree) != nil {
		return
	}
	eachLeg(tree, func(l legStats) {
		kind, _, _ := strings.Cut(l.Leg, "-") // "uas-1" → "uas": one series per side, not per call
		if l.Expected > 0 {
			m.rtpLoss.WithLabelValues(kind).Observe(max(float64(l.Lost), 0) / float64(l.Expected))
			m.rtpJitter.WithLabelValues(kind).Observe(l.JitterMs / 1000)
		}
	})
}

// legStats is what CallEnded reads of rtpproxy.LegStats in a record's
// stats.
type legStats struct {
	Leg      string  `json:"leg"`
	Expected uint64  `json:"expected"`
	Lost     int64   `json:"lost"`
	JitterMs float64 `json:"jitter_ms"`
}

// eachLeg finds the per-leg counters wherever the record nests them (a
// plain call's list, a dual-path call's "media").
func eachLeg(v any, f func(legStats)) {
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			eachLeg(e, f)
		}
	case map[string]any:
		if _, ok := v["leg"].(string); ok {
			if _, ok := v["expected"]; ok {
				b, _ := json.Marshal(v)
				var l legStats
				if json.Unmarshal(b, &l) == nil {
					f(l)
				}
				return
			}
		}
		for _, e := range v {
			eachLeg(e, f)
		}
	}
}

// Registered counts a REGISTER answered 200.
func (m *Metrics) Registered() { m.registers.Inc() }

// LimitEvent counts a per-source limit at work.
func (m *Metrics) LimitEvent(kind string) { m.limits.WithLabelValues(kind).Inc() }

// MessageDecided counts a MESSAGE by its decision.
func (m *Metrics) MessageDecided(decision string) { m.messages.WithLabelValues(decision).Inc() }

// sipStatusPrefix starts every SIP response (RFC 3261 §7.2).
var sipStatusPrefix = []byte("SIP/2.0 ")

// TraceSIP counts the responses the server writes by class.
func (m *Metrics) TraceSIP(w sip.WireMessage) {
	if !w.Out || !bytes.HasPrefix(w.Data, sipStatusPrefix) || len(w.Data) < len(sipStatusPrefix)+3 {
		return
	}
	d := w.Data[len(sipStatusPrefix)]
	if d < '1' || d > '6' {
		return
	}
	m.answers.WithLabelValues(string(d) + "xx").Inc()
}

// Locator wraps l so that each lookup is counted by outcome and timed.
func (m *Metrics) Locator(l scp.Locator) scp.Locator { return &locator{Locator: l, m: m} }

type locator struct {
	scp.Locator
	m *Metrics
}

func (l *locator) Locate(ctx context.Context, mobileID string) (scp.Location, error) {
	start := time.Now()
	loc, err := l.Locator.Locate(ctx, mobileID)
	l.m.scpDuration.WithLabelValues(l.m.backend).Observe(time.Since(start).Seconds())
	l.m.scpLookups.WithLabelValues(l.m.backend, lookupOutcome(loc, err)).Inc()
	return loc, err
}

func lookupOutcome(loc scp.Location, err error) string {
	switch {
	case err == nil:
		return string(loc.State)
	case errors.Is(err, scp.ErrUnknownSubscriber):
		return "unknown"
	case errors.Is(err, scp.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	return "unavailable"
}

// Compile-time checks of the observer interfaces.
var (
	_ sip.Observer       = (*Metrics)(nil)
	_ sip.Tracer         = (*Metrics)(nil)
	_ messaging.Observer = (*Metrics)(nil)
)
