// Package ss7test loads the SS7 test vectors kept in testdata/ss7/vectors.txt
// so that every layer's tests check the same verified bytes.
package ss7test

import (
	"bufio"
	"encoding/hex"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Path is the vector file, found relative to this source file so that tests
// in any package can load it.
func Path() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "testdata", "ss7", "vectors.txt")
}

// Load returns every vector by name.
func Load(t testing.TB) map[string][]byte {
	t.Helper()
	f, err := os.Open(Path())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]byte{}
	var name string
	var hx strings.Builder
	flush := func() {
		if name == "" {
			return
		}
		b, err := hex.DecodeString(strings.Join(strings.Fields(hx.String()), ""))
		if err != nil {
			t.Fatalf("vector %s: %v", name, err)
		}
		out[name] = b
		name = ""
		hx.Reset()
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "":
			flush()
		case line[0] == ' ' || line[0] == '\t':
			hx.WriteString(" " + line)
		default:
			flush()
			n, rest, ok := strings.Cut(line, ":")
			if !ok {
				t.Fatalf("vectors: bad line %q", line)
			}
			name = strings.TrimSpace(n)
			hx.WriteString(rest)
		}
	}
	flush()
	return out
}

// Get returns one vector or fails the test.
func Get(t testing.TB, name string) []byte {
	t.Helper()
	b, ok := Load(t)[name]
	if !ok {
		t.Fatalf("no vector %q", name)
	}
	return b
}
