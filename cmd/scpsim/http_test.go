package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imcall/b2bua/httpserver"
	"github.com/imcall/b2bua/scp"
)

type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestServeHTTPSlowClients runs serve's HTTP SCP with shortened bounds and
// holds connections open the ways a slow client does: each is closed within
// its bound, a wrong token at once.
func TestServeHTTPSlowClients(t *testing.T) {
	const bound = 300 * time.Millisecond
	const slack = 2 * time.Second
	const token = "scp-slow-test-token"
	addr := startInProcess(t, serveConfig{HTTPAddr: "127.0.0.1:0", Token: token,
		HTTP: httpserver.Config{ReadHeaderTimeout: bound, ReadTimeout: 2 * bound, IdleTimeout: bound}})

	put := "PUT /scp/v1/subscribers/imsi:001010000000001 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n"
	for _, tc := range []struct {
		name, request string
		bound         time.Duration
		want          string
	}{
		{"locate, headers unfinished", "GET /scp/v1/locate?id=imsi:001010000000001 HTTP/1.1\r\nHost: x\r\n", bound, ""},
		{"admin, short body, wrong token", put + "Authorization: Bearer wrong\r\n\r\n{\"addr\":", 0, "HTTP/1.1 401"},
		{"admin, short body, right token", put + "Authorization: Bearer " + token + "\r\n\r\n{\"addr\":", 2 * bound, ""},
		{"health, idle after an answer", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", bound, "HTTP/1.1 200"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, tc.request)
			start := time.Now()
			c.SetReadDeadline(start.Add(tc.bound + slack))
			got, err := io.ReadAll(c)
			took := time.Since(start)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("still open after %v; read %q", tc.bound+slack, got)
			}
			if !strings.HasPrefix(string(got), tc.want) {
				t.Fatalf("answer %q, want %q", got, tc.want)
			}
			if tc.bound == 0 && took >= bound {
				t.Errorf("refusal closed after %v, want at once", took)
			}
			t.Logf("closed after %v", took.Round(time.Millisecond))
		})
	}
}

// startInProcess runs serve's listeners in this process until the test
// ends and returns the HTTP address.
func startInProcess(t *testing.T, cfg serveConfig) string {
	t.Helper()
	var logs logBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runServe(ctx, cfg, slog.New(slog.NewTextHandler(&logs, nil))) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("runServe: %v", err)
		}
	})
	listening := regexp.MustCompile(`msg="scpsim listening" proto=http addr=(\S+)`)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if m := listening.FindStringSubmatch(logs.String()); m != nil {
			return m[1]
		}
	}
	t.Fatalf("scpsim did not start:\n%s", logs.String())
	return ""
}

// TestServeHTTPErrorsAreJSON: paths ServeMux would redirect reach the
// protocol's handler and get its JSON error.
func TestServeHTTPErrorsAreJSON(t *testing.T) {
	addr := startInProcess(t, serveConfig{HTTPAddr: "127.0.0.1:0"})
	for _, p := range []string{"/scp", "/scp/v1", "/scp/v1//subscribers", "/scp/v1/./subscribers", "//scp/v1/locate", "/scp/v1/subscribers/"} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET "+p+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		got, _ := io.ReadAll(c)
		c.Close()
		if !strings.HasPrefix(string(got), "HTTP/1.1 404") || !strings.Contains(string(got), "Content-Type: application/json") || !strings.Contains(string(got), `{"error":{"code":"not_found"`) {
			t.Errorf("GET %s: %q, want 404 with the JSON error", p, got)
		}
	}
}

// TestServeOpenAPI: the protocol's OpenAPI document is served at
// /scp/v1/openapi.yaml, without the token the other routes want.
func TestServeOpenAPI(t *testing.T) {
	addr := startInProcess(t, serveConfig{HTTPAddr: "127.0.0.1:0", Token: "sekrit"})
	res, err := http.Get("http://" + addr + scp.OpenAPIPath)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/yaml" || !bytes.Equal(b, scp.OpenAPI()) {
		t.Errorf("%s: %d %q, %d bytes", scp.OpenAPIPath, res.StatusCode, res.Header.Get("Content-Type"), len(b))
	}
	if res, err := http.Get("http://" + addr + "/scp/v1/subscribers"); err != nil || res.StatusCode != 401 {
		t.Errorf("subscribers without the token: %v %v", res, err)
	}
}
