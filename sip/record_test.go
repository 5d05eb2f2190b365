package sip

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/registry/sqlite"
)

// TestRecorderStores checks that a call's snapshots end up as one record
// holding the latest state, whether the store writes in batches or one
// record at a time.
func TestRecorderStores(t *testing.T) {
	tests := []struct {
		name string
		wrap func(*sqlite.Store) CallRecorder
	}{
		{"batch", func(s *sqlite.Store) CallRecorder { return s }},
		{"one by one", func(s *sqlite.Store) CallRecorder { return struct{ CallRecorder }{s} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			store, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "b2bua.db")})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { store.Close() })
			r := newRecorder(tt.wrap(store), slog.New(slog.DiscardHandler))
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { defer close(done); r.run(runCtx) }()
			t.Cleanup(func() { stop(); <-done })

			t0 := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
			var a, b callRecord
			snapA := registry.CallRecord{CallID: "a@h", Caller: "sip:carol@im.test", Callee: "alice", StartedAt: t0}
			snapB := registry.CallRecord{CallID: "b@h", Caller: "sip:carol@im.test", Callee: "bob", StartedAt: t0}
			r.save(&a, snapA)
			r.save(&b, snapB)
			if err := r.flush(ctx); err != nil {
				t.Fatal(err)
			}
			snapA.AnsweredAt, snapA.EndedAt, snapA.EndCause = t0.Add(time.Second), t0.Add(time.Minute), "caller BYE"
			r.save(&a, snapA)
			snapB.EndCause = "486 busy"
			r.save(&b, snapB)
			if err := r.flush(ctx); err != nil {
				t.Fatal(err)
			}
			recs, err := store.Calls(ctx, 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 2 {
				t.Fatalf("%d records, want 2: %+v", len(recs), recs)
			}
			got := map[string]registry.CallRecord{recs[0].CallID: recs[0], recs[1].CallID: recs[1]}
			snapA.ID, snapB.ID = a.id, b.id
			if got["a@h"] != snapA || got["b@h"] != snapB {
				t.Errorf("records = %+v, want %+v and %+v", got, snapA, snapB)
			}
		})
	}
}
