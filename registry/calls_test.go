package registry

import (
	"testing"
	"time"
)

func TestCallOutcome(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	end := t0.Add(time.Second)
	tests := []struct {
		r      CallRecord
		want   string
		status int
	}{
		{CallRecord{StartedAt: t0}, "active", 0},
		{CallRecord{AnsweredAt: t0, EndedAt: end, EndCause: "caller BYE"}, "answered", 200},
		{CallRecord{AnsweredAt: t0, EndedAt: end, EndCause: "node restarted"}, "answered", 200},
		{CallRecord{EndedAt: end, SCPOutcome: "busy", EndCause: "486 busy"}, "busy", 486},
		{CallRecord{EndedAt: end, SCPOutcome: "online 127.0.0.1:5062", EndCause: "486 Busy Here"}, "busy", 486},
		{CallRecord{EndedAt: end, EndCause: "600 Busy Everywhere"}, "busy", 600},
		{CallRecord{EndedAt: end, SCPOutcome: "absent", EndCause: "480 absent"}, "absent", 480},
		{CallRecord{EndedAt: end, SCPOutcome: "unknown", EndCause: "404 unknown"}, "unknown", 404},
		{CallRecord{EndedAt: end, SCPOutcome: "timeout", EndCause: "504 SCP timeout"}, "scp-down", 504},
		{CallRecord{EndedAt: end, SCPOutcome: "unavailable", EndCause: "503 SCP unavailable"}, "scp-down", 503},
		{CallRecord{EndedAt: end, EndCause: "caller CANCEL"}, "cancelled", 0},
		{CallRecord{EndedAt: end, EndCause: "ring timeout"}, "no-answer", 0},
		{CallRecord{EndedAt: end, EndCause: "408 Request Timeout"}, "no-answer", 408},
		{CallRecord{EndedAt: end, EndCause: "ACK timeout"}, "failed", 0},
		{CallRecord{EndedAt: end, EndCause: "503 Service Unavailable"}, "failed", 503},
		{CallRecord{EndedAt: end, EndCause: "200 OK"}, "failed", 0},
		{CallRecord{EndedAt: end, EndCause: "ring timeout", SIPStatus: 480, Q850Cause: 19}, "no-answer", 480},
		{CallRecord{EndedAt: end, EndCause: "603 declined", SIPStatus: 603, Q850Cause: 21}, "failed", 603},
		{CallRecord{EndedAt: end, EndCause: "callee gone", SIPStatus: 486}, "busy", 486},
	}
	for _, tt := range tests {
		if got := tt.r.Outcome(); got != tt.want {
			t.Errorf("Outcome(%+v) = %q, want %q", tt.r, got, tt.want)
		}
		if got := tt.r.FinalStatus(); got != tt.status {
			t.Errorf("SIPStatus(%q) = %d, want %d", tt.r.EndCause, got, tt.status)
		}
	}
}

func TestCallSummaryDurations(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 12, 0, 0, 0, time.FixedZone("x", 3600))
	r := CallRecord{StartedAt: t0, AnsweredAt: t0.Add(1500 * time.Millisecond), EndedAt: t0.Add(61500 * time.Millisecond), Stats: `{"a":1}`}
	s := r.Summary()
	if *s.SetupSeconds != 1.5 || *s.TalkSeconds != 60 || *s.TotalSeconds != 61.5 {
		t.Errorf("setup %v talk %v total %v, want 1.5 60 61.5", *s.SetupSeconds, *s.TalkSeconds, *s.TotalSeconds)
	}
	if s.StartedAt.Location() != time.UTC || string(s.Stats) != `{"a":1}` {
		t.Errorf("started %v stats %s", s.StartedAt, s.Stats)
	}
	if u := (CallRecord{StartedAt: t0, EndedAt: t0.Add(time.Second)}).Summary(); u.SetupSeconds != nil || u.TalkSeconds != nil || u.AnsweredAt != nil {
		t.Errorf("unanswered summary has answer times: %+v", u)
	}
}
