package conference

import (
	"context"
	"errors"
	"testing"
)

// TestSlowWatcherIsResynced: a watcher that reads nothing never holds the
// conference up; when it reads again it gets one full event of the state
// it missed, and the notifier answers that with a full document.
func TestSlowWatcherIsResynced(t *testing.T) {
	f := &fakeDialer{}
	m := newManager(t, f)
	ctx := t.Context()
	c, _ := m.Create(ctx, "alice", []string{"bob"})
	conf, _ := m.Conference(c.ID)
	slow := conf.Watch(ctx)
	leg := f.leg(t, c.ID, "p1")
	_ = leg.Connected()
	for i := range 3 * watchBuffer {
		if err := leg.Talking(i%2 == 0); err != nil {
			t.Fatal(err)
		}
	}
	want := conf.Snapshot().Version
	queued := len(slow.Events())
	if queued > watchBuffer {
		t.Fatalf("%d events queued, the bound is %d", queued, watchBuffer)
	}
	var n Notifier
	n.Document(Event{State: c.Snapshot, Full: true}) // what the watcher had before it fell behind
	resync := <-slow.Events()
	body, err := n.Document(resync)
	if err != nil {
		t.Fatal(err)
	}
	mustValidate(t, body)
	if d := parse(t, body); !resync.Full || d.State != "full" || d.Version != 2 {
		t.Errorf("first event after the gap: full %v, document state %q version %d", resync.Full, d.State, d.Version)
	}
	v := resync.State.Version
	for range queued - 1 {
		ev := <-slow.Events()
		if ev.Full || ev.State.Version != v+1 {
			t.Fatalf("after the resync: full %v version %d, want partial %d", ev.Full, ev.State.Version, v+1)
		}
		v++
	}
	if v != want {
		t.Errorf("last event at version %d, state at %d", v, want)
	}
}

// TestLateReportsAreIgnored: SIP messages handled out of order never move
// a participant back, and a report that changes nothing publishes nothing.
func TestLateReportsAreIgnored(t *testing.T) {
	tests := []struct {
		name  string
		steps func(l Leg)
		want  Status
		end   EndMethod
		again bool // the steps change nothing when repeated
	}{
		{"180 after 200", func(l Leg) { l.Connected(); l.Alerting() }, StatusConnected, "", true},
		{"200 after BYE", func(l Leg) { l.Connected(); l.Ended(Ending{Method: Departed}); l.Connected() }, StatusDisconnected, Departed, true},
		{"end before answer is a failure", func(l Leg) { l.Alerting(); l.Ended(Ending{Method: Departed, SIPCode: 487}) }, StatusDisconnected, Failed, true},
		{"resume when not held", func(l Leg) { l.Alerting(); l.Held(false) }, StatusRinging, "", true},
		{"hold and resume", func(l Leg) { l.Connected(); l.Held(true); l.Held(false) }, StatusConnected, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeDialer{}
			m := newManager(t, f)
			// A second participant keeps the conference up.
			c, _ := m.Create(t.Context(), "alice", []string{"bob", "carol"})
			conf, _ := m.Conference(c.ID)
			_ = f.leg(t, c.ID, "p2").Connected()
			tt.steps(f.leg(t, c.ID, "p1"))
			p, _ := conf.Snapshot().Participant("p1")
			if p.Status != tt.want {
				t.Errorf("status %s, want %s", p.Status, tt.want)
			}
			if got := EndMethod(""); p.Ended != nil {
				got = p.Ended.Method
				if got != tt.end {
					t.Errorf("ended %s, want %s", got, tt.end)
				}
			} else if tt.end != "" {
				t.Errorf("not ended, want %s", tt.end)
			}
			if !tt.again {
				return
			}
			v := conf.Snapshot().Version
			tt.steps(f.leg(t, c.ID, "p1")) // the same reports again change nothing
			if got := conf.Snapshot().Version; got != v {
				t.Errorf("repeated reports moved the version from %d to %d", v, got)
			}
		})
	}
}

func TestManagerOperations(t *testing.T) {
	f := &fakeDialer{dial: func(p Participant, leg Leg) error {
		if p.Target == "+15550009999" {
			return errors.New("no trunk for +1555")
		}
		return leg.Connected()
	}}
	m := newManager(t, f)
	ctx := t.Context()
	c, err := m.Create(ctx, "alice", []string{"bob", "+1 555 000 1111"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Owner != "alice" || c.URI != "sip:conf-"+c.ID+"@im.example" || len(c.Token) != 43 {
		t.Errorf("created %+v", c)
	}
	if got, ok := m.ByToken(c.Token); !ok || got.ID() != c.ID {
		t.Error("token does not find the conference")
	}
	if _, ok := m.ByToken(c.Token[:42] + "A"); ok {
		t.Error("a wrong token found a conference")
	}
	if _, err := m.Create(ctx, "alice", []string{"not a number"}); err == nil {
		t.Error("bad target accepted")
	}

	p, err := m.Add(ctx, c.ID, "+15550009999", "")
	if err != nil || p.Status != StatusDisconnected || p.Ended.Method != Failed || p.Ended.Reason != "no trunk for +1555" {
		t.Errorf("failed dial: %+v %v", p, err)
	}
	if _, err := m.SetMuted(ctx, c.ID, p.ID, true); !errors.Is(err, ErrNotLive) {
		t.Errorf("mute of an ended call: %v", err)
	}
	if p, err := m.SetMuted(ctx, c.ID, "p1", true); err != nil || !p.Muted || !f.mutes[c.ID+"/p1"] {
		t.Errorf("mute: %+v %v", p, err)
	}
	f.muteErr = errors.New("mixer gone")
	if p, err := m.SetMuted(ctx, c.ID, "p1", false); err == nil || !p.Muted {
		t.Errorf("unmute the mixer refused: %+v %v", p, err)
	}
	f.muteErr = nil
	if p, err := m.Kick(ctx, c.ID, "p2"); err != nil || p.Ended == nil || p.Ended.Method != Booted || f.hungUp[c.ID+"/p2"].Method != Booted {
		t.Errorf("kick: %+v %v", p, err)
	}
	if _, err := m.Kick(ctx, c.ID, "p9"); !errors.Is(err, ErrNotFound) {
		t.Errorf("kick of nobody: %v", err)
	}

	conf, _ := m.Conference(c.ID)
	w := conf.Watch(context.Background())
	next(t, w)
	s, err := m.End(ctx, c.ID)
	if err != nil || !s.Ended {
		t.Fatalf("end: %+v %v", s, err)
	}
	if f.hungUp[c.ID+"/p1"].Reason != "conference ended" {
		t.Errorf("p1 not hung up at the end: %+v", f.hungUp)
	}
	for range w.Events() {
	} // closed after the last event
	if _, err := m.Conference(c.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("ended conference still held: %v", err)
	}
	if _, ok := m.ByToken(c.Token); ok {
		t.Error("ended conference's page still served")
	}
	if len(m.List()) != 0 {
		t.Errorf("list %v", m.List())
	}
}
