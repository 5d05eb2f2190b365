package sip

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/scp/sim"
)

type noTerminals struct{}

func (noTerminals) ActiveTerminal(context.Context, string) (registry.Terminal, error) {
	return registry.Terminal{}, registry.ErrNotFound
}

// TestServeEndsWhenAListenerDies: a listener that stops without Serve's
// context ending is SIP down; Serve says so with an error, which the
// daemon turns into a failed /healthz and serve into a non-zero exit.
func TestServeEndsWhenAListenerDies(t *testing.T) {
	loc, err := sim.New(sim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(Config{Domain: "im.test", Terminals: noTerminals{}, Locator: loc, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background()) }()
	<-s.Ready()
	s.ln.Load().tcp.Close() // as if the socket were torn away
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Serve returned nil for a dead listener")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not end when its TCP listener died")
	}
}

// failingListener fails its first n accepts with err, then blocks until
// closed.
type failingListener struct {
	net.Listener
	n   int
	err error
}

func (f *failingListener) Accept() (net.Conn, error) {
	if f.n > 0 {
		f.n--
		return nil, f.err
	}
	return f.Listener.Accept()
}

// TestGuardListenerRetries: accept errors such as EMFILE are retried, with
// a warning; a close ends Accept.
func TestGuardListenerRetries(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	fl := &failingListener{Listener: raw, n: 3, err: &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}}
	g := newGuardListener(fl, nil, ConnLimits{}.withDefaults(), slog.New(slog.NewTextHandler(&log, nil)), nil)
	client, err := net.Dial("tcp", raw.Addr().String()) // waits in the backlog
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c, err := g.Accept()
	if err != nil {
		t.Fatalf("Accept after 3 EMFILEs: %v", err)
	}
	c.Close()
	if g.AcceptFailures() != 3 || !strings.Contains(log.String(), "too many open files") {
		t.Errorf("failures %d, log %q", g.AcceptFailures(), log.String())
	}
	g.Close()
	if _, err := g.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v", err)
	}
}
