package provision

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/registry/sqlite"
)

// downStore is a registry whose server cannot be reached: every read of
// users fails as a network store's does.
type downStore struct{ *sqlite.Store }

func (downStore) Users(context.Context) ([]registry.User, error) {
	return nil, fmt.Errorf("list users: %w: dial unix /run/postgresql/.s.PGSQL.5432: connection refused", registry.ErrUnavailable)
}

func (downStore) User(_ context.Context, id string) (registry.User, error) {
	return registry.User{}, fmt.Errorf("user %s: %w: connection reset", id, registry.ErrUnavailable)
}

// TestRegistryUnavailable: with the store's server down, the API answers
// 503 unavailable (a client or load balancer may try again, or another
// node), never 500, and says nothing of the server's address.
func TestRegistryUnavailable(t *testing.T) {
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "reg.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := NewHandler(Config{Store: downStore{st}, Token: "tok", Realm: "im.example", Logger: slog.New(slog.DiscardHandler)})
	e := &env{srv: newServer(t, h), store: st}
	for _, path := range []string{"/api/v1/users", "/api/v1/users/alice"} {
		r := e.do(t, http.MethodGet, path, "", "Authorization", "Bearer tok")
		if r.status != http.StatusServiceUnavailable || r.err().Code != CodeUnavailable {
			t.Errorf("GET %s: %d %+v, want 503 %s", path, r.status, r.err(), CodeUnavailable)
		}
		if body := r.body; len(body) == 0 || bytes.Contains(body, []byte("5432")) {
			t.Errorf("GET %s: body %q", path, body)
		}
	}
}
