package sip

import (
	"testing"
	"time"
)

// TestFlowTable: a watcher runs once when its open flow fails; a flow
// that failed is known as failed for flowMemory, then forgotten; one we
// never accepted is unknown; a reopened flow is watched afresh.
func TestFlowTable(t *testing.T) {
	const id = "tcp 192.0.2.1:5070"
	now := time.Unix(100, 0)
	type step struct {
		do   string // open, openOther, close, watch, watchB, unwatch, wait
		want int    // watch: what it found; close: how many watchers ran
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"unknown flow", []step{{"watch", flowUnknown}}},
		{"watched, then failed", []step{{"open", 0}, {"watch", flowWatched}, {"close", 1}, {"close", 0}}},
		{"same name replaces", []step{{"open", 0}, {"watch", flowWatched}, {"watch", flowWatched}, {"close", 1}}},
		{"two names", []step{{"open", 0}, {"watch", flowWatched}, {"watchB", flowWatched}, {"close", 2}}},
		{"unwatched", []step{{"open", 0}, {"watch", flowWatched}, {"unwatch", 0}, {"close", 0}}},
		{"failed before the watch", []step{{"open", 0}, {"close", 0}, {"watch", flowFailed}}},
		{"failed long ago is forgotten", []step{{"open", 0}, {"close", 0}, {"wait", 0}, {"openOther", 0}, {"watch", flowUnknown}}},
		{"reopened", []step{{"open", 0}, {"close", 0}, {"open", 0}, {"watch", flowWatched}, {"close", 1}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := now
			ft := flowTable{now: func() time.Time { return clock }}
			ran := 0
			for i, s := range tc.steps {
				switch s.do {
				case "open":
					ft.opened(id)
				case "openOther":
					ft.opened("tcp 192.0.2.2:5070")
				case "close":
					ran = 0
					ft.closed(id)
					if ran != s.want {
						t.Fatalf("step %d: %d watchers ran, want %d", i, ran, s.want)
					}
				case "watch", "watchB":
					if got := ft.watch(id, s.do, func() { ran++ }); got != s.want {
						t.Fatalf("step %d: watch = %d, want %d", i, got, s.want)
					}
				case "unwatch":
					ft.unwatch(id, "watch")
				case "wait":
					clock = clock.Add(flowMemory + time.Second)
				}
			}
		})
	}
}
