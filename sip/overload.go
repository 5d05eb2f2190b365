package sip

import (
	"bytes"
	"context"
	"math"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

// Overload says when the server is past its capacity and refuses new
// calls early: a new INVITE is answered 503 with Retry-After (RFC 3261
// §21.5.4) by the UDP reader itself, from the raw datagram, before sipgo
// parses it or starts a transaction, so that a refused call costs a
// fraction of a taken one. Dropping it instead, or answering late, brings
// its retransmissions back on top of the load that caused them. Calls in
// progress (their ACKs, BYEs, re-INVITEs) are never refused. The zero
// value refuses nothing.
type Overload struct {
	// MaxDelay: while the goroutines that became runnable in the last
	// sampling window waited longer than this to run (90th percentile,
	// the Go scheduler's own histogram, /sched/latencies:seconds), the
	// process is behind its input and new calls are refused, until the
	// delay is back under half of it. <= 0: not watched.
	MaxDelay time.Duration
	// MaxCalls refuses new calls while this many are live. <= 0: no
	// limit.
	MaxCalls int
	// RetryAfter is the Retry-After of the refusals; 0: 5s.
	RetryAfter time.Duration
	// Window is the sampling window of MaxDelay; 0: 20ms.
	Window time.Duration
}

// overload is a Server's live overload state.
type overload struct {
	cfg      Overload
	tag      string // To tag prefix of our refusals, to drop their ACKs
	retry    string // the Retry-After line
	n        atomic.Uint64
	shedding atomic.Bool
	refused  atomic.Uint64
	delay    atomic.Int64 // last window's 90th percentile, ns
}

func newOverload(cfg Overload, token string) *overload {
	if cfg.MaxDelay <= 0 && cfg.MaxCalls <= 0 {
		return nil
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = 5 * time.Second
	}
	if cfg.Window <= 0 {
		cfg.Window = 20 * time.Millisecond
	}
	return &overload{cfg: cfg, tag: token + "ovl",
		retry: "Retry-After: " + strconv.Itoa(max(int(cfg.RetryAfter/time.Second), 1))}
}

// OverloadStats are the overload guard's counters.
type OverloadStats struct {
	Refused  uint64        // new INVITEs answered 503 for overload
	Shedding bool          // new calls are being refused now
	Delay    time.Duration // the scheduling delay of the last window (90th percentile)
}

// OverloadStats reports the overload guard; zero without one.
func (s *Server) OverloadStats() OverloadStats {
	o := s.over
	if o == nil {
		return OverloadStats{}
	}
	return OverloadStats{Refused: o.refused.Load(), Shedding: o.shedding.Load(), Delay: time.Duration(o.delay.Load())}
}

// shed answers a new INVITE 503 when the server is overloaded, and drops
// the ACKs of those answers; true when data is dealt with. It runs on the
// reader for every datagram: a request that is no INVITE or ACK costs a
// prefix comparison.
func (s *Server) shed(props sipmsg.TransportReadProps, data []byte) bool {
	o := s.over
	if o == nil {
		return false
	}
	switch {
	case bytes.HasPrefix(data, []byte("INVITE ")):
		if !o.shedding.Load() && (o.cfg.MaxCalls <= 0 || s.live.Load() < int64(o.cfg.MaxCalls)) {
			return false
		}
		if tag, ok := rawToTag(data); !ok || tag != "" {
			return false // in a dialog (a re-INVITE), or no To to answer
		}
		tag := o.tag + strconv.FormatUint(o.n.Add(1), 36)
		res := rawResponse(data, 503, tag, o.retry,
			"Reason: "+reasonValue(CauseCongestion, "overloaded"), "Server: "+s.cfg.UserAgent)
		if res == nil {
			return false
		}
		o.refused.Add(1)
		s.answerRaw(props, res)
		return true
	case bytes.HasPrefix(data, []byte("ACK ")):
		// The ACK of a refusal belongs to no transaction (there was
		// none): it ends here rather than in one of its own.
		tag, _ := rawToTag(data)
		return strings.HasPrefix(tag, o.tag)
	}
	return false
}

// rawToTag is the tag of the raw request's To header ("" for none); ok is
// false without a To.
func rawToTag(data []byte) (string, bool) {
	rest := data
	for {
		i := bytes.Index(rest, []byte("\r\n"))
		if i <= 0 {
			return "", false // end of headers
		}
		line := rest[:i]
		rest = rest[i+2:]
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			continue
		}
		name := bytes.TrimRight(line[:colon], " \t")
		if !(len(name) == 1 && name[0]|0x20 == 't') && !bytes.EqualFold(name, []byte("to")) {
			continue
		}
		return tagParam(string(line[colon+1:])), true
	}
}

// tagParam is the tag parameter of a From or To value, outside its <>.
func tagParam(v string) string {
	if i := strings.LastIndexByte(v, '>'); i >= 0 {
		v = v[i+1:]
	}
	for _, p := range strings.Split(v, ";")[1:] {
		name, val, _ := strings.Cut(p, "=")
		if strings.EqualFold(strings.TrimSpace(name), "tag") {
			return strings.TrimSpace(val)
		}
	}
	return ""
}

func hasTagParam(line string) bool {
	_, v, _ := strings.Cut(line, ":")
	return tagParam(v) != ""
}

// watch samples the scheduler's latency histogram every window until ctx
// ends, and sheds while its 90th percentile is over MaxDelay.
func (o *overload) watch(ctx context.Context) {
	if o == nil || o.cfg.MaxDelay <= 0 {
		return
	}
	sample := []metrics.Sample{{Name: "/sched/latencies:seconds"}}
	var prev []uint64
	t := time.NewTicker(o.cfg.Window)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindFloat64Histogram {
			return
		}
		h := sample[0].Value.Float64Histogram()
		o.observe(p90(h, prev))
		prev = append(prev[:0], h.Counts...)
	}
}

// observe takes one window's delay: refusing starts above MaxDelay and
// stops below half of it, so that it does not flap at the threshold.
func (o *overload) observe(d time.Duration) {
	o.delay.Store(int64(d))
	switch {
	case d > o.cfg.MaxDelay:
		o.shedding.Store(true)
	case d < o.cfg.MaxDelay/2:
		o.shedding.Store(false)
	}
}

// minWakeups is the fewest goroutine wake-ups in a window whose delay
// counts: an idle process wakes a few timers, and one late one is noise.
const minWakeups = 32

// p90 is the 90th percentile of the wake-ups counted in h since prev (the
// counts of the previous read), the upper bound of its bucket.
func p90(h *metrics.Float64Histogram, prev []uint64) time.Duration {
	if len(prev) != len(h.Counts) {
		return 0 // the first read: no window yet
	}
	var total uint64
	for i, c := range h.Counts {
		total += c - prev[i]
	}
	if total < minWakeups {
		return 0
	}
	want := total - total/10
	var seen uint64
	for i, c := range h.Counts {
		seen += c - prev[i]
		if seen >= want {
			hi := h.Buckets[i+1]
			if math.IsInf(hi, 1) {
				hi = h.Buckets[i]
			}
			return time.Duration(hi * float64(time.Second))
		}
	}
	return 0
}
