package sqlite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// noVerify makes the cache rely on the WAL-index header alone, so that a
// test shows the header catches every commit without the once-a-second
// data_version cross-check covering for it.
func noVerify(t *testing.T, s *Store) {
	t.Helper()
	s.cache.mu.Lock()
	defer s.cache.mu.Unlock()
	if s.cache.shm == nil && runtime.GOOS != "windows" {
		t.Fatal("cache is not reading the WAL-index header")
	}
	s.cache.verify = time.Hour
}

func cacheChanged(t *testing.T, s *Store) bool {
	t.Helper()
	s.cache.mu.Lock()
	defer s.cache.mu.Unlock()
	moved, err := s.cache.changed()
	if err != nil {
		t.Fatal(err)
	}
	return moved
}

// TestCacheDetectsEveryCommit: each commit by another handle, including
// across WAL checkpoints that restart the log, changes the header; reads
// and idle time do not.
func TestCacheDetectsEveryCommit(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "registry.db")
	s := openTest(t, path)
	noVerify(t, s)
	other := openTest(t, path)
	mustUser(t, other, "alice")
	t1 := mustTerminal(t, other, "alice", "imsi:001010000000001", true)
	t2 := mustTerminal(t, other, "alice", "imsi:001010000000002", false)
	cacheChanged(t, s)

	for i := range 300 {
		if _, err := other.Activate(ctx, []int64{t1.ID, t2.ID}[i%2]); err != nil {
			t.Fatal(err)
		}
		if !cacheChanged(t, s) {
			t.Fatalf("commit %d not detected", i)
		}
		if _, err := other.Terminals(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		if cacheChanged(t, s) {
			t.Fatalf("read %d reported as a change", i)
		}
		switch i % 50 {
		case 10:
			if _, err := other.w.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
				t.Fatal(err)
			}
		case 30:
			if _, err := other.w.ExecContext(ctx, "PRAGMA wal_checkpoint(RESTART)"); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestCacheFallsBackWhenHeaderLies points the cache at a header that never
// changes; the data_version cross-check must notice, invalidate, and
// switch to data_version for good.
func TestCacheFallsBackWhenHeaderLies(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no WAL-index mapping on this platform")
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "registry.db")
	s := openTest(t, path)
	other := openTest(t, path)
	mustUser(t, s, "alice")
	t1 := mustTerminal(t, s, "alice", "imsi:001010000000001", true)
	t2 := mustTerminal(t, s, "alice", "imsi:001010000000002", false)

	frozen := filepath.Join(t.TempDir(), "frozen")
	if err := os.WriteFile(frozen+"-shm", make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	s.cache.mu.Lock()
	s.cache.shm.close()
	var err error
	s.cache.shm, err = openSHMHeader(frozen)
	if err != nil {
		t.Fatal(err)
	}
	s.cache.shm.read(&s.cache.hdr)
	s.cache.verify = 0
	s.cache.mu.Unlock()

	if got, _ := s.ActiveTerminal(ctx, "alice"); got.ID != t1.ID {
		t.Fatalf("ActiveTerminal = %d, want %d", got.ID, t1.ID)
	}
	if _, err := other.Activate(ctx, t2.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ActiveTerminal(ctx, "alice"); got.ID != t2.ID {
		t.Fatalf("ActiveTerminal after another handle's commit = %d, want %d", got.ID, t2.ID)
	}
	if s.cache.shm != nil {
		t.Error("cache still trusts the header")
	}
	if _, err := other.Activate(ctx, t1.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ActiveTerminal(ctx, "alice"); got.ID != t1.ID {
		t.Fatalf("ActiveTerminal in fallback mode = %d, want %d", got.ID, t1.ID)
	}
}

// TestCacheBounded: lookups of many unknown IM IDs do not grow the cache
// without limit.
func TestCacheBounded(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	for i := range maxCacheEntries + 10 {
		s.ActiveTerminal(ctx, fmt.Sprintf("nobody%d", i)) //nolint:errcheck // ErrNotFound expected
	}
	if n := len(s.cache.entries); n > maxCacheEntries {
		t.Errorf("cache holds %d entries, limit %d", n, maxCacheEntries)
	}
}
