package connlimit

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// holder accepts from l and keeps every admitted connection open until the
// test ends, as a server with idle clients does.
func holder(t *testing.T, l *Listener) {
	t.Helper()
	var (
		mu   sync.Mutex
		held []net.Conn
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
}

func dialFrom(t *testing.T, local, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 2 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// refused reports whether the server closed c within wait: a read sees EOF
// or a reset rather than the deadline.
func refused(c net.Conn, wait time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(wait))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout()) || errors.Is(err, io.EOF)
}

// waitOpen waits until l holds n connections: Accept runs on its own
// goroutine.
func waitOpen(t *testing.T, l *Listener, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); l.Open() != n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("open = %d, want %d", l.Open(), n)
		}
	}
}

func TestLimits(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(ln, Config{MaxConns: 5, MaxConnsPerSource: 3})
	holder(t, l)
	addr := ln.Addr().String()

	var first []net.Conn
	for range 3 {
		first = append(first, dialFrom(t, "127.0.0.1", addr))
	}
	waitOpen(t, l, 3)
	// The fourth from the same source is closed at once.
	if c := dialFrom(t, "127.0.0.1", addr); !refused(c, 2*time.Second) {
		t.Fatal("fourth connection from 127.0.0.1 was kept open past the per-source limit of 3")
	}
	// Admitted connections stay open.
	for _, c := range first {
		if refused(c, 20*time.Millisecond) {
			t.Fatal("an admitted connection was closed")
		}
	}
	// Another source has its own allowance, within the total of 5.
	dialFrom(t, "127.0.0.2", addr)
	dialFrom(t, "127.0.0.2", addr)
	waitOpen(t, l, 5)
	if c := dialFrom(t, "127.0.0.3", addr); !refused(c, 2*time.Second) {
		t.Fatal("a sixth connection was kept open past the total limit of 5")
	}
	if got := l.Refused(); got != 2 {
		t.Fatalf("Refused = %d, want 2", got)
	}
}

// TestRelease: a connection's place is given back when the server closes
// it, exactly once.
func TestRelease(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(ln, Config{MaxConns: 1, MaxConnsPerSource: 1})
	defer l.Close()
	accepted := make(chan net.Conn, 2)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	addr := ln.Addr().String()
	dialFrom(t, "127.0.0.1", addr)
	sc := <-accepted
	if c := dialFrom(t, "127.0.0.1", addr); !refused(c, 2*time.Second) {
		t.Fatal("second connection kept past the limit of 1")
	}
	sc.Close()
	sc.Close()
	if l.Open() != 0 {
		t.Fatalf("open = %d after close, want 0", l.Open())
	}
	dialFrom(t, "127.0.0.1", addr)
	select {
	case sc = <-accepted:
		sc.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("the freed place was not given to the next connection")
	}
	if l.Open() != 0 || l.Refused() != 1 {
		t.Fatalf("open %d refused %d, want 0 and 1", l.Open(), l.Refused())
	}
}
