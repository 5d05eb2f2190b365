package sip

import (
	"runtime/metrics"
	"testing"
	"time"
)

func TestRawToTag(t *testing.T) {
	for _, tc := range []struct {
		name, head string
		tag        string
		ok         bool
	}{
		{"no tag", "INVITE sip:b@x SIP/2.0\r\nTo: <sip:b@x>\r\n\r\n", "", true},
		{"tag", "ACK sip:b@x SIP/2.0\r\nTo: <sip:b@x>;tag=abc\r\n\r\n", "abc", true},
		{"compact, spaced", "ACK sip:b@x SIP/2.0\r\nt : <sip:b@x> ; TAG = z9\r\n\r\n", "z9", true},
		{"tag in the URI only", "INVITE sip:b@x SIP/2.0\r\nTo: <sip:b@x;tag=u>\r\n\r\n", "", true},
		{"bare address", "INVITE sip:b@x SIP/2.0\r\nTo: sip:b@x;tag=q\r\n\r\n", "q", true},
		{"no To", "INVITE sip:b@x SIP/2.0\r\nFrom: <sip:a@x>;tag=1\r\n\r\n", "", false},
		{"To only in the body", "INVITE sip:b@x SIP/2.0\r\nFrom: <sip:a@x>\r\n\r\nTo: <sip:b@x>;tag=1\r\n", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tag, ok := rawToTag([]byte(tc.head))
			if tag != tc.tag || ok != tc.ok {
				t.Fatalf("rawToTag = %q, %v; want %q, %v", tag, ok, tc.tag, tc.ok)
			}
		})
	}
}

func TestP90(t *testing.T) {
	buckets := []float64{0, 0.001, 0.01, 0.1, 1}
	for _, tc := range []struct {
		name        string
		prev, count []uint64
		want        time.Duration
	}{
		{"first read", nil, []uint64{100, 0, 0, 0}, 0},
		{"idle window", []uint64{0, 0, 0, 0}, []uint64{10, 5, 0, 0}, 0},
		{"fast", []uint64{0, 0, 0, 0}, []uint64{95, 5, 0, 0}, time.Millisecond},
		{"behind: the 90th wake-up is in the last bucket", []uint64{0, 0, 0, 0}, []uint64{50, 10, 20, 20}, time.Second},
		{"behind", []uint64{0, 0, 0, 0}, []uint64{50, 10, 35, 5}, 100 * time.Millisecond},
		{"only the window counts", []uint64{0, 0, 0, 1000}, []uint64{100, 0, 0, 1000}, time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &metrics.Float64Histogram{Counts: tc.count, Buckets: buckets}
			if got := p90(h, tc.prev); got != tc.want {
				t.Fatalf("p90 = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestOverloadHysteresis: refusing starts past MaxDelay and ends only
// under half of it.
func TestOverloadHysteresis(t *testing.T) {
	o := newOverload(Overload{MaxDelay: 20 * time.Millisecond}, "tok")
	for i, step := range []struct {
		d    time.Duration
		shed bool
	}{
		{5 * time.Millisecond, false},
		{25 * time.Millisecond, true},
		{15 * time.Millisecond, true},
		{9 * time.Millisecond, false},
		{15 * time.Millisecond, false},
	} {
		o.observe(step.d)
		if got := o.shedding.Load(); got != step.shed {
			t.Fatalf("step %d (%v): shedding %v, want %v", i, step.d, got, step.shed)
		}
	}
}
