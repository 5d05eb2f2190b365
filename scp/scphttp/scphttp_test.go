package scphttp

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imcall/b2bua/scp"
	"github.com/imcall/b2bua/scp/sim"
)

var (
	addrA = netip.MustParseAddrPort("127.0.0.1:5062")
	addrB = netip.MustParseAddrPort("[::1]:5070")
)

// scpsim starts the simulator's real HTTP handler on loopback.
func scpsim(t *testing.T, subs ...sim.Subscriber) (*sim.Simulator, *httptest.Server) {
	t.Helper()
	s, err := sim.New(sim.Config{Subscribers: subs})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim.NewHandler(s, nil))
	t.Cleanup(srv.Close)
	return s, srv
}

func newClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestLocateAgainstSimulator(t *testing.T) {
	s, srv := scpsim(t,
		sim.Subscriber{ID: "imsi:001010000000001", Addr: addrA, State: scp.Online},
		sim.Subscriber{ID: "imsi:001010000000002", Addr: addrB, State: scp.Busy},
		sim.Subscriber{ID: "mac:00:1a:2b:3c:4d:5e", State: scp.Absent},
		sim.Subscriber{ID: "msisdn:+441632960001", Addr: addrB, State: scp.Online},
	)
	c := newClient(t, Config{URL: srv.URL})
	ctx := context.Background()
	tests := []struct {
		id      string
		want    scp.Location
		wantErr error
	}{
		{"imsi:001010000000001", scp.Location{Addr: addrA, State: scp.Online}, nil},
		{"imsi:001010000000002", scp.Location{Addr: addrB, State: scp.Busy}, nil},
		{"mac:00:1a:2b:3c:4d:5e", scp.Location{State: scp.Absent}, nil},
		{"imsi:001010000000009", scp.Location{}, scp.ErrUnknownSubscriber},
		{"mac:00:00:00:00:00:01", scp.Location{}, scp.ErrUnknownSubscriber},
		// The '+' must reach the SCP as a plus, not as a space.
		{"msisdn:+441632960001", scp.Location{Addr: addrB, State: scp.Online}, nil},
		{"msisdn:+441632960009", scp.Location{}, scp.ErrUnknownSubscriber},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			got, err := c.Locate(ctx, tt.id)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}

	t.Run("roaming", func(t *testing.T) {
		const id = "imsi:001010000000001"
		if loc, err := c.Locate(ctx, id); err != nil || loc.Addr != addrA {
			t.Fatalf("before: %+v, %v", loc, err)
		}
		if _, err := s.Move(id, addrB); err != nil {
			t.Fatal(err)
		}
		if loc, err := c.Locate(ctx, id); err != nil || loc.Addr != addrB || loc.State != scp.Online {
			t.Fatalf("after move: %+v, %v", loc, err)
		}
		if _, err := s.SetState(id, scp.Busy); err != nil {
			t.Fatal(err)
		}
		if loc, err := c.Locate(ctx, id); err != nil || loc.State != scp.Busy {
			t.Fatalf("after state: %+v, %v", loc, err)
		}
		s.Detach(id)
		if _, err := c.Locate(ctx, id); !errors.Is(err, scp.ErrUnknownSubscriber) {
			t.Fatalf("after detach: %v", err)
		}
	})
}

// TestKeepAlive checks that sequential lookups share one connection.
func TestKeepAlive(t *testing.T) {
	s, _ := sim.New(sim.Config{Subscribers: []sim.Subscriber{{ID: "imsi:001010000000001", Addr: addrA, State: scp.Online}}})
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(sim.NewHandler(s, nil))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c := newClient(t, Config{URL: srv.URL})
	for i := 0; i < 50; i++ {
		if _, err := c.Locate(context.Background(), "imsi:001010000000001"); err != nil {
			t.Fatal(err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("50 lookups opened %d connections, want 1", n)
	}
}

func TestSCPDown(t *testing.T) {
	// A port that was just listening and is now closed refuses connections.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close()
	c := newClient(t, Config{URL: url, Timeout: 2 * time.Second, BreakerThreshold: 3, BreakerCooldown: time.Hour})
	for i := 0; i < 3; i++ {
		start := time.Now()
		_, err := c.Locate(context.Background(), "imsi:001010000000001")
		if !errors.Is(err, scp.ErrUnavailable) || errors.Is(err, scp.ErrTimeout) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
		// A refused connection is an answer: the lookup must not sit
		// out its deadline.
		if d := time.Since(start); d > time.Second {
			t.Fatalf("refused lookup took %v", d)
		}
		if !strings.Contains(err.Error(), "refused") {
			t.Fatalf("err = %v, want it to say the connection was refused", err)
		}
	}
	_, err = c.Locate(context.Background(), "imsi:001010000000001")
	if !errors.Is(err, scp.ErrUnavailable) || !strings.Contains(err.Error(), "circuit open") {
		t.Fatalf("after 3 failures err = %v, want the open circuit", err)
	}
}

func TestSCPSlow(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	const timeout = 150 * time.Millisecond
	c := newClient(t, Config{URL: srv.URL, Timeout: timeout})

	start := time.Now()
	_, err := c.Locate(context.Background(), "imsi:001010000000001")
	took := time.Since(start)
	if !errors.Is(err, scp.ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	// The deadline holds: not before it, and not long after it.
	if took < timeout || took > timeout+time.Second {
		t.Fatalf("lookup took %v with a %v deadline", took, timeout)
	}

	// A caller's shorter deadline wins over the backend's 10s.
	patient := newClient(t, Config{URL: srv.URL, Timeout: 10 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, err := patient.Locate(ctx, "imsi:001010000000001"); !errors.Is(err, scp.ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("caller's 20ms deadline ignored: took %v", took)
	}

	// A caller that gives up is not told the SCP timed out.
	ctx, cancel = context.WithCancel(context.Background())
	go func() { time.Sleep(10 * time.Millisecond); cancel() }()
	if _, err := c.Locate(ctx, "imsi:001010000000001"); !errors.Is(err, context.Canceled) || errors.Is(err, scp.ErrTimeout) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// TestFlapping drives the breaker through open, a failed probe, and
// recovery, counting the requests that reach the SCP.
func TestFlapping(t *testing.T) {
	s, _ := sim.New(sim.Config{Subscribers: []sim.Subscriber{{ID: "imsi:001010000000001", Addr: addrA, State: scp.Online}}})
	h := sim.NewHandler(s, nil)
	var down atomic.Bool
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if down.Load() {
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	const cooldown = time.Minute
	clk := &clock{now: time.Unix(1e9, 0)}
	c := newClient(t, Config{URL: srv.URL, BreakerThreshold: 3, BreakerCooldown: cooldown, Now: clk.Now})
	ctx := context.Background()
	locate := func() error { _, err := c.Locate(ctx, "imsi:001010000000001"); return err }

	if err := locate(); err != nil {
		t.Fatal(err)
	}
	down.Store(true)
	for i := 0; i < 3; i++ {
		if err := locate(); !errors.Is(err, scp.ErrUnavailable) || !strings.Contains(err.Error(), "503") {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	before := hits.Load()
	for i := 0; i < 100; i++ {
		if err := locate(); !errors.Is(err, scp.ErrUnavailable) {
			t.Fatalf("open circuit: %v", err)
		}
	}
	if hits.Load() != before {
		t.Fatalf("open circuit sent %d requests to the SCP", hits.Load()-before)
	}

	// Just before the cooldown ends the circuit is still open.
	clk.Add(cooldown - time.Millisecond)
	if err := locate(); err == nil || !strings.Contains(err.Error(), "circuit open") || hits.Load() != before {
		t.Fatalf("before the cooldown: %v, %d requests", err, hits.Load()-before)
	}
	// After the cooldown one probe goes through; it fails and reopens.
	clk.Add(cooldown)
	if err := locate(); !errors.Is(err, scp.ErrUnavailable) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("probe: %v", err)
	}
	if got := hits.Load() - before; got != 1 {
		t.Fatalf("probe sent %d requests, want 1", got)
	}
	if err := locate(); err == nil || !strings.Contains(err.Error(), "circuit open") {
		t.Fatalf("after failed probe: %v", err)
	}

	// The SCP recovers: the next probe closes the circuit.
	down.Store(false)
	clk.Add(cooldown)
	for i := 0; i < 5; i++ {
		if err := locate(); err != nil {
			t.Fatalf("after recovery, lookup %d: %v", i, err)
		}
	}
	if c.br.isOpen() {
		t.Fatal("circuit still open after recovery")
	}
}

// TestValidation feeds answers an SCP must not give.
func TestValidation(t *testing.T) {
	tests := []struct {
		name   string
		status int
		ctype  string
		body   string
		want   string // substring of the error
	}{
		{"bad addr", 200, "application/json", `{"state":"online","addr":"here"}`, `bad addr "here"`},
		{"port zero", 200, "application/json", `{"state":"online","addr":"127.0.0.1:0"}`, "port 1-65535"},
		{"hostname addr", 200, "application/json", `{"state":"online","addr":"example.com:5060"}`, "bad addr"},
		{"multicast addr", 200, "application/json", `{"state":"online","addr":"224.0.0.1:5060"}`, "unicast"},
		{"unknown state", 200, "application/json", `{"state":"sleeping","addr":"127.0.0.1:5062"}`, `unknown state "sleeping"`},
		{"no state", 200, "application/json", `{"addr":"127.0.0.1:5062"}`, `no "state"`},
		{"online without addr", 200, "application/json", `{"state":"online"}`, `no "addr"`},
		{"state wrong type", 200, "application/json", `{"state":1}`, "not a JSON location object"},
		{"not json", 200, "application/json", `online 127.0.0.1:5062`, "not a JSON location object"},
		{"array", 200, "application/json", `[]`, "not a JSON location object"},
		{"wrong content type", 200, "text/html", `{"state":"online","addr":"127.0.0.1:5062"}`, `Content-Type "text/html"`},
		{"no content type", 200, "", `{"state":"online","addr":"127.0.0.1:5062"}`, `Content-Type`},
		{"oversize", 200, "application/json", `{"state":"online","addr":"127.0.0.1:5062","pad":"` + strings.Repeat("x", MaxBodyBytes) + `"}`, "larger than 4096 bytes"},
		{"plain 404", 404, "text/plain", "404 page not found", "without code unknown_subscriber"},
		{"json 404 other code", 404, "application/json", `{"error":{"code":"not_found","message":"no such route"}}`, "without code unknown_subscriber"},
		{"server error", 500, "application/json", `{"error":{"code":"internal","message":"boom"}}`, "500 Internal Server Error"},
		{"bad request", 400, "application/json", `{"error":{"code":"invalid_argument","message":"id: is required"}}`, "refused the request: 400 Bad Request id: is required"},
		{"redirect", 302, "text/plain", "", "302 Found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.ctype != "" {
					w.Header().Set("Content-Type", tt.ctype)
				} else {
					w.Header()["Content-Type"] = nil // stop net/http sniffing one
				}
				if tt.status == 302 {
					w.Header().Set("Location", "http://192.0.2.1/")
				}
				w.WriteHeader(tt.status)
				w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			c := newClient(t, Config{URL: srv.URL})
			_, err := c.Locate(context.Background(), "imsi:001010000000001")
			if !errors.Is(err, scp.ErrUnavailable) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrUnavailable containing %q", err, tt.want)
			}
		})
	}
	// Unknown members are ignored so that the protocol can grow.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Write([]byte(`{"state":"busy","addr":"127.0.0.1:5062","vlr":"x"}`))
	}))
	defer srv.Close()
	c := newClient(t, Config{URL: srv.URL})
	if loc, err := c.Locate(context.Background(), "imsi:001010000000001"); err != nil || loc != (scp.Location{Addr: addrA, State: scp.Busy}) {
		t.Fatalf("got %+v, %v", loc, err)
	}
}

func TestNewRejects(t *testing.T) {
	for _, cfg := range []Config{
		{URL: ""},
		{URL: "127.0.0.1:8070"},
		{URL: "ftp://127.0.0.1:8070"},
		{URL: "http://"},
		{URL: "http://127.0.0.1:8070?x=1"},
		{URL: "http://127.0.0.1:8070", Timeout: -1},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

func TestPathPrefix(t *testing.T) {
	s, _ := sim.New(sim.Config{Subscribers: []sim.Subscriber{{ID: "imsi:001010000000001", Addr: addrA, State: scp.Online}}})
	mux := http.NewServeMux()
	mux.Handle("/operator/", http.StripPrefix("/operator", sim.NewHandler(s, nil)))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c := newClient(t, Config{URL: srv.URL + "/operator/"})
	if loc, err := c.Locate(context.Background(), "imsi:001010000000001"); err != nil || loc.Addr != addrA {
		t.Fatalf("got %+v, %v", loc, err)
	}
}

// TestRetryOnlyWhenNotSent: only a failed dial is safe to repeat.
func TestRetryOnlyWhenNotSent(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	_, dialErr := (&net.Dialer{}).DialContext(context.Background(), "tcp", addr)
	if dialErr == nil || !notSent(dialErr) {
		t.Fatalf("refused dial %v not classed as unsent", dialErr)
	}
	for _, err := range []error{errors.New("EOF"), &net.OpError{Op: "read", Err: errors.New("connection reset")}, context.DeadlineExceeded} {
		if notSent(err) {
			t.Errorf("%v classed as unsent", err)
		}
	}
}
