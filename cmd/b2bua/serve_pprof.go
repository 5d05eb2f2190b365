package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"

	"github.com/imcall/b2bua/httpserver"
)

// servePprof serves Go's profiler (/debug/pprof/) on addr, for profiling
// the B2BUA under load with `go tool pprof`. It is off unless --pprof is
// given, on its own listener and mux, so the provisioning API never
// exposes it. The returned stop closes the listener.
func servePprof(addr string, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--pprof: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	// No write timeout: a CPU profile or trace streams for as long as it
	// is asked (?seconds=N).
	srv := httpserver.New(ln, mux, httpserver.Config{WriteTimeout: -1, Logger: log})
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(); err != nil {
			log.Warn("pprof listener stopped", "err", err)
		}
	}()
	log.Info("profiler listening", "addr", ln.Addr().String())
	return func() {
		srv.Shutdown(context.Background()) //nolint:errcheck // a debug listener; profiles in flight are cut
		<-done
	}, nil
}
