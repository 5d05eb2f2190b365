package main

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/imcall/b2bua/registry/sqlite"
)

// BenchmarkActiveTerminal is the cached lookup on a database of 1,000 users
// (go test -bench . ./bench/registry); main.go runs the larger measurement
// that bench/registry.sh reports.
func BenchmarkActiveTerminal(b *testing.B) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(b.TempDir(), "registry.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ids, _, err := populate(ctx, s, 1000)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := s.ActiveTerminal(ctx, ids[i%len(ids)]); err != nil {
			b.Fatal(err)
		}
	}
}
