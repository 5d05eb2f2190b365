package sqlite

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imcall/b2bua/registry"
)

func openTest(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), Config{Path: path})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func newStore(t *testing.T) *Store {
	t.Helper()
	return openTest(t, filepath.Join(t.TempDir(), "registry.db"))
}

func mustUser(t *testing.T, s registry.Store, imID string) registry.User {
	t.Helper()
	u, err := s.AddUser(context.Background(), registry.User{IMID: imID, Display: "User " + imID, Creds: registry.NewCredentials(imID, "im.example", "secret")})
	if err != nil {
		t.Fatalf("AddUser(%s): %v", imID, err)
	}
	return u
}

func mustTerminal(t *testing.T, s registry.Store, imID, mobile string, active bool) registry.Terminal {
	t.Helper()
	m, err := registry.ParseMobileID(mobile)
	if err != nil {
		t.Fatal(err)
	}
	term, err := s.AddTerminal(context.Background(), registry.NewTerminal{IMID: imID, MobileID: m, Active: active})
	if err != nil {
		t.Fatalf("AddTerminal(%s, %s): %v", imID, mobile, err)
	}
	return term
}

// TestFileModeOwnerOnly: the database holds digest hashes, so a new file and
// its WAL are readable by their owner only, whatever the umask.
func TestFileModeOwnerOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "b2bua.db")
	s := openTest(t, path)
	if _, err := s.AddUser(context.Background(), registry.User{IMID: "alice", Creds: registry.NewCredentials("alice", "r", "pw")}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m&0o077 != 0 {
			t.Errorf("%s has mode %v, want no group or other access", filepath.Base(p), m)
		}
	}
}

// TestOpenMissingDirectory: a path in a directory that does not exist is an
// error naming the directory, and nothing is created, so that a mistyped
// --db never becomes a new, empty registry.
func TestOpenMissingDirectory(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "plain")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, wantDir, want string
	}{
		{"missing", filepath.Join(dir, "nope", "b2bua.db"), filepath.Join(dir, "nope"), "does not exist"},
		{"missing parent too", filepath.Join(dir, "a", "b", "b2bua.db"), filepath.Join(dir, "a", "b"), "does not exist"},
		{"not a directory", filepath.Join(file, "b2bua.db"), file, "is not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(context.Background(), Config{Path: tc.path})
			if err == nil {
				s.Close()
				t.Fatal("opened")
			}
			if msg := err.Error(); !strings.Contains(msg, tc.wantDir+" "+tc.want) {
				t.Errorf("err = %q, want it to say %q %s", msg, tc.wantDir, tc.want)
			}
			if _, err := os.Stat(tc.wantDir); tc.want == "does not exist" && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s: stat = %v, want it still missing", tc.wantDir, err)
			}
		})
	}
}

func activeIDs(t *testing.T, s registry.Store, imID string) []int64 {
	t.Helper()
	ts, err := s.Terminals(context.Background(), imID)
	if err != nil {
		t.Fatalf("Terminals(%s): %v", imID, err)
	}
	var ids []int64
	for _, term := range ts {
		if term.Active {
			ids = append(ids, term.ID)
		}
	}
	return ids
}
