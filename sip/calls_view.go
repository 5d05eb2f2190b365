package sip

import (
	"context"
	"sort"
	"time"
)

// LiveCall is a call in progress as an operator reads it (the status
// page): who calls whom, since when, and each leg's state.
type LiveCall struct {
	CallID     string    `json:"call_id"`
	Caller     string    `json:"caller"`
	Callee     string    `json:"callee"`
	StartedAt  time.Time `json:"started_at"`
	AnsweredAt time.Time `json:"answered_at,omitzero"`
	Legs       []LiveLeg `json:"legs"`
}

// LiveLeg is one leg of a LiveCall.
type LiveLeg struct {
	ID     LegID  `json:"id"`
	Remote string `json:"remote"` // the peer's URI
	Dest   string `json:"dest,omitempty"`
	// State is "trying", "ringing", "up" or "ended".
	State string `json:"state"`
}

// LiveCalls lists the calls in progress, oldest first. Each call's loop
// reports its own state, so a call whose loop does not answer within ctx
// (busy, or ending at that moment) is left out.
func (s *Server) LiveCalls(ctx context.Context) []LiveCall {
	s.mu.Lock()
	list := make([]*session, 0, len(s.calls))
	for c := range s.calls {
		list = append(list, c)
	}
	s.mu.Unlock()
	got := make(chan LiveCall, len(list))
	asked := 0
	for _, c := range list {
		if c.post(func() { got <- c.view() }) {
			asked++
		}
	}
	var out []LiveCall
	for ; asked > 0; asked-- {
		select {
		case v := <-got:
			out = append(out, v)
		case <-ctx.Done():
			asked = 0
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].StartedAt.Before(out[j].StartedAt) })
	return out
}

// view is the call's state; it runs on the call's loop.
func (c *session) view() LiveCall {
	v := LiveCall{CallID: c.rec.CallID, Caller: c.rec.Caller, Callee: c.rec.Callee,
		StartedAt: c.rec.StartedAt, AnsweredAt: c.rec.AnsweredAt}
	state := func(l *leg, alerted bool) string {
		switch {
		case l.ctx.Err() != nil:
			return "ended"
		case l.up:
			return "up"
		case alerted:
			return "ringing"
		}
		return "trying"
	}
	for _, u := range c.uas {
		v.Legs = append(v.Legs, LiveLeg{ID: u.id, Remote: u.remote.Addr(), State: state(&u.leg, false)})
	}
	for _, l := range c.uac {
		v.Legs = append(v.Legs, LiveLeg{ID: l.id, Remote: l.remote.Addr(), Dest: l.dest, State: state(&l.leg, l.alerted)})
	}
	return v
}

// Draining reports whether Shutdown has begun: new calls are refused.
func (s *Server) Draining() bool { return s.draining.Load() }
