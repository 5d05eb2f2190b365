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
	mu    sync.Mutex
	flows map[string]map[string]func() // flow → watchers by name
}

// flowID names the flow a message of transport came on from remote.
func flowID(transport, remote string) string {
	return strings.ToLower(transport) + " " + remote
}

// streamTransport tells whether transport runs over a connection.
func streamTransport(transport string) bool {
	t := strings.ToLower(transport)
	return t == "tcp" || t == "tls"
}

// opened records a flow accepted just now.
func (t *flowTable) opened(id string) {
	t.mu.Lock()
	if t.flows == nil {
		t.flows = map[string]map[string]func(){}
	}
	t.flows[id] = map[string]func(){}
	t.mu.Unlock()
}

// closed forgets the flow and runs its watchers, each once.
func (t *flowTable) closed(id string) {
	t.mu.Lock()
	ws := t.flows[id]
	delete(t.flows, id)
	t.mu.Unlock()
	for _, fn := range ws {
		fn()
	}
}

// watch runs fn once flow id fails; a watcher of the same name replaces
// the one before it. False when the flow is not open (it failed already,
// or was never a flow we accepted); fn is not run then.
func (t *flowTable) watch(id, name string, fn func()) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	ws, ok := t.flows[id]
	if ok {
		ws[name] = fn
	}
	return ok
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
// on fails (RFC 5626 §6: a flow-bound binding lasts as long as its flow).
// False when req came over a flow that has failed already.
func (s *Server) watchLogin(req *sipmsg.Request, aor, key string) bool {
	if !streamTransport(req.Transport()) {
		return true
	}
	src := req.Source()
	id := flowID(req.Transport(), src)
	return s.flows.watch(id, "login "+aor+" "+key, func() { s.flowLoginEnded(aor, key, src) })
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
