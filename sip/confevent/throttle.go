package confevent

import (
	"reflect"
	"slices"
	"time"

	"github.com/imcall/b2bua/conference"
)

// DefaultTalkingInterval is the least time between two NOTIFYs of one
// subscription that only say who is talking: speech detection flips a
// participant every few hundred milliseconds, and RFC 6665 §4.2.2 asks a
// notifier to rate-limit. Any other change goes out at once, with the
// talking changes held so far.
const DefaultTalkingInterval = time.Second

// throttle holds back one subscription's talking-only changes. Holding
// loses nothing: a partial document gives the current state of every
// participant it names, so held events merge into one.
type throttle struct {
	every   time.Duration
	sent    conference.Snapshot // the state the subscriber has
	sentAt  time.Time
	pending *conference.Event
}

// offer takes ev at now: send it now (merged with what is held), or hold
// it until at.
func (t *throttle) offer(ev conference.Event, now time.Time) (out conference.Event, send bool, at time.Time) {
	if t.pending != nil {
		ev = merge(*t.pending, ev)
		t.pending = nil
	}
	if !ev.Full && t.talkingOnly(ev) && now.Sub(t.sentAt) < t.every {
		t.pending = &ev
		return conference.Event{}, false, t.sentAt.Add(t.every)
	}
	return ev, true, time.Time{}
}

// flush gives the held event, if any.
func (t *throttle) flush() (conference.Event, bool) {
	if t.pending == nil {
		return conference.Event{}, false
	}
	ev := *t.pending
	t.pending = nil
	return ev, true
}

// sentNow records that ev went out at now.
func (t *throttle) sentNow(ev conference.Event, now time.Time) {
	t.sent, t.sentAt = ev.State, now
}

// talkingOnly: every participant ev changes is one the subscriber has,
// changed only in whether it talks.
func (t *throttle) talkingOnly(ev conference.Event) bool {
	if len(ev.Removed) > 0 || len(ev.Changed) == 0 {
		return false
	}
	for _, id := range ev.Changed {
		was, ok := t.sent.Participant(id)
		now, ok2 := ev.State.Participant(id)
		if !ok || !ok2 {
			return false
		}
		was.Talking = now.Talking
		if !reflect.DeepEqual(was, now) {
			return false
		}
	}
	return true
}

// merge is a then b as one event: b's state, both's changes.
func merge(a, b conference.Event) conference.Event {
	out := b
	out.Full = a.Full || b.Full
	out.Changed = slices.Clone(a.Changed)
	for _, id := range b.Changed {
		if !slices.Contains(out.Changed, id) {
			out.Changed = append(out.Changed, id)
		}
	}
	out.Removed = slices.Clone(a.Removed)
	for _, id := range b.Removed {
		if !slices.Contains(out.Removed, id) {
			out.Removed = append(out.Removed, id)
		}
	}
	// A participant removed after it changed is only removed.
	out.Changed = slices.DeleteFunc(out.Changed, func(id string) bool { return slices.Contains(out.Removed, id) })
	return out
}
