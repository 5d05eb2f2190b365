package scphttp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imcall/b2bua/scp"
	"github.com/imcall/b2bua/scp/sim"
)

// clock is a breaker clock the test moves by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestBreakerOpensOnTimeouts: an SCP that takes the request and never
// answers costs each lookup its deadline, and after threshold timeouts in a
// row the circuit opens exactly as after refusals: lookups fail at once
// without reaching the SCP, until a probe after the cooldown finds it
// answering again.
func TestBreakerOpensOnTimeouts(t *testing.T) {
	s, err := sim.New(sim.Config{Subscribers: []sim.Subscriber{{ID: "imsi:001010000000001", Addr: addrA, State: scp.Online}}})
	if err != nil {
		t.Fatal(err)
	}
	h := sim.NewHandler(s, nil)
	var hang atomic.Bool
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if hang.Load() {
			<-r.Context().Done()
			return
		}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	const timeout, cooldown = 100 * time.Millisecond, time.Minute
	clk := &clock{now: time.Unix(1e9, 0)}
	c := newClient(t, Config{URL: srv.URL, Timeout: timeout, BreakerThreshold: 3, BreakerCooldown: cooldown, Now: clk.Now})
	locate := func() (time.Duration, error) {
		start := time.Now()
		_, err := c.Locate(context.Background(), "imsi:001010000000001")
		return time.Since(start), err
	}

	hang.Store(true)
	for i := range 3 {
		took, err := locate()
		if !errors.Is(err, scp.ErrTimeout) || took < timeout || took > timeout+time.Second {
			t.Fatalf("hanging SCP, lookup %d: %v after %v; want ErrTimeout after the %v deadline", i, err, took, timeout)
		}
	}
	if !c.br.isOpen() {
		t.Fatal("3 timeouts in a row left the circuit closed")
	}
	before := hits.Load()
	for i := range 20 {
		took, err := locate()
		if !errors.Is(err, scp.ErrUnavailable) || !strings.Contains(err.Error(), "circuit open") || took >= timeout {
			t.Fatalf("open circuit, lookup %d: %v after %v; want an immediate ErrUnavailable", i, err, took)
		}
	}
	if hits.Load() != before {
		t.Fatalf("the open circuit sent %d lookups to the SCP", hits.Load()-before)
	}

	// Just before the cooldown nothing is sent; at it, one probe goes out,
	// times out again, and the circuit reopens.
	clk.Add(cooldown - time.Millisecond)
	if _, err := locate(); !strings.Contains(fmt.Sprint(err), "circuit open") {
		t.Fatalf("before the cooldown: %v, want the open circuit", err)
	}
	clk.Add(time.Millisecond)
	if _, err := locate(); !errors.Is(err, scp.ErrTimeout) {
		t.Fatalf("probe: %v, want ErrTimeout", err)
	}
	if got := hits.Load() - before; got != 1 {
		t.Fatalf("probe sent %d lookups, want 1", got)
	}
	if _, err := locate(); !strings.Contains(fmt.Sprint(err), "circuit open") {
		t.Fatalf("after a failed probe: %v, want the open circuit", err)
	}

	// The SCP answers again: the next probe closes the circuit.
	hang.Store(false)
	clk.Add(cooldown)
	for i := range 3 {
		if _, err := locate(); err != nil {
			t.Fatalf("after recovery, lookup %d: %v", i, err)
		}
	}
	if c.br.isOpen() {
		t.Fatal("circuit still open after the SCP recovered")
	}
}

// TestBreakerCountsEveryFailure: refused connections, timeouts and 5xx
// answers are one kind for the breaker; consecutive failures of mixed kinds
// open it, and an answer in between starts the count again.
func TestBreakerCountsEveryFailure(t *testing.T) {
	s, _ := sim.New(sim.Config{Subscribers: []sim.Subscriber{{ID: "imsi:001010000000001", Addr: addrA, State: scp.Online}}})
	h := sim.NewHandler(s, nil)
	var mode atomic.Value // "ok", "hang", "503"
	mode.Store("ok")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch mode.Load() {
		case "hang":
			<-r.Context().Done()
		case "503":
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
		default:
			h.ServeHTTP(w, r)
		}
	}))
	defer srv.Close()
	closedLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusedURL := "http://" + closedLn.Addr().String()
	closedLn.Close()

	clk := &clock{now: time.Unix(1e9, 0)}
	cfg := Config{URL: srv.URL, Timeout: 100 * time.Millisecond, BreakerThreshold: 3, BreakerCooldown: time.Minute, Now: clk.Now}
	good := newClient(t, cfg)
	// One breaker, two ways to fail: share it between a client of the
	// answering server and one of the refusing port.
	cfg.URL = refusedURL
	refusing := newClient(t, cfg)
	refusing.br = good.br

	step := func(c *Client, m string, wantOpen bool) {
		t.Helper()
		mode.Store(m)
		c.Locate(context.Background(), "imsi:001010000000001")
		if c.br.isOpen() != wantOpen {
			t.Fatalf("after a %s lookup: open %v, want %v", m, c.br.isOpen(), wantOpen)
		}
	}
	step(good, "hang", false)
	step(refusing, "refused", false)
	step(good, "ok", false) // an answer resets the count
	step(good, "503", false)
	step(good, "hang", false)
	step(refusing, "refused", true)
}
