package locators

import (
	"context"
	"errors"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imcall/b2bua/scp"
	"github.com/imcall/b2bua/scp/scphttp"
	"github.com/imcall/b2bua/scp/sim"
)

var subscribersFile = filepath.Join("..", "..", "testdata", "scp", "subscribers.json")

func TestSchemes(t *testing.T) {
	got := strings.Join(Schemes(), ", ")
	for _, want := range []string{"http", "https", "sim"} {
		if !strings.Contains(", "+got+", ", ", "+want+", ") {
			t.Errorf("Schemes() = %s, missing %s", got, want)
		}
	}
}

func TestOpen(t *testing.T) {
	tests := []struct {
		spec    string
		opts    Options
		wantSim bool
		wantErr string
	}{
		{spec: "sim", wantSim: true},
		{spec: "SIM", opts: Options{SubscribersFile: subscribersFile}, wantSim: true},
		{spec: "sim:", wantSim: true},
		{spec: "http://127.0.0.1:8070"},
		{spec: "https://scp.example:443/prefix"},
		{spec: "http://127.0.0.1:8070?timeout=200ms"},
		{spec: "", wantErr: "unknown backend: the scheme must be one of " + strings.Join(Schemes(), ", ")},
		{spec: "ftp://127.0.0.1:2905", wantErr: "unknown backend: the scheme must be one of " + strings.Join(Schemes(), ", ")},
		{spec: "sim://somewhere", wantErr: "takes no address"},
		{spec: "sim", opts: Options{SubscribersFile: "does-not-exist.json"}, wantErr: "does-not-exist.json"},
		{spec: "http://127.0.0.1:8070?timeout=soon", wantErr: "timeout: must be a positive duration"},
		{spec: "http://127.0.0.1:8070?retries=9", wantErr: `unknown parameter "retries"`},
		{spec: "http://", wantErr: "must be http://HOST:PORT"},
		{spec: "https://scp.example:443", opts: Options{Token: "t0ken"}},
		{spec: "sim", opts: Options{Token: "t0ken"}, wantErr: "the sim backend sends no token"},
		{spec: "cap+tcp://127.0.0.1:2905", opts: Options{Token: "t0ken"}, wantErr: "the cap+tcp backend sends no token"},
		{spec: "http://127.0.0.1:8070?token=s3cret", wantErr: "a token does not belong in the URL"},
		{spec: "http://user:s3cret@127.0.0.1:8070", wantErr: "credentials do not belong in the URL"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			loc, err := Open(context.Background(), tt.spec, tt.opts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "t0ken") {
					t.Fatalf("the error shows the token: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer Close(loc)
			if _, isSim := Simulator(loc); isSim != tt.wantSim {
				t.Fatalf("got %T", loc)
			}
			if !tt.wantSim {
				if _, ok := loc.(*scphttp.Client); !ok {
					t.Fatalf("got %T, want *scphttp.Client", loc)
				}
			}
		})
	}
}

// TestSimMountedThenHTTP: the sim backend's handler, mounted by its host,
// serves the http backend that another node opens.
func TestSimMountedThenHTTP(t *testing.T) {
	ctx := context.Background()
	loc, err := Open(ctx, "sim", Options{SubscribersFile: subscribersFile})
	if err != nil {
		t.Fatal(err)
	}
	s, ok := Simulator(loc)
	if !ok {
		t.Fatalf("sim backend is %T", loc)
	}
	srv := httptest.NewServer(sim.NewHandler(s, nil))
	defer srv.Close()
	remote, err := Open(ctx, srv.URL+"?timeout=1s", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer Close(remote)
	for _, l := range []scp.Locator{loc, remote} {
		got, err := l.Locate(ctx, "imsi:001010000000001")
		if err != nil || got != (scp.Location{Addr: netip.MustParseAddrPort("127.0.0.1:5062"), State: scp.Online}) {
			t.Fatalf("%T: %+v, %v", l, got, err)
		}
		if _, err := l.Locate(ctx, "imsi:001010000000099"); !errors.Is(err, scp.ErrUnknownSubscriber) {
			t.Fatalf("%T: unknown: %v", l, err)
		}
	}
}

// TestTokenReachesHTTP: Options.Token is what the http backend sends to an
// SCP that requires a bearer token.
func TestTokenReachesHTTP(t *testing.T) {
	const token = "locators-test-token"
	ctx := context.Background()
	loc, err := Open(ctx, "sim", Options{SubscribersFile: subscribersFile})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := Simulator(loc)
	srv := httptest.NewServer(sim.RequireToken(token, sim.NewHandler(s, nil)))
	defer srv.Close()
	for _, tt := range []struct {
		token string
		ok    bool
	}{{token, true}, {"other", false}, {"", false}} {
		remote, err := Open(ctx, srv.URL, Options{Token: tt.token})
		if err != nil {
			t.Fatal(err)
		}
		_, err = remote.Locate(ctx, "imsi:001010000000001")
		Close(remote)
		if ok := err == nil; ok != tt.ok || (!ok && !strings.Contains(err.Error(), "SCP refused our token")) {
			t.Errorf("token %q: %v", tt.token, err)
		}
	}
}
