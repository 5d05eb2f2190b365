// Package media benchmarks the store-and-link path: serving GET /m/{token}
// for a known and an unknown token (the two should cost the same up to the
// answer), the MESSAGE decision and the message/cpim parser.
package media

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imcall/b2bua/cpim"
	"github.com/imcall/b2bua/mediastore"
	"github.com/imcall/b2bua/msgpolicy"
	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/registry/sqlite"
)

// fixture stores 1,000 items of 2 KiB and returns the store and one token.
func fixture(b *testing.B) (*mediastore.Store, string) {
	b.Helper()
	db, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(b.TempDir(), "r.db")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	ms, err := mediastore.New(mediastore.Config{DB: db})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ms.Close() })
	var tok string
	for i := 0; i < 1000; i++ {
		st, err := ms.Put(context.Background(), mediastore.Item{Owner: "bob", ContentType: "image/png", Data: bytes.Repeat([]byte{byte(i)}, 2048)})
		if err != nil {
			b.Fatal(err)
		}
		tok = st.Token
	}
	return ms, tok
}

func serve(b *testing.B, h http.Handler, path string, want int) {
	b.Helper()
	req := httptest.NewRequest("GET", path, nil)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != want {
			b.Fatalf("status %d, want %d", w.Code, want)
		}
	}
}

// BenchmarkServeKnown: a 2 KiB image by its token (lookup, headers, body).
func BenchmarkServeKnown(b *testing.B) {
	ms, tok := fixture(b)
	serve(b, ms, mediastore.PathPrefix+tok, 200)
}

// BenchmarkServeKnownNotModified: the same with a matching If-None-Match:
// the lookup and the headers without the body, the closest to a 404's work.
func BenchmarkServeKnownNotModified(b *testing.B) {
	ms, tok := fixture(b)
	w := httptest.NewRecorder()
	ms.ServeHTTP(w, httptest.NewRequest("GET", mediastore.PathPrefix+tok, nil))
	req := httptest.NewRequest("GET", mediastore.PathPrefix+tok, nil)
	req.Header.Set("If-None-Match", w.Header().Get("ETag"))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w := httptest.NewRecorder()
		ms.ServeHTTP(w, req)
		if w.Code != 304 {
			b.Fatalf("status %d", w.Code)
		}
	}
}

// BenchmarkServeUnknown: a well-formed token that was never issued.
func BenchmarkServeUnknown(b *testing.B) {
	ms, tok := fixture(b)
	serve(b, ms, mediastore.PathPrefix+strings.Repeat("A", len(tok)), 404)
}

// BenchmarkDecide: the MESSAGE decision.
func BenchmarkDecide(b *testing.B) {
	in := msgpolicy.Input{ContentType: "image/png", BodySize: 20000, MaxSize: 60000, Transport: "TCP", WireSize: 20400,
		Reach: msgpolicy.Online, Caps: registry.CapAudio | registry.CapText, ForwardFits: true}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if d := msgpolicy.Decide(in); d.Action != msgpolicy.StoreLink {
			b.Fatal(d)
		}
	}
}

// BenchmarkCPIMParse: a message/cpim wrapper around a 2 KiB image.
func BenchmarkCPIMParse(b *testing.B) {
	body := append([]byte("From: Alice <sip:alice@im.example>\r\nTo: <sip:bob@im.example>\r\nDateTime: 2026-01-02T03:04:05Z\r\nNS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: 34jk324j\r\n\r\nContent-Type: image/png\r\nContent-Length: 2048\r\n\r\n"), bytes.Repeat([]byte{1}, 2048)...)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := cpim.Parse(body); err != nil {
			b.Fatal(err)
		}
	}
}
