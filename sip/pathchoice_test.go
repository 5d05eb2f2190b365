package sip

import (
	"log/slog"
	"sort"
	"sync"
	"testing"
	"time"
)

func TestChoosePath(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := time.Millisecond
	r := pathRules{switchAfter: 30 * ms, lossMargin: 0.05, lossHold: 2 * time.Second}
	long := t0.Add(-time.Hour) // a switch long ago
	cases := []struct {
		name       string
		ps         []pathSample
		lastSwitch time.Time
		to, why    string
	}{
		{"both fresh, no loss known", []pathSample{{"a", t0.Add(-5 * ms), -1}, {"b", t0.Add(-2 * ms), -1}}, long, "", ""},
		{"active silent, other fresh", []pathSample{{"a", t0.Add(-31 * ms), -1}, {"b", t0.Add(-2 * ms), -1}}, long, "b", switchSilence},
		{"active silent just under the bound", []pathSample{{"a", t0.Add(-30 * ms), -1}, {"b", t0.Add(-2 * ms), -1}}, long, "", ""},
		{"both silent", []pathSample{{"a", t0.Add(-100 * ms), 0}, {"b", t0.Add(-40 * ms), 0}}, long, "", ""},
		{"silence switches even right after a switch", []pathSample{{"a", t0.Add(-40 * ms), 0}, {"b", t0, 0}}, t0.Add(-ms), "b", switchSilence},
		{"freshest of two others", []pathSample{{"a", t0.Add(-50 * ms), -1}, {"b", t0.Add(-20 * ms), -1}, {"c", t0.Add(-3 * ms), -1}}, long, "c", switchSilence},
		{"active lossy by the margin", []pathSample{{"a", t0, 0.08}, {"b", t0, 0.02}}, long, "b", switchLoss},
		{"active lossy under the margin", []pathSample{{"a", t0, 0.06}, {"b", t0, 0.02}}, long, "", ""},
		{"other's loss unknown", []pathSample{{"a", t0, 0.5}, {"b", t0, -1}}, long, "", ""},
		{"active's loss unknown", []pathSample{{"a", t0, -1}, {"b", t0, 0}}, long, "", ""},
		{"lossy but a switch was recent", []pathSample{{"a", t0, 0.5}, {"b", t0, 0}}, t0.Add(-time.Second), "", ""},
		{"lossy, hold over", []pathSample{{"a", t0, 0.5}, {"b", t0, 0}}, t0.Add(-2 * time.Second), "b", switchLoss},
		{"the clean path is silent", []pathSample{{"a", t0, 0.5}, {"b", t0.Add(-31 * ms), 0}}, long, "", ""},
		{"least lossy of two others", []pathSample{{"a", t0, 0.3}, {"b", t0, 0.2}, {"c", t0, 0.1}}, long, "c", switchLoss},
		{"active gone from the samples", []pathSample{{"b", t0.Add(-10 * ms), -1}}, long, "b", switchSilence},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			to, why := choosePath(t0, "a", tc.ps, r, tc.lastSwitch)
			if string(to) != tc.to || why != tc.why {
				t.Fatalf("choosePath = %q %q, want %q %q", to, why, tc.to, tc.why)
			}
		})
	}
}

func TestLossMeter(t *testing.T) {
	t0 := time.Unix(1000, 0)
	type step struct {
		after    time.Duration // since t0
		expected uint64
		lost     int64
		want     float64
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"unknown before a window closes", []step{{0, 10, 0, -1}, {900 * time.Millisecond, 55, 5, -1}}},
		{"the window's own loss", []step{{0, 10, 1, -1}, {time.Second, 60, 3, 0.04}}},
		{"next window forgets the last", []step{{0, 0, 0, -1}, {time.Second, 50, 10, 0.2}, {2 * time.Second, 100, 10, 0}}},
		{"duplicates are not negative loss", []step{{0, 0, 0, -1}, {time.Second, 50, -2, 0}}},
		{"no packets keeps the last figure", []step{{0, 0, 0, -1}, {time.Second, 50, 5, 0.1}, {2 * time.Second, 50, 5, 0.1}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var m lossMeter
			for i, s := range tc.steps {
				m.sample(t0.Add(s.after), s.expected, s.lost)
				if got := m.loss(); got != s.want {
					t.Fatalf("step %d: loss %v, want %v", i, got, s.want)
				}
			}
		})
	}
}

// fakeClock is a Clock whose time moves only when the test says.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at      time.Time
	f       func()
	stopped bool
}

func (t *fakeTimer) Stop() bool { was := !t.stopped; t.stopped = true; return was }

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

// advance moves the clock by d, firing the timers due on the way in order.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		sort.Slice(c.timers, func(i, j int) bool { return c.timers[i].at.Before(c.timers[j].at) })
		var due *fakeTimer
		for i, t := range c.timers {
			if !t.at.After(end) {
				due = t
				c.timers = append(c.timers[:i:i], c.timers[i+1:]...)
				break
			}
		}
		if due == nil {
			c.now = end
			c.mu.Unlock()
			return
		}
		c.now = due.at
		c.mu.Unlock()
		if !due.stopped {
			due.f()
		}
	}
}

// fakePaths is a PathSelector whose legs' last packets and counters the
// test sets.
type fakePaths struct {
	MediaSession
	last     map[LegID]time.Time
	expected map[LegID]uint64
	lost     map[LegID]int64
	selected []LegID
}

func (f *fakePaths) Select(to, from LegID)             { f.selected = append(f.selected, from) }
func (f *fakePaths) LastRTP(l LegID) time.Time         { return f.last[l] }
func (f *fakePaths) Reception(l LegID) (uint64, int64) { return f.expected[l], f.lost[l] }

// TestPollPathsOnInjectedClock drives the path poll of a session with two
// answered near legs on a fake clock: the far party's source moves when
// the active path falls silent for SwitchAfter, and when it loses 5% more
// than the other over a loss window, and not sooner.
func TestPollPathsOnInjectedClock(t *testing.T) {
	clk := &fakeClock{now: time.Unix(5000, 0)}
	dp := DualPathConfig{Window: time.Second, Clock: clk}
	dp.setDefaults()
	c := &session{
		s:     &Server{cfg: Config{DualPath: dp}},
		log:   slog.New(slog.DiscardHandler),
		tasks: newTaskQueue(nil),
	}
	mk := func(id LegID) *uasLeg {
		u := &uasLeg{leg: newLeg(id, "caller", dialogState{})}
		u.up, u.final = true, true
		return u
	}
	a, b := mk("uas-1"), mk("uas-2")
	c.uas, c.origin = []*uasLeg{a, b}, a
	c.winner = &uacLeg{leg: newLeg("uac-1", "callee", dialogState{})}
	sel := &fakePaths{last: map[LegID]time.Time{}, expected: map[LegID]uint64{}, lost: map[LegID]int64{}}
	c.media = sel
	c.dual = &dualState{joined: map[*uasLeg]time.Time{a: clk.Now(), b: clk.Now()}, left: map[*uasLeg]time.Time{}}
	run := func(d time.Duration, each func()) {
		// The clock in 5 ms steps, both paths' media set before each, the
		// session's queued work run after.
		for step := time.Duration(0); step < d; step += 5 * time.Millisecond {
			each()
			clk.advance(5 * time.Millisecond)
			c.tasks.mu.Lock()
			fns := c.tasks.fns
			c.tasks.fns = nil
			c.tasks.mu.Unlock()
			for _, fn := range fns {
				fn()
			}
		}
	}
	sending := func(ids ...LegID) func() {
		return func() {
			for _, id := range ids {
				sel.last[id] = clk.Now()
				sel.expected[id] += 1 // a packet per 5 ms is enough here
			}
		}
	}
	c.startPaths()
	if c.dual.paths.active != "uas-1" || len(sel.selected) != 1 {
		t.Fatalf("start: active %q, selects %v", c.dual.paths.active, sel.selected)
	}
	run(500*time.Millisecond, sending("uas-1", "uas-2"))
	if c.dual.paths.switches != 0 {
		t.Fatalf("two live paths switched %d times", c.dual.paths.switches)
	}
	// The first path falls silent: the switch comes once it has been
	// silent for SwitchAfter (30 ms), at the poll after that.
	silentAt := clk.Now()
	run(25*time.Millisecond, sending("uas-2"))
	if c.dual.paths.switches != 0 {
		t.Fatalf("switched after %v of silence", clk.Now().Sub(silentAt))
	}
	run(15*time.Millisecond, sending("uas-2"))
	if c.dual.paths.active != "uas-2" || c.dual.paths.switches != 1 {
		t.Fatalf("after 40 ms of silence: active %q, %d switches", c.dual.paths.active, c.dual.paths.switches)
	}
	if g := c.dual.paths.gaps[0]; g <= 30*time.Millisecond || g > 40*time.Millisecond {
		t.Errorf("recorded gap %v, want just over 30 ms", g)
	}
	// Both carry media again; the active one (uas-2) starts losing 10%
	// of its packets: the source moves back once a whole loss window has
	// measured it, and the hold since the last switch has passed.
	run(2*time.Second, func() {
		sending("uas-1", "uas-2")()
		sel.lost["uas-2"] = int64(sel.expected["uas-2"] / 10)
	})
	if c.dual.paths.active != "uas-1" || c.dual.paths.switches != 2 {
		t.Fatalf("a lossy active path: active %q, %d switches", c.dual.paths.active, c.dual.paths.switches)
	}
	if at := c.dual.paths.lastSwitch.Sub(silentAt); at < 2*time.Second {
		t.Errorf("loss switch %v after the silence switch, within the 2 s hold", at)
	}
	c.stopPaths()
}
