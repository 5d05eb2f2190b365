package sip

import "time"

// pathSample is what the session knows of one answered near leg when it
// chooses the far party's source.
type pathSample struct {
	id   LegID
	last time.Time // its last RTP (its join time before any)
	// loss is the fraction of its packets lost over the last loss window
	// (lossWindow); negative while unknown.
	loss float64
}

// pathRules are the thresholds of choosePath (DualPathConfig).
type pathRules struct {
	switchAfter time.Duration // the active path silent this long is left
	lossMargin  float64       // it is left too when it loses this much more than another
	lossHold    time.Duration // no switch for loss this soon after any switch
}

// Why choosePath switched: a silent active path, or a lossy one.
const (
	switchSilence = "silence"
	switchLoss    = "loss"
)

// choosePath decides whom the far party should hear: to is "" to keep
// the active path. Silence first: an active path silent for switchAfter
// is left for the path that sent most recently within switchAfter. Then
// loss: between paths that both carry media, the active one is left for
// the least lossy other once it loses lossMargin more of its packets (a
// whole loss window measured on both), at most once per lossHold. The
// incumbent stays otherwise, so two live paths do not flap.
func choosePath(now time.Time, active LegID, ps []pathSample, r pathRules, lastSwitch time.Time) (to LegID, why string) {
	var cur *pathSample
	for i := range ps {
		if ps[i].id == active {
			cur = &ps[i]
		}
	}
	var fresh, clean *pathSample
	for i := range ps {
		p := &ps[i]
		if p.id == active || now.Sub(p.last) > r.switchAfter {
			continue
		}
		if fresh == nil || p.last.After(fresh.last) {
			fresh = p
		}
		if p.loss >= 0 && (clean == nil || p.loss < clean.loss) {
			clean = p
		}
	}
	switch {
	case fresh == nil:
		return "", ""
	case cur == nil || now.Sub(cur.last) > r.switchAfter:
		return fresh.id, switchSilence
	case clean != nil && cur.loss >= 0 && cur.loss-clean.loss >= r.lossMargin && now.Sub(lastSwitch) >= r.lossHold:
		return clean.id, switchLoss
	}
	return "", ""
}

// lossWindow is the span over which a path's loss is measured: 50
// packets of 20 ms, so that one lost packet is 2%.
const lossWindow = time.Second

// lossMeter turns a leg's cumulative reception counters (RFC 3550 A.3)
// into the fraction lost over the last window.
type lossMeter struct {
	at             time.Time
	expected       uint64
	lost           int64
	fraction       float64
	known, started bool
}

// sample takes the counters at now; a window closes once lossWindow has
// passed since the last one.
func (m *lossMeter) sample(now time.Time, expected uint64, lost int64) {
	if !m.started {
		m.at, m.expected, m.lost, m.started = now, expected, lost, true
		return
	}
	if now.Sub(m.at) < lossWindow {
		return
	}
	if de := expected - m.expected; de > 0 {
		m.fraction = max(float64(lost-m.lost), 0) / float64(de)
		m.known = true
	}
	m.at, m.expected, m.lost = now, expected, lost
}

// loss is the last window's fraction, negative before a window closed.
func (m *lossMeter) loss() float64 {
	if !m.known {
		return -1
	}
	return m.fraction
}
