package postgres

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/imcall/b2bua/registry"
)

// queryCounter counts the round trips a store makes: each query (BEGIN
// and COMMIT included) and each pipeline of queries.
type queryCounter struct{ n atomic.Int64 }

func (q *queryCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	q.n.Add(1)
	return ctx
}

func (q *queryCounter) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (q *queryCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

func (q *queryCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	q.n.Add(1)
	return ctx
}

func (q *queryCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// BenchmarkCallPath is the registry work of one call to a legacy terminal
// as a node does it: the caller's digest credentials (User), the callee's
// active terminal (cached, dropped by change notices), the call record
// started and ended, and the dialog snapshot kept and dropped. A node
// batches records and snapshots over the calls of a moment; here each
// call is its own batch, the worst case. It reports the round trips per
// call.
func BenchmarkCallPath(b *testing.B) {
	for _, tc := range []struct {
		name   string
		cached bool
	}{{"active terminal cached", true}, {"active terminal read", false}} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			qc := &queryCounter{}
			cfg := Config{DSN: pg.DB(b), Tracer: qc}
			if !tc.cached {
				cfg.MaxStale = time.Nanosecond
			}
			s, err := Open(ctx, cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			for _, u := range []string{"alice", "bob"} {
				if _, err := s.AddUser(ctx, registry.User{IMID: u, Creds: registry.NewCredentials(u, "im.example", "pw")}); err != nil {
					b.Fatal(err)
				}
			}
			m, _ := registry.ParseMobileID("imsi:001010000000001")
			if _, err := s.AddTerminal(ctx, registry.NewTerminal{IMID: "bob", MobileID: m, Active: true}); err != nil {
				b.Fatal(err)
			}
			for !s.cache.isListening() {
				time.Sleep(time.Millisecond)
			}
			b.ResetTimer()
			start := qc.n.Load()
			for i := range b.N {
				if _, err := s.User(ctx, "alice"); err != nil {
					b.Fatal(err)
				}
				if _, err := s.ActiveTerminal(ctx, "bob"); err != nil {
					b.Fatal(err)
				}
				rec := []registry.CallRecord{{CallID: fmt.Sprintf("c%d", i), Caller: "sip:alice@im.example", Callee: "bob"}}
				if _, err := s.WriteCalls(ctx, rec); err != nil {
					b.Fatal(err)
				}
				snap := registry.DialogSnapshot{Node: "a", Key: rec[0].CallID, CallID: rec[0].CallID, StartedAt: time.Now()}
				if err := s.PutDialogs(ctx, []registry.DialogSnapshot{snap}, nil); err != nil {
					b.Fatal(err)
				}
				rec[0].EndedAt, rec[0].EndCause = time.Now(), "caller BYE"
				if _, err := s.WriteCalls(ctx, rec); err != nil {
					b.Fatal(err)
				}
				if err := s.PutDialogs(ctx, nil, []registry.DialogKey{{Node: "a", Key: snap.Key}}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(qc.n.Load()-start)/float64(b.N), "round-trips/call")
		})
	}
}

// BenchmarkLookups is the latency of each read a call makes.
func BenchmarkLookups(b *testing.B) {
	ctx := context.Background()
	s, err := Open(ctx, Config{DSN: pg.DB(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if _, err := s.AddUser(ctx, registry.User{IMID: "bob"}); err != nil {
		b.Fatal(err)
	}
	m, _ := registry.ParseMobileID("imsi:001010000000001")
	if _, err := s.AddTerminal(ctx, registry.NewTerminal{IMID: "bob", MobileID: m, Active: true}); err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		f    func() error
	}{
		{"User", func() error { _, err := s.User(ctx, "bob"); return err }},
		{"ActiveTerminal uncached", func() error { _, err := s.queryActive(ctx, "bob"); return err }},
		{"Bindings", func() error { _, err := s.Bindings(ctx, "bob", time.Now()); return err }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for range b.N {
				if err := tc.f(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
