package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imcall/b2bua/connlimit"
	"github.com/imcall/b2bua/httpserver"
)

const httpTestToken = "http-test-token"

// startHTTP runs the daemon with the HTTP bounds of cfg until the test
// ends.
func startHTTP(t *testing.T, hc httpserver.Config) *Daemon {
	t.Helper()
	dir := t.TempDir()
	d, err := Start(context.Background(), Config{
		DBPath:     filepath.Join(dir, "b2bua.db"),
		Domain:     "127.0.0.1",
		SIPListen:  "127.0.0.1:0",
		HTTPListen: "127.0.0.1:0",
		APIToken:   httpTestToken,
		Media:      MediaPassthrough,
		HTTP:       hc,
		Logger:     slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func dialHTTP(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	dl := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 2 * time.Second}
	c, err := dl.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestHTTPSlowClients: the daemon's one HTTP listener (API, media links,
// metrics, health) closes slow and silent clients within its bounds, and
// a wrong token with a short body at once, not after minutes.
func TestHTTPSlowClients(t *testing.T) {
	const bound = 300 * time.Millisecond
	const slack = 2 * time.Second
	d := startHTTP(t, httpserver.Config{ReadHeaderTimeout: bound, ReadTimeout: 2 * bound, IdleTimeout: bound})
	for _, tc := range []struct {
		name, request string
		bound         time.Duration
		want          string
	}{
		{"API, short body, wrong token", "POST /api/v1/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"im_id\":", 0, "HTTP/1.1 401"},
		{"API, short body, no token", "POST /api/v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"im_id\":", 0, "HTTP/1.1 401"},
		{"API, short body, right token", "POST /api/v1/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + httpTestToken + "\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"im_id\":", 2 * bound, "HTTP/1.1 400"},
		{"SCP admin, short body, wrong token", "PUT /scp/v1/subscribers/imsi:001010000000001 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{", 0, "HTTP/1.1 401"},
		{"media link, headers unfinished", "GET /media/abc HTTP/1.1\r\nHost: x\r\n", bound, ""},
		{"health, idle after an answer", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", bound, "HTTP/1.1 200"},
		{"silent", "", bound, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialHTTP(t, "127.0.0.1", d.HTTPAddr())
			io.WriteString(c, tc.request)
			start := time.Now()
			c.SetReadDeadline(start.Add(tc.bound + slack))
			got, err := io.ReadAll(c)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("still open after %v; read %q", tc.bound+slack, got)
			}
			if !strings.HasPrefix(string(got), tc.want) {
				t.Fatalf("answer %q, want %q", got, tc.want)
			}
			took := time.Since(start)
			if tc.bound == 0 && took >= bound {
				// A refusal does not wait for the rest of the body.
				t.Errorf("refusal closed after %v, want at once", took)
			}
			t.Logf("closed after %v", took.Round(time.Millisecond))
		})
	}
}

// TestHTTPConnectionLimit: idle connections from one source beyond the
// per-source limit are refused at once, and another source is still
// served.
func TestHTTPConnectionLimit(t *testing.T) {
	const perSource = 8
	d := startHTTP(t, httpserver.Config{Conns: connlimit.Config{MaxConns: 100, MaxConnsPerSource: perSource}})
	for range perSource {
		dialHTTP(t, "127.0.0.1", d.HTTPAddr())
	}
	over := dialHTTP(t, "127.0.0.1", d.HTTPAddr())
	over.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := over.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("connection %d from one source: read err %v, want it closed at once", perSource+1, err)
	}
	c := dialHTTP(t, "127.0.0.2", d.HTTPAddr())
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz from another source: %v %v", resp, err)
	}
	resp.Body.Close()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestHTTPAPIErrorsAreJSON: paths that the daemon's ServeMux would clean
// with a redirect reach the API they name (provisioning, SCP admin), which
// answers JSON.
func TestHTTPAPIErrorsAreJSON(t *testing.T) {
	d := startHTTP(t, httpserver.Config{})
	for _, p := range []string{"/api", "/api/v1", "/api/v2/users", "//api/v1/users", "/api/v1//users", "/api/v1/./users", "/x/../api/v1/users", "/api/v1/users/",
		"/scp", "/scp/v1", "/scp/v1//subscribers", "/scp/v1/./subscribers", "//scp/v1/subscribers", "/scp/v2/locate"} {
		t.Run(p, func(t *testing.T) {
			c := dialHTTP(t, "127.0.0.1", d.HTTPAddr())
			c.SetDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n", p, httpTestToken)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var eb struct {
				Error struct{ Code, Message string }
			}
			if resp.StatusCode != 404 || resp.Header.Get("Content-Type") != "application/json" || json.Unmarshal(b, &eb) != nil || eb.Error.Code != "not_found" {
				t.Fatalf("%d %q %q (Location %q), want 404 with the API's JSON error", resp.StatusCode, resp.Header.Get("Content-Type"), b, resp.Header.Get("Location"))
			}
		})
	}
}
