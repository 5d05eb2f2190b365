package sip_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"

	"github.com/imcall/b2bua/scp"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// lines returns the JSON log records with message msg.
func (l *lockedBuffer) lines(t *testing.T, msg string) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, ln := range bytes.Split(l.b.Bytes(), []byte("\n")) {
		var m map[string]any
		if json.Unmarshal(ln, &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// TestCallEndedLogAndAnswer checks that a call refused for a busy callee
// leaves one info line and a record with the answer and Q.850 cause the
// caller got.
func TestCallEndedLogAndAnswer(t *testing.T) {
	logs := &lockedBuffer{}
	e := newEnv(t, func(c *b2bConfig) {
		c.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	caller := newPeer(t, "alice")
	e.addUser("busy")
	e.addLegacy("busy", "001010000000002", "", scp.Busy)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _, err := caller.invite(ctx, e.uri("busy"), sipgo.AnswerOptions{})
	var de *sipgo.ErrDialogResponse
	if !errors.As(err, &de) || de.Res.StatusCode != 486 {
		t.Fatalf("invite: %v, want 486", err)
	}
	waitIdle(t, e)

	recs, err := e.store.Calls(ctx, 1)
	if err != nil || len(recs) != 1 {
		t.Fatalf("records %+v, %v", recs, err)
	}
	if r := recs[0]; r.SIPStatus != 486 || r.Q850Cause != 17 || r.Outcome() != "busy" {
		t.Errorf("record answer %d cause %d outcome %s, want 486 17 busy", r.SIPStatus, r.Q850Cause, r.Outcome())
	}
	lines := logs.lines(t, "call ended")
	if len(lines) != 1 {
		t.Fatalf("%d \"call ended\" lines, want 1: %v", len(lines), lines)
	}
	l := lines[0]
	for k, want := range map[string]any{"level": "INFO", "callee": "busy", "outcome": "busy", "sip_status": 486.0,
		"q850_cause": 17.0, "scp": "busy", "cause": "486 user busy"} {
		if l[k] != want {
			t.Errorf("log %s = %v, want %v (line %v)", k, l[k], want, l)
		}
	}
	if l["call"] == "" || l["caller"] == nil || l["started"] == nil || l["total_s"] == nil {
		t.Errorf("log line lacks call, caller, started or total_s: %v", l)
	}
}

// TestPostDialDelayRecorded: a terminal that rings for 300 ms before it
// answers gives a record whose ringing time lies between the start and the
// answer, at least 300 ms before the answer, and a post-dial delay in the
// "call ended" line.
func TestPostDialDelayRecorded(t *testing.T) {
	logs := &lockedBuffer{}
	e := newEnv(t, func(c *b2bConfig) {
		c.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	caller := newPeer(t, "alice")
	term := newPeer(t, "term")
	e.addUser("bob")
	e.addLegacy("bob", "001010000000001", term.addr, scp.Online)
	const ring = 300 * time.Millisecond
	term.setInvite(answerer(term, ring, nil))
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
	recs, err := e.store.Calls(ctx, 1)
	if err != nil || len(recs) != 1 {
		t.Fatalf("records %+v, %v", recs, err)
	}
	r := recs[0]
	if r.RingingAt.IsZero() || r.RingingAt.Before(r.StartedAt) || r.AnsweredAt.Sub(r.RingingAt) < ring {
		t.Errorf("started %v ringing %v answered %v: want ringing after the start and %v before the answer", r.StartedAt, r.RingingAt, r.AnsweredAt, ring)
	}
	s := r.Summary()
	if s.PostDialSeconds == nil || *s.PostDialSeconds >= *s.SetupSeconds {
		t.Errorf("post-dial delay %v, setup %v: want a delay below the setup time", s.PostDialSeconds, *s.SetupSeconds)
	}
	lines := logs.lines(t, "call ended")
	if len(lines) != 1 || lines[0]["pdd_s"] == nil {
		t.Errorf("call ended lines %v: want one with pdd_s", lines)
	}
}
