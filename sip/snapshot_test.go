package sip

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/imcall/b2bua/registry"
)

// fakeDialogs records what the snapshotter writes; block, when set, holds
// each write until it is closed.
type fakeDialogs struct {
	mu     sync.Mutex
	rows   map[string]bool
	writes int
	block  chan struct{}
	began  chan struct{}
}

func (f *fakeDialogs) PutDialogs(_ context.Context, put []registry.DialogSnapshot, gone []registry.DialogKey) error {
	if f.began != nil {
		f.began <- struct{}{}
	}
	if f.block != nil {
		<-f.block
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes++
	for _, d := range put {
		f.rows[d.Key] = true
	}
	for _, k := range gone {
		delete(f.rows, k.Key)
	}
	return nil
}

func (f *fakeDialogs) Dialogs(context.Context, string) ([]registry.DialogSnapshot, error) {
	return nil, nil
}

func (f *fakeDialogs) EndLeftover(context.Context, registry.DialogSnapshot, time.Time, string) error {
	return nil
}

func (f *fakeDialogs) state() (rows, writes int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.rows), f.writes
}

func TestSnapshotterCoalesces(t *testing.T) {
	snap := registry.DialogSnapshot{Key: "k", CallID: "c"}
	tests := []struct {
		name      string
		blocking  bool
		steps     func(w *snapshotter, f *fakeDialogs)
		rows, min int // rows left, writes at least
		maxWrites int
	}{
		{"a call that ends before its turn costs no write", false, func(w *snapshotter, f *fakeDialogs) {
			w.put(snap)
			w.drop("k")
		}, 0, 0, 0},
		{"written, then deleted", false, func(w *snapshotter, f *fakeDialogs) {
			w.put(snap)
			waitWritten(t, w)
			w.drop("k")
		}, 0, 2, 2},
		{"deleted while its put is being written", true, func(w *snapshotter, f *fakeDialogs) {
			w.put(snap)
			<-f.began // the put is with the store
			w.drop("k")
			close(f.block)
		}, 0, 2, 2},
		{"a live call stays", false, func(w *snapshotter, f *fakeDialogs) {
			w.put(snap)
			w.put(snap)
		}, 1, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeDialogs{rows: map[string]bool{}}
			if tt.blocking {
				f.block, f.began = make(chan struct{}), make(chan struct{}, 4)
			}
			w := newSnapshotter(f, "n", slog.New(slog.DiscardHandler))
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); w.run(ctx) }()
			tt.steps(w, f)
			waitWritten(t, w)
			cancel()
			<-done
			rows, writes := f.state()
			if rows != tt.rows || writes < tt.min || writes > tt.maxWrites {
				t.Errorf("rows %d writes %d; want rows %d, writes %d..%d", rows, writes, tt.rows, tt.min, tt.maxWrites)
			}
		})
	}
}

func waitWritten(t *testing.T, w *snapshotter) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.flush(ctx); err != nil {
		t.Fatal(err)
	}
}
