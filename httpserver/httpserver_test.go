package httpserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/imcall/b2bua/connlimit"
)

// start serves h on a loopback listener with cfg until the test ends.
func start(t *testing.T, h http.Handler, cfg Config) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := New(ln, h, cfg)
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

// tokenHandler refuses a wrong token without reading the body, as the
// provisioning API and the SCP do, and otherwise reads the whole body.
var tokenHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer right" {
		RefuseNow(w)
		http.Error(w, "wrong token", http.StatusUnauthorized)
		return
	}
	if _, err := io.ReadAll(r.Body); err != nil {
		var me *http.MaxBytesError
		if errors.As(err, &me) {
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
		return
	}
	io.WriteString(w, "ok")
})

// closedWithin reads from c until the server closes it and reports how
// long that took, failing the test past limit.
func closedWithin(t *testing.T, c net.Conn, limit time.Duration) (time.Duration, string) {
	t.Helper()
	start := time.Now()
	c.SetReadDeadline(start.Add(limit))
	got, err := io.ReadAll(c)
	took := time.Since(start)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v (read %q)", limit, got)
	}
	return took, string(got)
}

func dial(t *testing.T, s *Server) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestSlowClients: each way of holding a connection open ends within its
// bound, here shortened through Config; the defaults are the same code.
func TestSlowClients(t *testing.T) {
	const bound = 300 * time.Millisecond
	// slack covers a loaded machine; it is far below the minutes a client
	// held an unbounded server.
	const slack = 2 * time.Second
	s := start(t, tokenHandler, Config{ReadHeaderTimeout: bound, ReadTimeout: 2 * bound, IdleTimeout: bound})

	for _, tc := range []struct {
		name  string
		send  func(c net.Conn)
		bound time.Duration
		want  string // start of what the server answered before closing
	}{
		{"headers trickled", func(c net.Conn) {
			fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: x\r\n")
			go func() {
				for i := 0; ; i++ {
					time.Sleep(bound / 6)
					if _, err := fmt.Fprintf(c, "X-%d: y\r\n", i); err != nil {
						return
					}
				}
			}()
		}, bound, ""},
		{"silent after connect", func(net.Conn) {}, bound, ""},
		{"short body, wrong token", func(c net.Conn) {
			fmt.Fprint(c, "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\nContent-Length: 1000\r\n\r\n0123456789")
		}, 0, "HTTP/1.1 401"},
		{"short body, right token", func(c net.Conn) {
			fmt.Fprint(c, "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer right\r\nContent-Length: 1000\r\n\r\n0123456789")
		}, 2 * bound, "HTTP/1.1 400"},
		{"idle keep-alive", func(c net.Conn) {
			fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer right\r\n\r\n")
		}, bound, "HTTP/1.1 200"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, s)
			tc.send(c)
			took, got := closedWithin(t, c, tc.bound+slack)
			if !strings.HasPrefix(got, tc.want) {
				t.Errorf("server answered %q, want %q", got, tc.want)
			}
			if tc.bound == 0 && took >= bound {
				// A refusal does not wait for the rest of the body
				// (RefuseNow); ReadTimeout is twice bound.
				t.Errorf("refusal closed after %v, want at once", took)
			}
			t.Logf("closed after %v (bound %v)", took.Round(time.Millisecond), tc.bound)
		})
	}
}

// TestSizeLimits: oversized headers get 431, an oversized body 413 on a
// route that does not bound it itself, and neither is read to the end.
func TestSizeLimits(t *testing.T) {
	s := start(t, tokenHandler, Config{MaxHeaderBytes: 1 << 10, MaxBodyBytes: 100})
	for _, tc := range []struct {
		name, request, want string
	}{
		{"header too large", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 8<<10) + "\r\n\r\n", "HTTP/1.1 431"},
		{"body too large, declared", "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer right\r\nContent-Length: 101\r\n\r\n" + strings.Repeat("a", 101), "HTTP/1.1 413"},
		{"body too large, chunked", "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer right\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"80\r\n" + strings.Repeat("a", 128) + "\r\n0\r\n\r\n", "HTTP/1.1 413"},
		{"body within", "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer right\r\nContent-Length: 100\r\nConnection: close\r\n\r\n" + strings.Repeat("a", 100), "HTTP/1.1 200"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, s)
			fmt.Fprint(c, tc.request)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.Proto + " " + resp.Status; !strings.HasPrefix(got, tc.want) {
				t.Fatalf("answer %q, want %q", got, tc.want)
			}
		})
	}
}

// TestIdleCrowd: many idle connections from one source hold at most the
// per-source limit open; the rest are closed as they arrive, so memory
// stays bounded by the limit, not by the crowd.
func TestIdleCrowd(t *testing.T) {
	const limit, crowd = 20, 300
	s := start(t, tokenHandler, Config{Conns: connlimit.Config{MaxConns: 1000, MaxConnsPerSource: limit}})
	var conns []net.Conn
	for range crowd {
		conns = append(conns, dial(t, s))
	}
	// Every connection past the limit is closed at once.
	closed := 0
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				closed++
			}
		}
	}
	if open := s.Listener().Open(); open > limit || closed != crowd-limit || s.Listener().Refused() != crowd-limit {
		t.Fatalf("open %d, closed %d, refused %d; want at most %d open and %d closed", open, closed, s.Listener().Refused(), limit, crowd-limit)
	}
	// The admitted ones still get answers.
	for _, c := range conns {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer right\r\n\r\n"); err != nil {
			continue
		}
		if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil && resp.StatusCode == 200 {
			resp.Body.Close()
			return
		}
	}
	t.Fatal("no admitted connection was answered")
}

// TestShutdown: Shutdown waits for a request in flight, then Serve returns
// nil.
func TestShutdown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(ln, tokenHandler, Config{Logger: slog.New(slog.DiscardHandler)})
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	res, err := http.Get("http://" + s.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
}
