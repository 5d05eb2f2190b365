package mediastore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imcall/b2bua/registry/sqlite"
)

// clock is a settable time for expiry tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	store *Store
	clk   *clock
	srv   *httptest.Server
	logs  *bytes.Buffer
	dir   string
}

func newFixture(t *testing.T, mod func(*Config)) *fixture {
	t.Helper()
	db, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "r.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f := &fixture{clk: &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}, logs: &bytes.Buffer{}, dir: filepath.Join(t.TempDir(), "media")}
	var mu sync.Mutex
	cfg := Config{DB: db, TTL: time.Hour, Tombstone: 24 * time.Hour, Now: f.clk.now,
		Logger: slog.New(slog.NewTextHandler(lockedWriter{&mu, f.logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if mod != nil {
		mod(&cfg)
	}
	if cfg.Dir != "" {
		cfg.Dir = f.dir
	}
	if f.store, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.store.Close() })
	mux := http.NewServeMux()
	mux.Handle(PathPrefix, f.store)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (f *fixture) put(t *testing.T, ctype string, data []byte) string {
	t.Helper()
	st, err := f.store.Put(context.Background(), Item{Owner: "bob", Sender: "alice", ContentType: ctype, Data: data})
	if err != nil {
		t.Fatal(err)
	}
	return st.Token
}

func (f *fixture) get(t *testing.T, method, path string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, b
}

func TestServe(t *testing.T) {
	f := newFixture(t, nil)
	png := append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{7}, 3000)...)
	img := f.put(t, "image/png", png)
	svg := f.put(t, "image/svg+xml", []byte(`<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`))
	clip := f.put(t, "audio/amr", []byte("#!AMR\nabcdefghij"))
	sum := sha256.Sum256(png)
	etag := `"` + hex.EncodeToString(sum[:]) + `"`

	tests := []struct {
		name        string
		method      string
		path        string
		hdr         map[string]string
		status      int
		body        []byte
		ctype       string
		disposition string
		etag        string
	}{
		{name: "image", method: "GET", path: "/m/" + img, status: 200, body: png, ctype: "image/png", disposition: "inline", etag: etag},
		{name: "head", method: "HEAD", path: "/m/" + img, status: 200, body: []byte{}, ctype: "image/png", etag: etag},
		{name: "if-none-match", method: "GET", path: "/m/" + img, hdr: map[string]string{"If-None-Match": etag}, status: 304, body: []byte{}, etag: etag},
		{name: "other etag", method: "GET", path: "/m/" + img, hdr: map[string]string{"If-None-Match": `"abc"`}, status: 200, body: png},
		{name: "range", method: "GET", path: "/m/" + img, hdr: map[string]string{"Range": "bytes=0-7"}, status: 206, body: png[:8]},
		{name: "svg is a download", method: "GET", path: "/m/" + svg, status: 200, ctype: "image/svg+xml", disposition: `attachment; filename=media.svg`},
		{name: "audio is a download", method: "GET", path: "/m/" + clip, status: 200, ctype: "audio/amr", disposition: `attachment; filename=media.amr`},
		{name: "unknown token", method: "GET", path: "/m/" + strings.Repeat("A", len(img)), status: 404},
		{name: "malformed token", method: "GET", path: "/m/..%2f..%2fetc", status: 404},
		{name: "no listing", method: "GET", path: "/m/", status: 404},
		{name: "nested path", method: "GET", path: "/m/" + img + "/x", status: 404},
		{name: "post", method: "POST", path: "/m/" + img, status: 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, body := f.get(t, tt.method, tt.path, tt.hdr)
			if res.StatusCode != tt.status {
				t.Fatalf("status %d, want %d (%s)", res.StatusCode, tt.status, body)
			}
			for _, h := range []string{"X-Content-Type-Options", "Content-Security-Policy", "Referrer-Policy"} {
				if res.Header.Get(h) == "" {
					t.Errorf("no %s", h)
				}
			}
			if res.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q", res.Header.Get("X-Content-Type-Options"))
			}
			if tt.body != nil && !bytes.Equal(body, tt.body) {
				t.Errorf("body differs: %d bytes, want %d", len(body), len(tt.body))
			}
			if tt.ctype != "" && res.Header.Get("Content-Type") != tt.ctype {
				t.Errorf("Content-Type = %q, want %q", res.Header.Get("Content-Type"), tt.ctype)
			}
			if tt.disposition != "" && res.Header.Get("Content-Disposition") != tt.disposition {
				t.Errorf("Content-Disposition = %q, want %q", res.Header.Get("Content-Disposition"), tt.disposition)
			}
			if tt.etag != "" && res.Header.Get("ETag") != tt.etag {
				t.Errorf("ETag = %q, want %q", res.Header.Get("ETag"), tt.etag)
			}
			if tt.status == 200 && tt.method == "GET" && tt.hdr == nil && res.ContentLength != int64(len(body)) {
				t.Errorf("Content-Length %d, body %d", res.ContentLength, len(body))
			}
		})
	}
	if strings.Contains(f.logs.String(), img) {
		t.Errorf("a token appears in the log:\n%s", f.logs)
	}
	if !strings.Contains(f.logs.String(), LogID(img)) {
		t.Errorf("the log does not name the media by LogID:\n%s", f.logs)
	}
}

// TestExpiry: a link works until its TTL, answers 410 after it (before and
// after the purge), and 404 once the tombstone is forgotten. Content kept
// in a file is removed by the purge.
func TestExpiry(t *testing.T) {
	for _, inFile := range []bool{false, true} {
		name := "inline"
		if inFile {
			name = "file"
		}
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, func(c *Config) {
				if inFile {
					c.Dir = "set"
					c.InlineMax = 10
				}
			})
			data := bytes.Repeat([]byte("v"), 100)
			tok := f.put(t, "video/mp4", data)
			files, _ := os.ReadDir(f.dir)
			if inFile != (len(files) == 1) {
				t.Fatalf("%d files in the media directory", len(files))
			}
			if inFile && strings.Contains(files[0].Name(), tok) {
				t.Error("the file is named after the token")
			}
			status := func() int {
				res, _ := f.get(t, "GET", "/m/"+tok, nil)
				return res.StatusCode
			}
			if s := status(); s != 200 {
				t.Fatalf("fresh: %d", s)
			}
			f.clk.add(time.Hour)
			if s := status(); s != 410 {
				t.Errorf("expired, not purged: %d, want 410", s)
			}
			n, err := f.store.Purge(context.Background())
			if err != nil || n != 1 {
				t.Fatalf("Purge = %d, %v", n, err)
			}
			if files, _ := os.ReadDir(f.dir); len(files) != 0 {
				t.Errorf("%d files left after purge", len(files))
			}
			if s := status(); s != 410 {
				t.Errorf("purged: %d, want 410", s)
			}
			f.clk.add(25 * time.Hour)
			if _, err := f.store.Purge(context.Background()); err != nil {
				t.Fatal(err)
			}
			if s := status(); s != 404 {
				t.Errorf("forgotten: %d, want 404", s)
			}
		})
	}
}

// TestPurgeTicker: the store's own goroutine purges, and Close stops it.
func TestPurgeTicker(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.PurgeInterval = 10 * time.Millisecond })
	tok := f.put(t, "text/plain", []byte("hello"))
	f.clk.add(2 * time.Hour)
	deadline := time.Now().Add(5 * time.Second)
	for {
		h := hashToken(tok)
		m, err := f.store.cfg.DB.MediaByTokenHash(context.Background(), h)
		if err == nil && m.Purged {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not purged by the ticker: %+v, %v", m, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := f.store.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-f.store.done:
	default:
		t.Fatal("purge goroutine still running after Close")
	}
}

func TestPutLimitsAndTokens(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxSize = 16 })
	if _, err := f.store.Put(context.Background(), Item{Owner: "bob", ContentType: "text/plain", Data: make([]byte, 17)}); err == nil {
		t.Fatal("Put over MaxSize succeeded")
	}
	seen := map[string]bool{}
	for i := 0; i < 50; i++ {
		tok := f.put(t, "text/plain", []byte("x"))
		if len(tok) < 22 || seen[tok] || strings.ContainsAny(tok, "+/=") {
			t.Fatalf("token %q: too short, repeated or not base64url", tok)
		}
		seen[tok] = true
	}
	if got := Link("http://192.0.2.1:8080/", "abc"); got != "http://192.0.2.1:8080/m/abc" {
		t.Errorf("Link = %q", got)
	}
}
