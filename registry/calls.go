package registry

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// CallFilter selects call records. The zero value selects every record.
type CallFilter struct {
	Since    time.Time // records that started at or after Since; zero: no bound
	IMID     string    // records where this user is the callee or the caller; empty: all
	Outcome  string    // one of Outcomes; empty: all
	BeforeID int64     // cursor: records with an ID below it (the next page); 0: from the newest
	Limit    int       // at most this many; 0 or less: 100
}

// CallStore lists call records.
type CallStore interface {
	// ListCalls returns the records f selects, newest first.
	ListCalls(ctx context.Context, f CallFilter) ([]CallRecord, error)
}

// Outcomes are the values Outcome returns, and the only values
// CallFilter.Outcome takes.
var Outcomes = []string{"active", "answered", "busy", "absent", "unknown", "scp-down", "cancelled", "no-answer", "failed"}

// ParseOutcome validates an outcome filter.
func ParseOutcome(s string) (string, error) {
	for _, o := range Outcomes {
		if s == o {
			return s, nil
		}
	}
	return "", invalid("outcome", "must be one of "+strings.Join(Outcomes, ", "))
}

// Outcome classifies a record from what it holds: the SCP's answer first
// (it decided the call before any leg rang), then the end cause, whose
// leading status code is the final answer the caller got.
func (r CallRecord) Outcome() string {
	switch {
	case r.EndedAt.IsZero():
		return "active"
	case !r.AnsweredAt.IsZero():
		return "answered"
	}
	switch r.SCPOutcome {
	case "busy":
		return "busy"
	case "absent":
		return "absent"
	case "unknown":
		return "unknown"
	case "timeout", "unavailable":
		return "scp-down"
	}
	switch r.EndCause {
	case "caller CANCEL":
		return "cancelled"
	case "ring timeout":
		return "no-answer"
	}
	switch r.FinalStatus() {
	case 486, 600:
		return "busy"
	case 480:
		return "absent"
	case 404, 604:
		return "unknown"
	case 408:
		return "no-answer"
	case 487:
		return "cancelled"
	}
	return "failed"
}

// FinalStatus is the final answer the caller got: 200 for an answered
// call, else the recorded failure answer, else (a record written before
// answers were recorded) the status code the end cause starts with ("486
// busy"); 0 when none was sent (the caller hung up first).
func (r CallRecord) FinalStatus() int {
	switch {
	case !r.AnsweredAt.IsZero():
		return 200
	case r.SIPStatus != 0:
		return r.SIPStatus
	}
	code, _, _ := strings.Cut(r.EndCause, " ")
	n, err := strconv.Atoi(code)
	if err != nil || len(code) != 3 || n < 300 || n > 699 {
		return 0
	}
	return n
}

// CallSummary is a record as operators read it: the CLI and the API print
// it and the SIP server logs it when a call ends.
type CallSummary struct {
	ID         int64      `json:"id"`
	CallID     string     `json:"call_id"`
	Caller     string     `json:"caller"`
	Callee     string     `json:"callee"`
	TerminalID int64      `json:"terminal_id,omitempty"`
	SCPOutcome string     `json:"scp_outcome,omitempty"`
	Outcome    string     `json:"outcome"`
	SIPStatus  int        `json:"sip_status,omitempty"`
	Q850Cause  int        `json:"q850_cause,omitempty"`
	EndCause   string     `json:"end_cause,omitempty"`
	StartedAt  time.Time  `json:"started_at"`
	RingingAt  *time.Time `json:"ringing_at,omitempty"`
	AnsweredAt *time.Time `json:"answered_at,omitempty"`
	EndedAt    *time.Time `json:"ended_at,omitempty"`
	// PostDialSeconds is the post-dial delay (ITU-T E.431): from the
	// INVITE to the first ringing, or to the answer of a call that never
	// rang; absent for a call that did neither.
	PostDialSeconds *float64        `json:"post_dial_delay_seconds,omitempty"`
	SetupSeconds    *float64        `json:"setup_seconds,omitempty"` // start to answer
	TalkSeconds     *float64        `json:"talk_seconds,omitempty"`  // answer to end
	TotalSeconds    *float64        `json:"total_seconds,omitempty"` // start to end
	Stats           json.RawMessage `json:"stats,omitempty"`         // per-leg media counters
	Node            string          `json:"node,omitempty"`          // the node that handled it
}

// Summary derives the summary of r.
func (r CallRecord) Summary() CallSummary {
	s := CallSummary{ID: r.ID, CallID: r.CallID, Caller: r.Caller, Callee: r.Callee, TerminalID: r.TerminalID,
		SCPOutcome: r.SCPOutcome, Outcome: r.Outcome(), SIPStatus: r.FinalStatus(), Q850Cause: r.Q850Cause, EndCause: r.EndCause,
		StartedAt: r.StartedAt.UTC(), Node: r.Node}
	secs := func(d time.Duration) *float64 { v := d.Round(time.Millisecond).Seconds(); return &v }
	if !r.RingingAt.IsZero() {
		t := r.RingingAt.UTC()
		s.RingingAt, s.PostDialSeconds = &t, secs(r.RingingAt.Sub(r.StartedAt))
	}
	if !r.AnsweredAt.IsZero() {
		t := r.AnsweredAt.UTC()
		s.AnsweredAt, s.SetupSeconds = &t, secs(r.AnsweredAt.Sub(r.StartedAt))
		if s.PostDialSeconds == nil {
			s.PostDialSeconds = s.SetupSeconds
		}
	}
	if !r.EndedAt.IsZero() {
		t := r.EndedAt.UTC()
		s.EndedAt, s.TotalSeconds = &t, secs(r.EndedAt.Sub(r.StartedAt))
		if !r.AnsweredAt.IsZero() {
			s.TalkSeconds = secs(r.EndedAt.Sub(r.AnsweredAt))
		}
	}
	if r.Stats != "" && json.Valid([]byte(r.Stats)) {
		s.Stats = json.RawMessage(r.Stats)
	}
	return s
}

// LogAttrs are the summary's fields as one log line's attributes. A record
// holds no secret: URIs and IM IDs, never a credential.
func (s CallSummary) LogAttrs() []any {
	a := []any{"call", s.CallID, "caller", s.Caller, "callee", s.Callee, "outcome", s.Outcome,
		"started", s.StartedAt.Format(time.RFC3339Nano)}
	if s.TerminalID != 0 {
		a = append(a, "terminal", s.TerminalID)
	}
	if s.SCPOutcome != "" {
		a = append(a, "scp", s.SCPOutcome)
	}
	if s.SIPStatus != 0 {
		a = append(a, "sip_status", s.SIPStatus)
	}
	if s.Q850Cause != 0 {
		a = append(a, "q850_cause", s.Q850Cause)
	}
	if s.EndCause != "" {
		a = append(a, "cause", s.EndCause)
	}
	for _, d := range []struct {
		k string
		v *float64
	}{{"pdd_s", s.PostDialSeconds}, {"setup_s", s.SetupSeconds}, {"talk_s", s.TalkSeconds}, {"total_s", s.TotalSeconds}} {
		if d.v != nil {
			a = append(a, d.k, *d.v)
		}
	}
	if len(s.Stats) > 0 {
		a = append(a, slog.String("stats", string(s.Stats)))
	}
	return a
}
