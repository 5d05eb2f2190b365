package scphttp

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/imcall/b2bua/scp"
	"github.com/imcall/b2bua/scp/sim"
)

// syncBuffer is a log sink that the client's goroutines may share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestToken runs the client against the simulator's handler behind
// sim.RequireToken on a real listener: the right token locates, a wrong or
// missing one is ErrUnavailable saying the SCP refused our token, and the
// token appears in no log and no error.
func TestToken(t *testing.T) {
	const token = "scp-secret-Tok3n_value"
	s, err := sim.New(sim.Config{Subscribers: []sim.Subscriber{{ID: "imsi:001010000000001", Addr: addrA, State: scp.Online}}})
	if err != nil {
		t.Fatal(err)
	}
	var seen atomic.Value // the last Authorization header the SCP got
	h := sim.RequireToken(token, sim.NewHandler(s, nil))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.Header.Get("Authorization"))
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()

	tests := []struct {
		name, token string
		wantErr     string // "" : located
	}{
		{"right token", token, ""},
		{"wrong token", token + "x", "SCP refused our token: 401 Unauthorized the bearer token is not valid"},
		{"no token", "", "SCP refused our token: none is configured and the SCP requires one (401 Unauthorized a bearer token is required)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs syncBuffer
			c := newClient(t, Config{URL: srv.URL, Token: tt.token, BreakerThreshold: 2, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
			var errs []string
			for range 3 {
				loc, err := c.Locate(context.Background(), "imsi:001010000000001")
				if err != nil {
					errs = append(errs, err.Error())
				}
				switch {
				case tt.wantErr == "" && (err != nil || loc.Addr != addrA):
					t.Fatalf("Locate = %+v, %v", loc, err)
				case tt.wantErr != "" && !errors.Is(err, scp.ErrUnavailable):
					t.Fatalf("Locate error %v, want ErrUnavailable", err)
				}
			}
			if tt.token != "" {
				if got := seen.Load(); got != "Bearer "+tt.token {
					t.Errorf("the SCP got Authorization %q", got)
				}
			}
			if tt.wantErr != "" {
				// Two refusals open the circuit: the third lookup fails fast.
				if !strings.Contains(errs[0], tt.wantErr) || !strings.Contains(errs[1], tt.wantErr) {
					t.Errorf("errors %q, want %q", errs, tt.wantErr)
				}
				if !strings.Contains(errs[2], "circuit open") || !c.br.isOpen() {
					t.Errorf("refused tokens did not open the circuit: %q", errs[2])
				}
				if n := strings.Count(logs.String(), "SCP refused our token"); n != 1 {
					t.Errorf("the refusal was logged %d times, want once:\n%s", n, logs.String())
				}
				if !strings.Contains(logs.String(), "scp circuit open") {
					t.Errorf("no breaker log:\n%s", logs.String())
				}
			}
			for _, s := range append(errs, logs.String()) {
				if strings.Contains(s, token) {
					t.Errorf("the token appears in %q", s)
				}
			}
		})
	}
}

// TestTokenNotFollowed: the protocol has no redirects, so the token never
// leaves for the host a redirect names.
func TestTokenNotFollowed(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	srv := httptest.NewServer(http.RedirectHandler(other.URL+LocatePath, http.StatusTemporaryRedirect))
	defer srv.Close()
	c := newClient(t, Config{URL: srv.URL, Token: "t0ken"})
	if _, err := c.Locate(context.Background(), "imsi:001010000000001"); !errors.Is(err, scp.ErrUnavailable) {
		t.Fatalf("Locate: %v", err)
	}
	if elsewhere.Load() != 0 {
		t.Fatal("the redirect was followed")
	}
}

func TestTokenRejected(t *testing.T) {
	for _, tok := range []string{"two words", "line\nbreak", "tab\t", "caf\u00e9"} {
		_, err := New(Config{URL: "http://127.0.0.1:8070", Token: tok})
		if err == nil || !strings.Contains(err.Error(), "token: must be printable ASCII") {
			t.Errorf("token %q: %v", tok, err)
			continue
		}
		if strings.Contains(err.Error(), tok) {
			t.Errorf("the error shows the token: %v", err)
		}
	}
}
