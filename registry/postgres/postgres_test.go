package postgres

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/imcall/b2bua/internal/pgtest"
	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/registry/storetest"
)

// pg is the server of this test binary, started on first use.
var pg pgtest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	if err := pg.Close(); err != nil {
		os.Stderr.WriteString("stop PostgreSQL: " + err.Error() + "\n")
	}
	os.Exit(code)
}

func openTest(t *testing.T, cfg Config) *Store {
	t.Helper()
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// dsnOf remembers each test store's DSN, for Peer and Raw.
type dsnOf struct {
	mu sync.Mutex
	m  map[*Store]string
}

func (d *dsnOf) open(t *testing.T, dsn string) *Store {
	s := openTest(t, Config{DSN: dsn})
	d.mu.Lock()
	d.m[s] = dsn
	d.mu.Unlock()
	return s
}

func (d *dsnOf) get(s storetest.Store) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.m[s.(*Store)]
}

// TestConformance runs the stores' conformance suite on PostgreSQL.
func TestConformance(t *testing.T) {
	d := &dsnOf{m: map[*Store]string{}}
	storetest.Run(t, storetest.Harness{
		Open: func(t *testing.T) storetest.Store { return d.open(t, pg.DB(t)) },
		Raw: func(t *testing.T, s storetest.Store) storetest.RawDB {
			conn, err := pgx.Connect(context.Background(), d.get(s))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close(context.Background()) })
			return rawDB{mu: &sync.Mutex{}, conn: conn}
		},
		Peer: func(t *testing.T, s storetest.Store) storetest.Store { return d.open(t, d.get(s)) },
	})
}

// rawDB is a connection of its own beside the store's pool; its mutex
// lets the suite's goroutines share it.
type rawDB struct {
	mu   *sync.Mutex
	conn *pgx.Conn
}

// placeholders turns the suite's ? into $1, $2, ...
func placeholders(q string) string {
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (r rawDB) Exec(ctx context.Context, q string, args ...any) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, err := r.conn.Exec(ctx, placeholders(q), args...)
	return err
}

func (r rawDB) Int(ctx context.Context, q string, args ...any) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n int
	err := r.conn.QueryRow(ctx, placeholders(q), args...).Scan(&n)
	return n, err
}

func (r rawDB) IsUnique(err error) bool { return isUnique(err) }

// TestStalenessBound: with the notices stopped (the listener's session
// killed by the server, and no reconnect yet), a lookup does not use the
// cache; with them flowing but a change made where no notice is sent, an
// entry is used for at most MaxStale on the store's clock.
func TestStalenessBound(t *testing.T) {
	ctx := context.Background()
	dsn := pg.DB(t)
	var mu sync.Mutex
	clock := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	s := openTest(t, Config{DSN: dsn, MaxStale: 2 * time.Second, Now: now})
	u, _ := registry.ParseMobileID("imsi:001010000000001")
	if _, err := s.AddUser(ctx, registry.User{IMID: "alice"}); err != nil {
		t.Fatal(err)
	}
	t1, err := s.AddTerminal(ctx, registry.NewTerminal{IMID: "alice", MobileID: u, Active: true})
	if err != nil {
		t.Fatal(err)
	}
	waitListening(t, s)
	if got, err := s.ActiveTerminal(ctx, "alice"); err != nil || got.ID != t1.ID {
		t.Fatalf("ActiveTerminal = %v, %v", got, err)
	}
	// A change without a notice: the trigger disabled for one statement.
	raw, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close(ctx)
	if _, err := raw.Exec(ctx, `BEGIN; SET LOCAL session_replication_role = replica;
		UPDATE terminals SET active = false WHERE id = `+strconv.FormatInt(t1.ID, 10)+`; COMMIT`); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ActiveTerminal(ctx, "alice"); err != nil || got.ID != t1.ID {
		t.Fatalf("within MaxStale: %v, %v; want the cached answer", got, err)
	}
	advance(2 * time.Second)
	if _, err := s.ActiveTerminal(ctx, "alice"); !errors.Is(err, registry.ErrNoActiveTerminal) {
		t.Fatalf("after MaxStale: err = %v, want ErrNoActiveTerminal", err)
	}
}

func waitListening(t *testing.T, s *Store) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.cache.mu.Lock()
		on := s.cache.listening
		s.cache.mu.Unlock()
		if on {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("cache listener not connected after 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestConnectionLoss: with every session of the store killed by the
// server (as a failover or a restart does), calls still get answers: the
// next lookup either succeeds on a new connection or fails fast as
// ErrUnavailable, and the cache stops serving until its listener is back.
// With the server unreachable (a DSN to a socket nobody serves), Open and
// every call fail within the connect timeout as ErrUnavailable.
func TestConnectionLoss(t *testing.T) {
	ctx := context.Background()
	dsn := pg.DB(t)
	s := openTest(t, Config{DSN: dsn})
	if _, err := s.AddUser(ctx, registry.User{IMID: "alice"}); err != nil {
		t.Fatal(err)
	}
	waitListening(t, s)
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE application_name = 'b2bua' AND pid <> pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
	recovered := false
	deadline := time.Now().Add(10 * time.Second)
	for !recovered && time.Now().Before(deadline) {
		start := time.Now()
		_, err := s.ActiveTerminal(ctx, "alice")
		if took := time.Since(start); took > 3*time.Second {
			t.Fatalf("lookup after the sessions were killed took %v", took)
		}
		switch {
		case errors.Is(err, registry.ErrNoActiveTerminal):
			recovered = true
		case errors.Is(err, registry.ErrUnavailable):
		default:
			t.Fatalf("lookup after the sessions were killed: %v, want ErrUnavailable or the answer", err)
		}
	}
	if !recovered {
		t.Fatal("store did not recover in 10s")
	}
	waitListening(t, s)

	gone := pg.Server(t).DSN("t0") + "&host=/nonexistent"
	start := time.Now()
	_, err = Open(ctx, Config{DSN: gone, ConnectTimeout: 500 * time.Millisecond})
	if !errors.Is(err, registry.ErrUnavailable) || time.Since(start) > 3*time.Second {
		t.Errorf("Open of an unreachable server: %v after %v, want ErrUnavailable at once", err, time.Since(start))
	}
}

// TestMigrateConcurrently: nodes starting together against a new database
// apply each migration once and agree on the version.
func TestMigrateConcurrently(t *testing.T) {
	dsn := pg.DB(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(context.Background(), Config{DSN: dsn})
			if err != nil {
				errs <- err
				return
			}
			s.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var v, rows int
	if err := conn.QueryRow(context.Background(), `SELECT max(version), count(*) FROM schema_version`).Scan(&v, &rows); err != nil || v != len(migrations) || rows != 1 {
		t.Errorf("schema_version: %d in %d rows, %v; want %d in 1", v, rows, err, len(migrations))
	}
	// A database newer than the program is refused.
	if _, err := conn.Exec(context.Background(), `UPDATE schema_version SET version = version + 1`); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), Config{DSN: dsn}); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("Open of a newer schema: %v", err)
	}
}
