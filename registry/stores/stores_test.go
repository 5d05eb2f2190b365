package stores

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imcall/b2bua/internal/pgtest"
	"github.com/imcall/b2bua/registry"
)

// TestOpen: every spec form reaches the file it names, and the store it
// gives is the full backend, batch call records included.
func TestOpen(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, tc := range []struct {
		name, spec, file string
	}{
		{"scheme", "sqlite:" + filepath.Join(dir, "a.db"), "a.db"},
		{"scheme upper case", "SQLite:" + filepath.Join(dir, "b.db"), "b.db"},
		{"relative after scheme", "sqlite:c.db", "c.db"},
		{"plain path", filepath.Join(dir, "d.db"), "d.db"},
		{"plain relative path", "./e.db", "e.db"},
		{"plain path with a colon", "./f:g.db", "f:g.db"},
		{"colon in a path after scheme", "sqlite:h:i.db", "h:i.db"},
		{"surrounding space", "  " + filepath.Join(dir, "j.db") + "\n", "j.db"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s, err := Open(ctx, tc.spec, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, err := os.Stat(filepath.Join(dir, tc.file)); err != nil {
				t.Errorf("%s not created: %v", tc.file, err)
			}
			if p, ok := s.(interface{ Path() string }); !ok || p.Path() != filepath.Join(dir, tc.file) {
				t.Errorf("Path = %v, want %s", p, filepath.Join(dir, tc.file))
			}
			// The SIP server writes call records in batches when the store
			// offers it; opening by spec must not hide that.
			if _, ok := s.(interface {
				WriteCalls(context.Context, []registry.CallRecord) ([]error, error)
			}); !ok {
				t.Error("store does not offer WriteCalls")
			}
			if _, err := s.AddUser(ctx, registry.User{IMID: "alice"}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.StartCall(ctx, registry.CallRecord{CallID: "c1", Callee: "alice", StartedAt: time.Unix(1, 0)}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestOpenSameFile: a plain path and its sqlite: spec are one registry.
func TestOpenSameFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "b2bua.db")
	w, err := Open(ctx, "sqlite:"+path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.AddUser(ctx, registry.User{IMID: "bob"}); err != nil {
		t.Fatal(err)
	}
	r, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if u, err := r.User(ctx, "bob"); err != nil || u.IMID != "bob" {
		t.Errorf("User(bob) = %+v, %v", u, err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, spec string
		want       []string // all in the error
	}{
		{"unknown scheme", "mongodb://db.example/b2bua", []string{`"mongodb://db.example/b2bua"`, "unknown store", "postgres:, postgresql:, sqlite:"}},
		{"postgres without a URI", "postgres:b2bua", []string{"must be a connection URI"}},
		{"postgres URI that does not parse", "postgres://b2bua@db.example:port/b2bua", []string{"not a valid connection URI"}},
		{"unknown opaque scheme", "mysql:b2bua", []string{"unknown store", "sqlite:"}},
		{"empty", "", []string{"no store given", "sqlite:"}},
		{"blank", "  ", []string{"no store given"}},
		{"sqlite without a path", "sqlite:", []string{"must name a file"}},
		{"missing directory", filepath.Join(dir, "nope", "b2bua.db"), []string{filepath.Join(dir, "nope") + " does not exist"}},
		{"missing directory after scheme", "sqlite:" + filepath.Join(dir, "nope", "b2bua.db"), []string{filepath.Join(dir, "nope") + " does not exist"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(context.Background(), tc.spec, Options{})
			if err == nil {
				s.Close()
				t.Fatalf("%q opened", tc.spec)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %q, want it to contain %q", err, w)
				}
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "nope")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing directory was created: %v", err)
	}
}

func TestSchemes(t *testing.T) {
	if got := strings.Join(Schemes(), ","); got != "postgres,postgresql,sqlite" {
		t.Errorf("Schemes = %s, want postgres,postgresql,sqlite", got)
	}
}

// pg is the server of this test binary, started on first use.
var pg pgtest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	if err := pg.Close(); err != nil {
		os.Stderr.WriteString("stop PostgreSQL: " + err.Error() + "\n")
	}
	os.Exit(code)
}

// TestOpenPostgres: both URI schemes reach the cluster store, with batch
// call records and leases, and two stores opened by one URI share it.
func TestOpenPostgres(t *testing.T) {
	ctx := context.Background()
	dsn := pg.DB(t)
	for i, spec := range []string{dsn, "postgresql" + strings.TrimPrefix(dsn, "postgres")} {
		s, err := Open(ctx, spec, Options{})
		if err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		defer s.Close()
		if _, ok := s.(interface {
			WriteCalls(context.Context, []registry.CallRecord) ([]error, error)
		}); !ok {
			t.Error("store does not offer WriteCalls")
		}
		if i == 0 {
			if _, err := s.AddUser(ctx, registry.User{IMID: "alice"}); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if u, err := s.User(ctx, "alice"); err != nil || u.IMID != "alice" {
			t.Errorf("second store: User(alice) = %+v, %v", u, err)
		}
	}
}
