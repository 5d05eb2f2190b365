package confevent

import (
	"slices"
	"testing"
	"time"

	"github.com/imcall/b2bua/conference"
)

func state(ps ...conference.Participant) conference.Snapshot {
	return conference.Snapshot{ID: "c1", Participants: ps}
}

func part(id string, st conference.Status, talking, muted bool) conference.Participant {
	return conference.Participant{ID: id, Target: id, Status: st, Talking: talking, Muted: muted}
}

// TestThrottle: talking-only changes within the interval of the last
// NOTIFY are held and merged; any other change, a full event, or the
// interval passing sends at once, with what was held.
func TestThrottle(t *testing.T) {
	t0 := time.Unix(1000, 0)
	c := conference.StatusConnected
	base := state(part("p1", c, false, false), part("p2", c, false, false))
	type step struct {
		at      time.Duration
		ev      conference.Event
		send    bool
		changed []string // of what is sent
		holdTo  time.Duration
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"talking held, then merged into a mute", []step{
			{100 * time.Millisecond, conference.Event{State: state(part("p1", c, true, false), part("p2", c, false, false)), Changed: []string{"p1"}}, false, nil, time.Second},
			{200 * time.Millisecond, conference.Event{State: state(part("p1", c, true, false), part("p2", c, true, false)), Changed: []string{"p2"}}, false, nil, time.Second},
			{300 * time.Millisecond, conference.Event{State: state(part("p1", c, true, true), part("p2", c, true, false)), Changed: []string{"p1"}}, true, []string{"p1", "p2"}, 0},
		}},
		{"talking after the interval goes at once", []step{
			{1500 * time.Millisecond, conference.Event{State: state(part("p1", c, true, false), part("p2", c, false, false)), Changed: []string{"p1"}}, true, []string{"p1"}, 0},
		}},
		{"a status change goes at once", []step{
			{10 * time.Millisecond, conference.Event{State: state(part("p1", conference.StatusOnHold, false, false), part("p2", c, false, false)), Changed: []string{"p1"}}, true, []string{"p1"}, 0},
		}},
		{"a new participant goes at once", []step{
			{10 * time.Millisecond, conference.Event{State: state(part("p1", c, false, false), part("p2", c, false, false), part("p3", conference.StatusDialing, false, false)), Changed: []string{"p3"}}, true, []string{"p3"}, 0},
		}},
		{"a full resync goes at once", []step{
			{10 * time.Millisecond, conference.Event{State: state(part("p1", c, true, false), part("p2", c, false, false)), Changed: []string{"p1"}, Full: true}, true, []string{"p1"}, 0},
		}},
		{"held, then removed: only removed", []step{
			{10 * time.Millisecond, conference.Event{State: state(part("p1", c, true, false), part("p2", c, false, false)), Changed: []string{"p1"}}, false, nil, time.Second},
			{20 * time.Millisecond, conference.Event{State: state(part("p2", c, false, false)), Removed: []string{"p1"}}, true, nil, 0},
		}},
	} {
		th := throttle{every: time.Second}
		th.sentNow(conference.Event{State: base}, t0)
		for i, s := range tc.steps {
			out, send, at := th.offer(s.ev, t0.Add(s.at))
			if send != s.send {
				t.Fatalf("%s, step %d: send %v, want %v", tc.name, i, send, s.send)
			}
			if !send && !at.Equal(t0.Add(s.holdTo)) {
				t.Errorf("%s, step %d: held until %v, want %v", tc.name, i, at.Sub(t0), s.holdTo)
			}
			if send {
				if !slices.Equal(out.Changed, s.changed) {
					t.Errorf("%s, step %d: sent changes %v, want %v", tc.name, i, out.Changed, s.changed)
				}
				th.sentNow(out, t0.Add(s.at))
			}
		}
	}
	// What is held is given by flush, once.
	th := throttle{every: time.Second}
	th.sentNow(conference.Event{State: base}, t0)
	th.offer(conference.Event{State: state(part("p1", c, true, false), part("p2", c, false, false)), Changed: []string{"p1"}}, t0.Add(time.Millisecond))
	if ev, ok := th.flush(); !ok || !slices.Equal(ev.Changed, []string{"p1"}) {
		t.Errorf("flush: %v %v", ev.Changed, ok)
	}
	if _, ok := th.flush(); ok {
		t.Error("flush gave the held event twice")
	}
}
