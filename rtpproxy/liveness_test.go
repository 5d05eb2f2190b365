package rtpproxy

import (
	"testing"
	"time"
)

func TestLastRTP(t *testing.T) {
	_, c, a, b, _ := threeLegs(t, 47600, nil)
	for _, l := range []Leg{"a", "b", "c", "nobody"} {
		if got := c.LastRTP(l); !got.IsZero() {
			t.Fatalf("LastRTP(%s) before any packet = %v, want zero", l, got)
		}
	}
	before := time.Now()
	sendN(b, 1)
	recv(t, a.rtp)
	after := time.Now()
	got := c.LastRTP("b")
	if got.Before(before.Add(-time.Millisecond)) || got.After(after.Add(time.Millisecond)) {
		t.Fatalf("LastRTP(b) = %v, want within [%v, %v]", got, before, after)
	}
	if !c.LastRTP("c").IsZero() {
		t.Fatal("LastRTP(c) set by b's packet")
	}
	if n := testing.AllocsPerRun(100, func() { c.LastRTP("b") }); n != 0 {
		t.Fatalf("LastRTP allocates %v times", n)
	}
}
