package daemon

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imcall/b2bua/scp/sim"
)

// TestSCPAdminRequiresToken checks that the in-process simulator's routes on
// the b2bua listener take the provisioning API's bearer token: without it
// nobody can move a subscriber and so redirect its calls.
func TestSCPAdminRequiresToken(t *testing.T) {
	dir := t.TempDir()
	const token = "scp-admin-test-token"
	d, err := Start(context.Background(), Config{
		DBPath:     filepath.Join(dir, "b2bua.db"),
		Domain:     "127.0.0.1",
		SIPListen:  "127.0.0.1:0",
		HTTPListen: "127.0.0.1:0",
		APIToken:   token,
		Logger:     slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	base := "http://" + d.HTTPAddr()

	for _, tc := range []struct {
		name, method, path, auth string
		want                     int
		challenge                string
	}{
		{"list without token", "GET", "/scp/v1/subscribers", "", 401, `Bearer realm="scp"`},
		{"move without token", "PATCH", "/scp/v1/subscribers/imsi:001010000000001", "", 401, `Bearer realm="scp"`},
		{"locate without token", "GET", "/scp/v1/locate?id=imsi:001010000000001", "", 401, `Bearer realm="scp"`},
		{"unknown route without token", "GET", "/scp/v1/nothing", "", 401, `Bearer realm="scp"`},
		{"wrong token", "GET", "/scp/v1/subscribers", "Bearer " + token + "x", 401, `Bearer realm="scp", error="invalid_token"`},
		{"token prefix", "GET", "/scp/v1/subscribers", "Bearer " + token[:5], 401, `Bearer realm="scp", error="invalid_token"`},
		{"other scheme", "GET", "/scp/v1/subscribers", "Basic " + token, 401, `Bearer realm="scp"`},
		{"right token", "GET", "/scp/v1/subscribers", "Bearer " + token, 200, ""},
		{"scheme is case-insensitive", "GET", "/scp/v1/subscribers", "bearer " + token, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, base+tc.path, strings.NewReader(`{"state":"busy"}`))
			req.Header.Set("Content-Type", "application/json")
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tc.want {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tc.want, body)
			}
			if tc.want != 401 {
				return
			}
			if got := res.Header.Get("WWW-Authenticate"); got != tc.challenge {
				t.Errorf("WWW-Authenticate %q, want %q", got, tc.challenge)
			}
			if ct := res.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			var eb sim.ErrorBody
			if err := json.Unmarshal(body, &eb); err != nil || eb.Error.Code != "unauthorized" || eb.Error.Message == "" {
				t.Errorf("error body %s (%v)", body, err)
			}
		})
	}

	// scpsim's client with the token changes the simulator; without it,
	// it is refused and nothing changes.
	ctx := context.Background()
	open, _ := sim.NewClient(base, nil)
	if _, err := open.Attach(ctx, sim.Subscriber{ID: "imsi:001010000000042", Addr: netip.MustParseAddrPort("127.0.0.1:6000"), State: "online"}); err == nil || !strings.Contains(err.Error(), "bearer token") {
		t.Fatalf("attach without token: %v", err)
	}
	authed, _ := sim.NewClient(base, sim.WithToken(nil, token))
	if _, err := authed.Attach(ctx, sim.Subscriber{ID: "imsi:001010000000042", Addr: netip.MustParseAddrPort("127.0.0.1:6000"), State: "online"}); err != nil {
		t.Fatalf("attach with token: %v", err)
	}
	subs, err := authed.List(ctx)
	if err != nil || len(subs) != 1 || subs[0].ID != "imsi:001010000000042" {
		t.Fatalf("list: %v %v", subs, err)
	}
}
