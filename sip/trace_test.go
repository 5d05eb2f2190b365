package sip_test

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"

	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/scp"
	b2b "github.com/imcall/b2bua/sip"
)

// recTracer keeps what TraceSIP was given.
type recTracer struct {
	mu   sync.Mutex
	msgs []b2b.WireMessage
}

func (r *recTracer) TraceSIP(m b2b.WireMessage) {
	m.Data = append([]byte(nil), m.Data...)
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
}

// startLines are the first lines of the traced messages that went the
// given way between the server and the peer at remote.
func (r *recTracer) startLines(out bool, remote string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var l []string
	for _, m := range r.msgs {
		if m.Out == out && m.Remote.String() == remote {
			line, _, _ := bytes.Cut(m.Data, []byte("\r\n"))
			l = append(l, string(line))
		}
	}
	return l
}

// recObserver keeps the ended calls' summaries.
type recObserver struct {
	mu    sync.Mutex
	calls []registry.CallSummary
	regs  int
}

func (o *recObserver) CallEnded(s registry.CallSummary) {
	o.mu.Lock()
	o.calls = append(o.calls, s)
	o.mu.Unlock()
}
func (o *recObserver) Registered()       { o.mu.Lock(); o.regs++; o.mu.Unlock() }
func (o *recObserver) LimitEvent(string) {}

// TestTracerSeesBothLegs: a call over UDP leaves in the Tracer the
// caller's INVITE, ACK and BYE received and our 100, 180, 200 sent to it,
// and our INVITE, ACK sent to the terminal with its 180 and 200 received,
// each with the right local and remote address; the Observer gets the
// call's summary once.
func TestTracerSeesBothLegs(t *testing.T) {
	tr, obs := &recTracer{}, &recObserver{}
	e := newEnv(t, func(c *b2bConfig) { c.Tracer, c.Observer = tr, obs })
	caller := newPeer(t, "alice")
	term := newPeer(t, "term")
	e.addUser("bob")
	e.addLegacy("bob", "001010000000001", term.addr, scp.Online)
	term.setInvite(answerer(term, 0, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dlg, _, err := caller.invite(ctx, e.uri("bob"), sipgo.AnswerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := dlg.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, e)
	has := func(lines []string, prefixes ...string) bool {
	next:
		for _, p := range prefixes {
			for _, l := range lines {
				if len(l) >= len(p) && l[:len(p)] == p {
					continue next
				}
			}
			return false
		}
		return true
	}
	waitFor(t, func() bool {
		return has(tr.startLines(false, caller.addr), "INVITE ", "ACK ", "BYE ") &&
			has(tr.startLines(true, caller.addr), "SIP/2.0 100", "SIP/2.0 180", "SIP/2.0 200") &&
			has(tr.startLines(true, term.addr), "INVITE ", "ACK ", "BYE ") &&
			has(tr.startLines(false, term.addr), "SIP/2.0 180", "SIP/2.0 200")
	})
	tr.mu.Lock()
	for _, m := range tr.msgs {
		if m.Local != e.srv.Addr() || m.Transport != "udp" || m.Time.IsZero() {
			t.Errorf("traced %s message local %v transport %q time %v, want %v udp", m.Remote, m.Local, m.Transport, m.Time, e.srv.Addr())
			break
		}
	}
	tr.mu.Unlock()
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.calls) != 1 || obs.calls[0].Outcome != "answered" || obs.calls[0].PostDialSeconds == nil {
		t.Errorf("observed calls %+v, want one answered with a post-dial delay", obs.calls)
	}
}
