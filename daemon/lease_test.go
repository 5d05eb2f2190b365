package daemon

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/registry/sqlite"
)

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestLeasedPending: of two nodes on one store, only the lease holder's
// delivery loop sees kept messages; a REGISTER at the other makes them due
// for the holder; when the holder stops renewing (it died), the other
// takes the work over once the lease has expired, and at once when the
// holder releases it.
func TestLeasedPending(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "r.db")
	var stores []*sqlite.Store
	for range 2 {
		s, err := sqlite.Open(ctx, sqlite.Config{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		stores = append(stores, s)
	}
	clock := &fakeClock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	nodes := make([]leasedPending, 2)
	for i, name := range []string{"a", "b"} {
		g := newLeaseGuard(stores[i], leaseDeliver, name, slog.New(slog.DiscardHandler))
		g.now = clock.now
		nodes[i] = leasedPending{stores[i], g}
	}
	t0 := clock.now()
	if _, err := stores[0].AddPending(ctx, registry.PendingMessage{Recipient: "alice", ContentType: "text/plain", Body: []byte("hi"),
		Created: t0, Expires: t0.Add(time.Hour), NextAttempt: t0.Add(10 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	count := func(node int, due bool) int {
		t.Helper()
		var list []registry.PendingMessage
		var err error
		if due {
			list, err = nodes[node].DuePending(ctx, clock.now(), 10)
		} else {
			list, err = nodes[node].PendingFor(ctx, "alice")
		}
		if err != nil {
			t.Fatal(err)
		}
		return len(list)
	}
	steps := []struct {
		name    string
		advance time.Duration
		node    int
		due     bool // DuePending; else PendingFor (a REGISTER of alice)
		want    int
	}{
		{"a takes the lease; nothing due yet", 0, 0, true, 0},
		{"b without the lease sees nothing due", 0, 1, true, 0},
		{"REGISTER at b hurries the message", 0, 1, false, 0},
		{"a sees it due on its next sweep", time.Second, 0, true, 1},
		{"b still nothing, a renews", 4 * time.Second, 1, true, 0},
		{"a renews within its term", 2 * time.Second, 0, true, 1},
		{"a stops (dies); before expiry b waits", 14 * time.Second, 1, true, 0},
		{"after expiry b takes over", time.Second, 1, true, 1},
		{"a, back, does not deliver", 0, 0, true, 0},
	}
	for _, st := range steps {
		clock.add(st.advance)
		if got := count(st.node, st.due); got != st.want {
			t.Fatalf("%s: node %d got %d messages, want %d", st.name, st.node, got, st.want)
		}
	}
	nodes[1].lease.release(ctx)
	if got := count(0, true); got != 1 {
		t.Errorf("after b released the lease: a got %d messages, want 1", got)
	}
}

// TestLeaseKept: a node renews its lease on every tick whatever the work
// it guards does, so another node never takes it while the holder lives;
// once the holder's ticks stop (it died), the other takes it on its own
// tick after the lease has expired.
func TestLeaseKept(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "r.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	clock := &fakeClock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	guards := make([]*leaseGuard, 2)
	ticks := make([]chan time.Time, 2)
	stops := make([]context.CancelFunc, 2)
	done := make([]chan struct{}, 2)
	for i, name := range []string{"a", "b"} {
		guards[i] = newLeaseGuard(s, leasePurge, name, slog.New(slog.DiscardHandler))
		guards[i].now = clock.now
		ticks[i], done[i] = make(chan time.Time), make(chan struct{})
		var kctx context.Context
		kctx, stops[i] = context.WithCancel(ctx)
		go func() { defer close(done[i]); guards[i].keep(kctx, ticks[i]) }()
	}
	defer func() {
		for i := range stops {
			stops[i]()
			<-done[i]
		}
	}()
	// tick delivers one tick to node i and waits until it was handled:
	// the unbuffered send returns once keep took it, and the next send
	// once it finished with it.
	tick := func(i int) {
		ticks[i] <- clock.now()
		ticks[i] <- clock.now()
	}
	tick(0) // a takes the lease
	for range 10 {
		clock.add(leaseTTL / 3)
		tick(0)
		tick(1)
		if guards[1].held(ctx) {
			t.Fatalf("b holds the lease while a renews it (at %v)", clock.now())
		}
	}
	// a dies: its ticks stop.
	clock.add(leaseTTL - time.Second)
	tick(1)
	if guards[1].held(ctx) {
		t.Fatal("b took the lease before it expired")
	}
	clock.add(time.Second)
	tick(1)
	if !guards[1].held(ctx) {
		t.Fatal("b did not take the expired lease")
	}
}
