package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/imcall/b2bua/registry"
)

// testLeases: a lease is held by one node until it expires or is released;
// another node takes it then, with a new epoch; the holder renews it.
func testLeases(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.open(t)
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	const ttl = 10 * time.Second
	steps := []struct {
		node      string
		at        time.Duration
		release   bool
		wantOwner string
		wantEpoch int64
	}{
		{node: "a", at: 0, wantOwner: "a", wantEpoch: 1},
		{node: "b", at: time.Second, wantOwner: "a", wantEpoch: 1},
		{node: "a", at: 5 * time.Second, wantOwner: "a", wantEpoch: 1}, // renewed until 15s
		{node: "b", at: 14 * time.Second, wantOwner: "a", wantEpoch: 1},
		{node: "b", at: 15 * time.Second, wantOwner: "b", wantEpoch: 2}, // a's expired: taken over
		{node: "a", at: 16 * time.Second, wantOwner: "b", wantEpoch: 2},
		{node: "b", release: true},
		{node: "a", at: 17 * time.Second, wantOwner: "a", wantEpoch: 3},
	}
	for i, st := range steps {
		if st.release {
			if err := s.ReleaseLease(ctx, "deliver", st.node); err != nil {
				t.Fatalf("step %d: release: %v", i, err)
			}
			continue
		}
		at := t0.Add(st.at)
		l, err := s.TakeLease(ctx, "deliver", st.node, at, ttl)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if l.Owner != st.wantOwner || l.Epoch != st.wantEpoch {
			t.Errorf("step %d: %s at %v: lease %+v, want owner %s epoch %d", i, st.node, st.at, l, st.wantOwner, st.wantEpoch)
		}
		if held := l.HeldBy(st.node, at); held != (st.wantOwner == st.node) {
			t.Errorf("step %d: HeldBy(%s) = %v", i, st.node, held)
		}
	}
	// Leases are independent of one another.
	if l, err := s.TakeLease(ctx, "purge", "b", t0.Add(17*time.Second), ttl); err != nil || l.Owner != "b" || l.Epoch != 1 {
		t.Errorf("second lease: %+v, %v", l, err)
	}
	// Releasing a lease one does not hold leaves it alone.
	if err := s.ReleaseLease(ctx, "purge", "a"); err != nil {
		t.Fatal(err)
	}
	if l, err := s.TakeLease(ctx, "purge", "a", t0.Add(18*time.Second), ttl); err != nil || l.Owner != "b" {
		t.Errorf("after a foreign release: %+v, %v", l, err)
	}
	if _, err := s.TakeLease(ctx, "", "a", t0, ttl); err == nil {
		t.Error("lease without a name taken")
	}
}

// leaseRace, run by testActivateRace on its two stores: of many takers at
// the same instant on two stores, exactly one holds the lease.
func leaseRace(t *testing.T, stores []Store) {
	ctx := context.Background()
	at := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	holders := map[string]bool{}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			node := fmt.Sprintf("n%d", i)
			l, err := stores[i%len(stores)].TakeLease(ctx, "race", node, at, time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			if l.HeldBy(node, at) {
				mu.Lock()
				holders[node] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(holders) != 1 {
		t.Errorf("lease holders after a race: %v, want exactly one", holders)
	}
}

// testActivateRace: two stores on one database (two nodes) activate the
// user's terminals against each other; every activation succeeds, and at
// every moment the database holds exactly one active terminal.
func testActivateRace(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.open(t)
	peer := h.Peer(t, s)
	raw := h.Raw(t, s)
	mustUser(t, s, "alice")
	var ids []int64
	for i := range 4 {
		ids = append(ids, mustTerminal(t, s, "alice", fmt.Sprintf("imsi:00101000000000%d", i), i == 0).ID)
	}
	const rounds = 60
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w, st := range []Store{s, peer, s, peer} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				if _, err := st.Activate(ctx, ids[(w+i)%len(ids)]); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	readers.Add(1)
	go func() {
		defer readers.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			n, err := raw.Int(ctx, `SELECT count(*) FROM terminals WHERE im_id = 'alice' AND active`)
			if err != nil {
				errs <- err
				return
			}
			if n != 1 {
				errs <- fmt.Errorf("reader saw %d active terminals", n)
				return
			}
			if _, err := peer.ActiveTerminal(ctx, "alice"); err != nil {
				errs <- fmt.Errorf("ActiveTerminal during the race: %w", err)
				return
			}
		}
	}()
	wg.Wait()
	close(stop)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if active := activeIDs(t, s, "alice"); len(active) != 1 {
		t.Fatalf("after the race: active terminals %v, want exactly one", active)
	}
	leaseRace(t, []Store{s, peer})
}

// testActiveSeenByPeer: a terminal activated through one store is the
// answer of another store on the same database (a second node), whose
// cache held the old answer, well within a second.
func testActiveSeenByPeer(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.open(t)
	peer := h.Peer(t, s)
	mustUser(t, s, "alice")
	t1 := mustTerminal(t, s, "alice", "imsi:001010000000001", true)
	t2 := mustTerminal(t, s, "alice", "imsi:001010000000002", false)
	if got, err := peer.ActiveTerminal(ctx, "alice"); err != nil || got.ID != t1.ID {
		t.Fatalf("peer before: %d, %v; want %d", got.ID, err, t1.ID)
	}
	if _, err := peer.ActiveTerminal(ctx, "bob"); err == nil {
		t.Fatal("unknown user found")
	}
	steps := []struct {
		name  string
		write func() error
		check func(registry.Terminal, error) bool
	}{
		{"activate", func() error { _, err := s.Activate(ctx, t2.ID); return err },
			func(got registry.Terminal, err error) bool { return err == nil && got.ID == t2.ID }},
		{"deactivate", func() error { _, err := s.Deactivate(ctx, t2.ID); return err },
			func(_ registry.Terminal, err error) bool { return isNoActive(err) }},
		{"remove user", func() error { return s.RemoveUser(ctx, "alice") },
			func(_ registry.Terminal, err error) bool { return isNotFound(err) }},
	}
	for _, st := range steps {
		if err := st.write(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		deadline := time.Now().Add(time.Second)
		for {
			got, err := peer.ActiveTerminal(ctx, "alice")
			if st.check(got, err) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: peer still answers %+v, %v after 1s", st.name, got, err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// A new user is seen too, though the peer cached "not found".
	mustUser(t, s, "bob")
	deadline := time.Now().Add(time.Second)
	for _, err := peer.ActiveTerminal(ctx, "bob"); !isNoActive(err); _, err = peer.ActiveTerminal(ctx, "bob") {
		if time.Now().After(deadline) {
			t.Fatalf("peer: new user bob: %v after 1s", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testHurryPending: a recipient's kept messages become due at once (the
// REGISTER of its terminal reached a node that does not deliver).
func testHurryPending(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.open(t)
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	later := t0.Add(time.Hour)
	for _, to := range []string{"alice", "alice", "bob"} {
		if _, err := s.AddPending(ctx, registry.PendingMessage{Recipient: to, ContentType: "text/plain", Body: []byte("hi"),
			Created: t0, Expires: t0.Add(24 * time.Hour), NextAttempt: later}); err != nil {
			t.Fatal(err)
		}
	}
	if due, err := s.DuePending(ctx, t0.Add(time.Minute), 10); err != nil || len(due) != 0 {
		t.Fatalf("due before: %d, %v", len(due), err)
	}
	if err := s.HurryPending(ctx, "alice", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	due, err := s.DuePending(ctx, t0.Add(time.Minute), 10)
	if err != nil || len(due) != 2 || due[0].Recipient != "alice" || due[1].Recipient != "alice" {
		t.Fatalf("due after hurrying alice: %+v, %v", due, err)
	}
	// A message already due earlier keeps its place.
	if err := s.HurryPending(ctx, "alice", t0.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if due, _ := s.DuePending(ctx, t0.Add(time.Minute), 10); len(due) != 2 {
		t.Errorf("hurrying again delayed messages: %d due", len(due))
	}
}

func isNoActive(err error) bool { return errors.Is(err, registry.ErrNoActiveTerminal) }
func isNotFound(err error) bool { return errors.Is(err, registry.ErrNotFound) }
