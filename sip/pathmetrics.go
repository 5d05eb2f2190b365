package sip

import (
	"sync/atomic"
	"time"
)

// PathMetrics counts the source switches of dual-path calls for /metrics.
type PathMetrics struct {
	Switches uint64 `json:"path_switches"`
	// GapBuckets counts switches by the silence of the path that was left,
	// at most GapBounds[i] ms; the last bucket is above the last bound.
	GapBuckets []uint64 `json:"path_switch_gap_buckets"`
	GapBounds  []int    `json:"path_switch_gap_bounds_ms"`
	GapSumMs   uint64   `json:"path_switch_gap_sum_ms"`
	// TwoPaths is how many sessions have two answered near legs now.
	TwoPaths int64 `json:"sessions_two_paths"`
}

var gapBoundsMs = []int{20, 40, 60, 100, 200, 500, 1000}

type pathMetrics struct {
	switches atomic.Uint64
	gaps     [8]atomic.Uint64 // len(gapBoundsMs)+1
	gapSumMs atomic.Uint64
	twoPaths atomic.Int64
}

func (m *pathMetrics) switched(gap time.Duration) {
	m.switches.Add(1)
	m.gapSumMs.Add(uint64(gap.Milliseconds()))
	i := 0
	for i < len(gapBoundsMs) && gap > time.Duration(gapBoundsMs[i])*time.Millisecond {
		i++
	}
	m.gaps[i].Add(1)
}

// PathMetrics gives the dual-path counters.
func (s *Server) PathMetrics() PathMetrics {
	m := PathMetrics{Switches: s.pathMetrics.switches.Load(), GapBounds: gapBoundsMs, TwoPaths: s.pathMetrics.twoPaths.Load(), GapSumMs: s.pathMetrics.gapSumMs.Load()}
	for i := range s.pathMetrics.gaps {
		m.GapBuckets = append(m.GapBuckets, s.pathMetrics.gaps[i].Load())
	}
	return m
}
