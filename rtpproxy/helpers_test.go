package rtpproxy

import (
	"context"
	"net/netip"
	"testing"
	"time"
)

// newTestProxy starts a proxy on loopback with a port range of its own
// (tests of one package run in one process but other packages' tests may
// run at the same time, so ranges are picked per test from base).
func newTestProxy(t testing.TB, base int, mod func(*Config)) *Proxy {
	t.Helper()
	cfg := Config{
		BindAddr:      netip.MustParseAddr("127.0.0.1"),
		AdvertiseAddr: netip.MustParseAddr("203.0.113.10"),
		PortMin:       base,
		PortMax:       base + 199,
		Drain:         50 * time.Millisecond,
		CheckInterval: 20 * time.Millisecond,
		Workers:       1,
	}
	if mod != nil {
		mod(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var id uint64 = 1000
	p.sessionID = func() uint64 { id++; return id }
	t.Cleanup(func() { p.Close() })
	return p
}

func newTestCall(t *testing.T, p *Proxy) *Call {
	t.Helper()
	c, err := p.NewCall(context.Background(), CallConfig{ID: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// The two legs of the tests written for two-party calls: a is the caller.
const legA, legB Leg = "a", "b"

// other is the leg a two-party call relays to.
func other(l Leg) Leg {
	if l == legA {
		return legB
	}
	return legA
}
