package ratelimit

import (
	"net/netip"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestLimiterBurstThenRate(t *testing.T) {
	l := New(Config{Rate: 10, Burst: 5})
	a := netip.MustParseAddr("192.0.2.1")
	b := netip.MustParseAddr("192.0.2.2")
	for i := 0; i < 5; i++ {
		if ok, _ := l.Allow(a, t0); !ok {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	ok, wait := l.Allow(a, t0)
	if ok || wait <= 0 || wait > 100*time.Millisecond {
		t.Fatalf("over the burst: ok=%v wait=%v", ok, wait)
	}
	if ok, _ := l.Allow(b, t0); !ok {
		t.Fatal("another source is limited by the first one's flood")
	}
	if ok, _ := l.Allow(a, t0.Add(100*time.Millisecond)); !ok {
		t.Fatal("a token should be back after 1/rate")
	}
}

func TestLimiterDisabled(t *testing.T) {
	l := New(Config{})
	for i := 0; i < 1000; i++ {
		if ok, _ := l.Allow(netip.MustParseAddr("192.0.2.1"), t0); !ok {
			t.Fatal("a zero Config limits")
		}
	}
	if l.Len() != 0 {
		t.Fatal("a disabled limiter keeps state")
	}
}

// TestLimiterBounded: a flood from many (spoofed) sources keeps at most
// MaxSources entries, the rest share the overflow bucket, and refilled
// buckets are swept.
func TestLimiterBounded(t *testing.T) {
	l := New(Config{Rate: 1, Burst: 2, MaxSources: 100})
	refused := 0
	for i := 0; i < 10000; i++ {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if ok, _ := l.Allow(a, t0); !ok {
			refused++
		}
	}
	if l.Len() > 100 {
		t.Fatalf("%d sources tracked, bound 100", l.Len())
	}
	if refused < 10000-100*2-2 {
		t.Fatalf("only %d of the overflowing sources refused", refused)
	}
	// Once the buckets have refilled, new sources get their own again.
	later := t0.Add(10 * time.Second)
	if ok, _ := l.Allow(netip.MustParseAddr("198.51.100.7"), later); !ok {
		t.Fatal("new source refused after the table could be swept")
	}
	if l.Len() != 1 {
		t.Fatalf("%d sources after the sweep, want 1", l.Len())
	}
}

func TestKeyIPv6Slash64(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"2001:db8::1", "2001:db8::ffff:1", true},
		{"2001:db8::1", "2001:db8:0:1::1", false},
		{"::ffff:192.0.2.1", "192.0.2.1", true},
		{"192.0.2.1", "192.0.2.2", false},
	} {
		if got := Key(netip.MustParseAddr(tc.a)) == Key(netip.MustParseAddr(tc.b)); got != tc.same {
			t.Errorf("Key(%s)==Key(%s): %v, want %v", tc.a, tc.b, got, tc.same)
		}
	}
}

func TestLockout(t *testing.T) {
	l := NewLockout(LockoutConfig{MaxFailures: 3, Window: time.Minute, Lockout: 5 * time.Minute})
	a := netip.MustParseAddr("192.0.2.1")
	b := netip.MustParseAddr("192.0.2.2")
	for i, want := range []time.Duration{0, 0, 5 * time.Minute} {
		if got := l.Fail(a, t0); got != want {
			t.Fatalf("failure %d: locked %v, want %v", i+1, got, want)
		}
	}
	if l.Locked(a, t0.Add(time.Minute)) != 4*time.Minute {
		t.Fatal("lock-out not in force a minute later")
	}
	if l.Locked(b, t0) != 0 {
		t.Fatal("another source is locked out")
	}
	l.Succeed(a, t0.Add(time.Minute)) // does not lift a lock-out
	if l.Locked(a, t0.Add(2*time.Minute)) == 0 {
		t.Fatal("a success lifted the lock-out")
	}
	if l.Locked(a, t0.Add(5*time.Minute)) != 0 {
		t.Fatal("lock-out outlasts its time")
	}
	// Failures spread wider than the window never lock.
	for i := 0; i < 10; i++ {
		if l.Fail(b, t0.Add(time.Duration(i)*40*time.Second)) != 0 {
			t.Fatalf("failure %d, 40s apart, locked", i)
		}
		if i%2 == 1 {
			l.Succeed(b, t0.Add(time.Duration(i)*40*time.Second))
		}
	}
}

func TestLockoutBounded(t *testing.T) {
	l := NewLockout(LockoutConfig{MaxFailures: 5, MaxSources: 10})
	for i := 0; i < 1000; i++ {
		l.Fail(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), t0)
	}
	if l.Len() > 10 {
		t.Fatalf("%d sources tracked, bound 10", l.Len())
	}
	// The overflowing sources were counted together and are locked out.
	if l.Locked(netip.MustParseAddr("10.9.9.9"), t0) == 0 {
		t.Fatal("overflow sources escape the lock-out")
	}
}

// TestKeyedLockout counts per key: failures of one key lock only it.
func TestKeyedLockout(t *testing.T) {
	type k struct{ user, src string }
	l := NewKeyedLockout[k](LockoutConfig{MaxFailures: 2, Lockout: time.Minute}, nil)
	l.Fail(k{"alice", "a"}, t0)
	if l.Fail(k{"alice", "a"}, t0) != time.Minute {
		t.Fatal("two failures did not lock the key")
	}
	for _, other := range []k{{"alice", "b"}, {"bob", "a"}} {
		if l.Locked(other, t0) != 0 {
			t.Errorf("%v locked by failures of another key", other)
		}
	}
}

func TestRecent(t *testing.T) {
	r := NewRecent[string](time.Minute, 2)
	r.Add("a", t0)
	r.Add("b", t0)
	r.Add("c", t0) // full: not remembered
	for _, tc := range []struct {
		k    string
		at   time.Duration
		want bool
	}{{"a", 0, true}, {"b", 59 * time.Second, true}, {"c", 0, false}, {"a", time.Minute, false}} {
		if got := r.Has(tc.k, t0.Add(tc.at)); got != tc.want {
			t.Errorf("Has(%s) at +%v = %v, want %v", tc.k, tc.at, got, tc.want)
		}
	}
	r.Add("c", t0.Add(2*time.Minute)) // the expired are swept to make room
	if !r.Has("c", t0.Add(2*time.Minute)) || r.Len() != 1 {
		t.Errorf("after expiry: Has(c) %v, Len %d, want true, 1", r.Has("c", t0.Add(2*time.Minute)), r.Len())
	}
}

// TestKeyedLimiter: buckets per key of any type, here user names: one
// key's burst spent leaves another's whole.
func TestKeyedLimiter(t *testing.T) {
	l := NewKeyed[string](Config{Rate: 1, Burst: 2}, nil)
	now := time.Unix(1000, 0)
	tests := []struct {
		key  string
		want bool
	}{
		{"alice", true}, {"alice", true}, {"alice", false}, {"bob", true}, {"bob", true}, {"bob", false},
	}
	for i, tt := range tests {
		if got, _ := l.Allow(tt.key, now); got != tt.want {
			t.Errorf("request %d as %s: allowed %v, want %v", i+1, tt.key, got, tt.want)
		}
	}
	if ok, _ := l.Allow("alice", now.Add(time.Second)); !ok {
		t.Error("alice a second later: refused, want a token back at 1/s")
	}
}
