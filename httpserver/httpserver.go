// Package httpserver runs every HTTP server of the product (the B2BUA's
// provisioning API, media links, metrics and health; scpsim's HTTP SCP) with
// the same bounds, so that a slow, silent or idle client holds a connection
// for seconds, not minutes, and a crowd of them cannot grow memory without
// bound:
//
//   - ReadHeaderTimeout: the request line and headers must arrive within
//     it (slowloris);
//   - ReadTimeout: the whole request, body included, within it, so a short
//     body is not waited for, even after a 401 for a wrong token (net/http
//     reads what is left of a body after the handler);
//   - WriteTimeout: the answer must be taken within it;
//   - IdleTimeout: a keep-alive connection waiting for its next request;
//   - MaxHeaderBytes, and MaxBodyBytes on every route (http.MaxBytesReader),
//     whatever the handler reads;
//   - open connections in total and per source (package connlimit), refused
//     at once past the limit.
package httpserver

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/imcall/b2bua/connlimit"
)

// Defaults of Config. Every request the product serves is small: API and
// SCP bodies are at most 64 KiB, media links are GETs, so a client that
// needs more than these is not a client but a held connection.
const (
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 15 * time.Second
	DefaultWriteTimeout      = 60 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultMaxHeaderBytes    = 16 << 10
	DefaultMaxBodyBytes      = 64 << 10
)

// Config bounds a Server. Zero fields take the defaults; a negative
// duration or size turns that bound off (WriteTimeout for a handler that
// streams for as long as it is asked, such as the profiler).
type Config struct {
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
	MaxBodyBytes      int64
	// Conns bounds the open connections (connlimit's defaults when zero).
	Conns connlimit.Config
	// Logger receives the server's own errors (TLS handshakes, panics) and
	// connection refusals; nil: slog.Default().
	Logger *slog.Logger
}

// Server is an http.Server bound to a limited listener.
type Server struct {
	srv *http.Server
	ln  *connlimit.Listener
}

// New serves h on ln within cfg's bounds once Serve is called. The server
// owns ln from then on: Shutdown and Close close it.
func New(ln net.Listener, h http.Handler, cfg Config) *Server {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if cfg.Conns.Logger == nil {
		cfg.Conns.Logger = log
	}
	maxBody := pick(cfg.MaxBodyBytes, DefaultMaxBodyBytes)
	return &Server{
		ln: connlimit.New(ln, cfg.Conns),
		srv: &http.Server{
			Handler:           limitBody(h, maxBody),
			ReadHeaderTimeout: pick(cfg.ReadHeaderTimeout, DefaultReadHeaderTimeout),
			ReadTimeout:       pick(cfg.ReadTimeout, DefaultReadTimeout),
			WriteTimeout:      pick(cfg.WriteTimeout, DefaultWriteTimeout),
			IdleTimeout:       pick(cfg.IdleTimeout, DefaultIdleTimeout),
			MaxHeaderBytes:    int(pick(int64(cfg.MaxHeaderBytes), DefaultMaxHeaderBytes)),
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
	}
}

// pick gives def for zero and 0 (net/http's "no bound") for negative.
func pick[T int64 | time.Duration](v, def T) T {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

// limitBody caps every request body. A handler may set a tighter bound of
// its own; without one, reading more than max fails with
// *http.MaxBytesError and the connection is closed after the answer.
func limitBody(h http.Handler, limit int64) http.Handler {
	if limit <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > limit {
			// Refused before a byte of the body is read; closing keeps
			// net/http from reading it afterwards to reuse the connection.
			w.Header().Set("Connection", "close")
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		h.ServeHTTP(w, r)
	})
}

// RefuseNow makes the answer a handler is about to write the connection's
// last, and stops reading the request. Without it net/http reads what is
// left of a body after the handler, to reuse the connection, and so waits on
// a client that sends it slowly for up to ReadTimeout. For refusals (a wrong
// token, a lock-out) where nothing of the body is wanted.
func RefuseNow(w http.ResponseWriter) {
	w.Header().Set("Connection", "close")
	_ = http.NewResponseController(w).SetReadDeadline(time.Now()) // not every writer has a connection (httptest)
}

// Addr is the listener's address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Listener is the limited listener, for its counters.
func (s *Server) Listener() *connlimit.Listener { return s.ln }

// Serve serves until Shutdown or Close; it returns nil then, else the
// listener's error.
func (s *Server) Serve() error {
	if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops accepting, lets requests in flight finish until ctx ends,
// then closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	return err
}

// RegisterOnShutdown calls f when Shutdown begins, for handlers that hold
// a request open (an event stream) and must be told to end it.
func (s *Server) RegisterOnShutdown(f func()) { s.srv.RegisterOnShutdown(f) }

// Close closes the listener and every connection at once.
func (s *Server) Close() error { return s.srv.Close() }

// ServeDocument serves doc as YAML (RFC 9512's application/yaml) to GET
// and HEAD at path, such as an API's OpenAPI document, and passes every
// other request to next.
func ServeDocument(path string, doc []byte, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != path || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/yaml")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(doc)
	})
}
