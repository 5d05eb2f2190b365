package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imcall/b2bua/registry"
)

func schemaVersion(t *testing.T, s *Store) int {
	t.Helper()
	var v int
	if err := s.r.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestMigrateEmptyFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "registry.db")
	s := openTest(t, path)
	if v := schemaVersion(t, s); v != len(migrations) {
		t.Errorf("user_version = %d, want %d", v, len(migrations))
	}
	var mode string
	if err := s.r.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	var fk int
	if err := s.w.QueryRow("PRAGMA foreign_keys").Scan(&fk); err != nil || fk != 1 {
		t.Errorf("foreign_keys = %d, %v; want 1", fk, err)
	}
	for _, table := range []string{"users", "terminals", "contacts", "bindings", "call_records", "trunks", "trunk_cidrs", "dids"} {
		var n int
		if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?`, table).Scan(&n); err != nil || n != 1 {
			t.Errorf("table %s: %d, %v", table, n, err)
		}
	}
	// Reopening a current file changes nothing.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openTest(t, path)
	if v := schemaVersion(t, s2); v != len(migrations) {
		t.Errorf("reopened user_version = %d", v)
	}
}

// TestMigrateFromVersion1 builds a file as the first release left it, with
// data, and opens it with the current code.
func TestMigrateFromVersion1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "registry.db")
	old, err := openWith(ctx, Config{Path: path}, migrations[:1])
	if err != nil {
		t.Fatal(err)
	}
	if v := schemaVersion(t, old); v != 1 {
		t.Fatalf("old file at version %d, want 1", v)
	}
	mustUser(t, old, "alice")
	t1 := mustTerminal(t, old, "alice", "imsi:001010000000001", true)
	c, err := old.AddContact(ctx, registry.Contact{Owner: "alice", IMID: "bob", Domain: "im.example"})
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	s := openTest(t, path)
	if v := schemaVersion(t, s); v != len(migrations) {
		t.Errorf("user_version = %d, want %d", v, len(migrations))
	}
	if got, err := s.ActiveTerminal(ctx, "alice"); err != nil || got != t1 {
		t.Errorf("ActiveTerminal after migration = %+v, %v; want %+v", got, err, t1)
	}
	if cs, err := s.Contacts(ctx, "alice"); err != nil || len(cs) != 1 || cs[0] != c {
		t.Errorf("Contacts after migration = %+v, %v", cs, err)
	}
	// Version 2's tables work.
	if err := s.PutBinding(ctx, registry.Binding{IMID: "alice", Contact: "sip:alice@192.0.2.1", Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Errorf("PutBinding after migration: %v", err)
	}
	if _, err := s.StartCall(ctx, registry.CallRecord{CallID: "x"}); err != nil {
		t.Errorf("StartCall after migration: %v", err)
	}
}

func TestMigrateNewerFileRefused(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "registry.db")
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = Open(ctx, Config{Path: path})
	if err == nil || !strings.Contains(err.Error(), "schema version 99 is newer") {
		t.Fatalf("Open(newer) = %v, want a schema version error", err)
	}
}

func TestMigrateFailedStepRollsBack(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "registry.db")
	broken := append(append([]migration{}, migrations...), migration{name: "broken",
		sql: `CREATE TABLE half (x INTEGER); INSERT INTO nowhere VALUES (1);`})
	if _, err := openWith(ctx, Config{Path: path}, broken); err == nil || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("open with a broken migration = %v, want its error", err)
	}
	s := openTest(t, path)
	if v := schemaVersion(t, s); v != len(migrations) {
		t.Errorf("user_version = %d, want %d: the good steps commit, the broken one does not", v, len(migrations))
	}
	var n int
	if err := s.r.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name = 'half'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("table of the failed step exists: %d, %v", n, err)
	}
}

// TestOpenConcurrently: the daemon and the CLI may open a new file at the
// same moment; both must end with one schema.
func TestOpenConcurrently(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "registry.db")
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(ctx, Config{Path: path})
			if err == nil {
				_, err = s.AddUser(ctx, registry.User{IMID: "u" + string(rune('a'+i))})
				err = errors.Join(err, s.Close())
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	s := openTest(t, path)
	if us, err := s.Users(ctx); err != nil || len(us) != len(errs) {
		t.Errorf("Users = %d, %v; want %d", len(us), err, len(errs))
	}
}

// TestMigrateBindingsToInstanceKey: the bindings of a version 3 file keep
// working after the table is rebuilt with its instance key, and two old
// rows of one instance become one login.
func TestMigrateBindingsToInstanceKey(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "registry.db")
	old, err := openWith(ctx, Config{Path: path}, migrations[:3])
	if err != nil {
		t.Fatal(err)
	}
	mustUser(t, old, "alice")
	t0 := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	for i, b := range []registry.Binding{
		{Contact: "sip:alice@192.0.2.1:5060", Instance: "urn:uuid:1"},
		{Contact: "sip:alice@192.0.2.1:6000", Instance: "urn:uuid:1"}, // the same client, newer
		{Contact: "sip:alice@192.0.2.2:5060"},
	} {
		// Version 3's own statement: today's PutBinding knows only the new table.
		if _, err := old.w.ExecContext(ctx, `INSERT INTO bindings (im_id, contact, instance, expires, updated) VALUES ('alice', ?, ?, ?, ?)`,
			b.Contact, b.Instance, nanos(t0.Add(time.Hour)), nanos(t0.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	s := openTest(t, path)
	bs, err := s.Bindings(ctx, "alice", t0)
	if err != nil || len(bs) != 2 || bs[0].Contact != "sip:alice@192.0.2.2:5060" || bs[1].Contact != "sip:alice@192.0.2.1:6000" {
		t.Fatalf("bindings after migration = %+v, %v", bs, err)
	}
	if err := s.RemoveBinding(ctx, "alice", "urn:uuid:1"); err != nil {
		t.Fatal(err)
	}
	if bs, _ := s.Bindings(ctx, "alice", t0); len(bs) != 1 {
		t.Errorf("after removing the instance: %+v", bs)
	}
}
