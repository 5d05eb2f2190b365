package provision

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/imcall/b2bua/internal/testenv"
	"github.com/imcall/b2bua/registry/sqlite"
)

// getFrom sends GET /api/v1/users to srv from the local address ip, with
// the Authorization value auth.
func getFrom(t *testing.T, srv *httptest.Server, ip, auth string) (*http.Response, []byte) {
	t.Helper()
	// 127.0.0.2 is not configured everywhere (macOS has only 127.0.0.1):
	// that alone may skip the test, never a failing request.
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		testenv.Missing(t, "cannot bind %s: %v", ip, err)
	}
	ln.Close()
	hc := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}).DialContext}}
	req, _ := http.NewRequest("GET", srv.URL+"/api/v1/users", nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, err := hc.Do(req)
	if err != nil {
		t.Fatalf("GET from %s: %v", ip, err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res, body
}

// TestWrongTokenLockout guesses tokens from one source over a real
// listener: after the allowed failures it gets 429 with Retry-After, even
// with the right token, while another source is still served.
func TestWrongTokenLockout(t *testing.T) {
	store, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "r.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	const token = "lockout-test-token"
	srv := httptest.NewServer(NewHandler(Config{Store: store, Token: token, AuthFailures: 3, AuthLockout: time.Minute, Logger: slog.New(slog.DiscardHandler)}))
	defer srv.Close()

	for i, tc := range []struct {
		ip, auth string
		want     int
	}{
		{"127.0.0.1", "", 401}, // no token: not a guess
		{"127.0.0.1", "", 401},
		{"127.0.0.1", "", 401},
		{"127.0.0.1", "Bearer guess-1", 401},
		{"127.0.0.1", "Bearer guess-2", 401},
		{"127.0.0.1", "Bearer guess-3", 401}, // the third wrong token locks out
		{"127.0.0.1", "Bearer guess-4", 429},
		{"127.0.0.1", "Bearer " + token, 429},
		{"127.0.0.2", "Bearer " + token, 200},
		{"127.0.0.2", "Bearer guess-5", 401},
	} {
		res, body := getFrom(t, srv, tc.ip, tc.auth)
		if res.StatusCode != tc.want {
			t.Fatalf("request %d from %s: %d %s, want %d", i+1, tc.ip, res.StatusCode, body, tc.want)
		}
		if tc.want != 429 {
			continue
		}
		if ra, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
			t.Errorf("Retry-After %q", res.Header.Get("Retry-After"))
		}
		var eb errorBody
		if err := json.Unmarshal(body, &eb); err != nil || eb.Error == nil || eb.Error.Code != CodeTooManyRequests {
			t.Errorf("429 body %s", body)
		}
	}
}
