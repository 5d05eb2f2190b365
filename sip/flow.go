package sip

import (
	"context"
	"strings"
	"sync"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

// flowTable knows the stream connections (TCP, TLS) open now and what
// lives on each: the logins registered over one, the near legs of
// dual-path calls whose INVITE came on one. A flow that fails (the peer
// closes or resets it, or its keep-alives stop and the idle timeout closes
// it, RFC 5626 §4.4) ends what depends on it: a client can only be reached
// on the flow it registered over (its REGISTER's source), and a near leg
// whose flow broke is a dead path.
type flowTable struct {
	mu sync.Mutex
	// flows holds the open flows' watchers by name, and nil for a flow
	// that failed lately (so that a message read off it before it failed
	// learns so); gone lists those in the order they failed.
	flows map[string]map[string]func()
	gone  []goneFlow
	now   func() time.Time // nil: time.Now
}

type goneFlow struct {
	id string
	at time.Time
}

// flowMemory is how long a failed flow is remembered as failed.
const flowMemory = time.Minute

// What watch found of a flow.
const (
	flowWatched = iota // open: the watcher runs when it fails
	flowFailed         // it failed already
	flowUnknown        // not a flow we accepted (UDP, or a connection we opened)
)

// flowID names the flow a message of transport came on from remote.
func flowID(transport, remote string) string {
	return strings.ToLower(transport) + " " + remote
}

// streamTransport tells whether transport runs over a connection.
func streamTransport(transport string) bool {
	t := strings.ToLower(transport)
	return t == "tcp" || t == "tls"
}

func (t *flowTable) clock() time.Time {
	if t.now != nil {
		return t.now()
	}
	return time.Now()
}

// opened records a flow accepted just now.
func (t *flowTable) opened(id string) {
	t.mu.Lock()
	if t.flows == nil {
		t.flows = map[string]map[string]func(){}
	}
	// Forget the flows that failed long enough ago.
	now := t.clock()
	n := 0
	for n < len(t.gone) && now.Sub(t.gone[n].at) > flowMemory {
		if ws, ok := t.flows[t.gone[n].id]; ok && ws == nil {
			delete(t.flows, t.gone[n].id)
		}
		n++
	}
	t.gone = t.gone[n:]
	t.flows[id] = map[string]func(){}
	t.mu.Unlock()
}

// closed marks the flow failed and runs its watchers, each once.
func (t *flowTable) closed(id string) {
	t.mu.Lock()
	ws := t.flows[id]
	if ws != nil {
		t.flows[id] = nil
		t.gone = append(t.gone, goneFlow{id: id, at: t.clock()})
	}
	t.mu.Unlock()
	for _, fn := range ws {
		fn()
	}
}

// watch runs fn once flow id fails, if it is open (flowWatched); a
// watcher of the same name replaces the one before it. fn is not run for
// a flow that failed already (flowFailed) or that we do not know
// (flowUnknown).
func (t *flowTable) watch(id, name string, fn func()) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	ws, ok := t.flows[id]
	switch {
	case !ok:
		return flowUnknown
	case ws == nil:
		return flowFailed
	}
	ws[name] = fn
	return flowWatched
}

// unwatch drops a watcher, if the flow still has it.
func (t *flowTable) unwatch(id, name string) {
	t.mu.Lock()
	if ws := t.flows[id]; ws != nil {
		delete(ws, name)
	}
	t.mu.Unlock()
}

// watchLogin ends aor's login key when the stream flow its REGISTER came
// on fails (RFC 5626 §6: a flow-bound binding lasts as long as its flow),
// at once if it has failed already. A REGISTER on a connection we opened
// ourselves has no flow we watch: its login lasts until it expires.
func (s *Server) watchLogin(req *sipmsg.Request, aor, key string) {
	if !streamTransport(req.Transport()) {
		return
	}
	src := req.Source()
	id := flowID(req.Transport(), src)
	if s.flows.watch(id, "login "+aor+" "+key, func() { s.flowLoginEnded(aor, key, src) }) == flowFailed {
		s.flowLoginEnded(aor, key, src)
	}
}

// flowLoginEnded removes aor's binding key if it still names the flow from
// src: a client that registered again over a new flow keeps its login.
func (s *Server) flowLoginEnded(aor, key, src string) {
	if !s.wg.TryAdd() {
		return // shutting down: the store may be closing
	}
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		bs, err := s.cfg.Bindings.Bindings(ctx, aor, time.Now())
		if err != nil {
			s.log.Warn("login of a failed flow not ended", "aor", aor, "err", err)
			return
		}
		for _, b := range bs {
			if b.Key() != key || b.Source != src {
				continue
			}
			if err := s.cfg.Bindings.RemoveBinding(ctx, aor, key); err != nil {
				s.log.Warn("login of a failed flow not ended", "aor", aor, "err", err)
				return
			}
			s.log.Info("login ended: its flow failed", "aor", aor, "source", src)
		}
	}()
}
