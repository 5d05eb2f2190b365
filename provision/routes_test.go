package provision

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imcall/b2bua/registry/sqlite"
)

// TestRoutesBehindToken mounts a further route (as the daemon mounts the
// conference API): it is reached only with the token, and its wrong tokens
// count towards the same lock-out as the API's own.
func TestRoutesBehindToken(t *testing.T) {
	store, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "r.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	const token = "routes-test-token"
	extra := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "extra "+r.URL.Path) })
	srv := httptest.NewServer(NewHandler(Config{Store: store, Token: token, AuthFailures: 2, AuthLockout: time.Minute,
		Logger: slog.New(slog.DiscardHandler), Routes: map[string]http.Handler{"/api/v1/extra": extra, "/api/v1/extra/": extra}}))
	defer srv.Close()
	for i, tc := range []struct {
		path, auth string
		want       int
		body       string
	}{
		{"/api/v1/extra", "", 401, ""},
		{"/api/v1/extra/x", "Bearer " + token, 200, "extra /api/v1/extra/x"},
		{"/api/v1/extra", "Bearer " + token, 200, "extra /api/v1/extra"},
		{"/api/v1/extra", "Bearer guess-1", 401, ""},
		{"/api/v1/terminals", "Bearer guess-2", 401, ""}, // the second wrong token, on another route, locks out
		{"/api/v1/extra", "Bearer " + token, 429, ""},
	} {
		req, _ := http.NewRequest("GET", srv.URL+tc.path, nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != tc.want || (tc.body != "" && strings.TrimSpace(string(b)) != tc.body) {
			t.Fatalf("request %d %s: %d %q, want %d %q", i+1, tc.path, res.StatusCode, b, tc.want, tc.body)
		}
	}
}
