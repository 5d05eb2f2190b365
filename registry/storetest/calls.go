package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/imcall/b2bua/registry"
)

// TestListCalls checks each filter against records with known outcomes in
// a SQLite file.
func testListCalls(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.open(t)
	t0 := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	recs := []registry.CallRecord{
		{CallID: "1", Caller: "sip:carol@im.example", Callee: "alice", SCPOutcome: "online 127.0.0.1:5062",
			StartedAt: t0, AnsweredAt: t0.Add(2 * time.Second), EndedAt: t0.Add(time.Minute), EndCause: "caller BYE"},
		{CallID: "2", Caller: "sip:carol@im.example", Callee: "bob", SCPOutcome: "busy",
			StartedAt: t0.Add(time.Hour), EndedAt: t0.Add(time.Hour + time.Second), EndCause: "486 Busy Here", SIPStatus: 486, Q850Cause: 17},
		{CallID: "3", Caller: "sip:alice@im.example", Callee: "dave", SCPOutcome: "online 127.0.0.1:5062",
			StartedAt: t0.Add(2 * time.Hour), EndedAt: t0.Add(2*time.Hour + time.Second), EndCause: "486 Busy Here"},
		{CallID: "4", Caller: "sip:a_ice@im.example", Callee: "erin", StartedAt: t0.Add(3 * time.Hour)},
	}
	for _, r := range recs {
		if _, err := s.StartCall(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		f    registry.CallFilter
		want []string // call IDs, newest first
	}{
		{"all", registry.CallFilter{}, []string{"4", "3", "2", "1"}},
		{"limit", registry.CallFilter{Limit: 2}, []string{"4", "3"}},
		{"cursor", registry.CallFilter{BeforeID: 3, Limit: 5}, []string{"2", "1"}},
		{"since", registry.CallFilter{Since: t0.Add(90 * time.Minute)}, []string{"4", "3"}},
		{"since is inclusive", registry.CallFilter{Since: t0.Add(3 * time.Hour)}, []string{"4"}},
		{"callee or caller", registry.CallFilter{IMID: "alice"}, []string{"3", "1"}},
		{"underscore is no wildcard", registry.CallFilter{IMID: "a_ice"}, []string{"4"}},
		{"busy by SCP and by answer", registry.CallFilter{Outcome: "busy"}, []string{"3", "2"}},
		{"outcome pages past the limit", registry.CallFilter{Outcome: "answered", Limit: 1}, []string{"1"}},
		{"active", registry.CallFilter{Outcome: "active"}, []string{"4"}},
		{"outcome and user", registry.CallFilter{Outcome: "busy", IMID: "bob"}, []string{"2"}},
		{"none", registry.CallFilter{Outcome: "scp-down"}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.ListCalls(ctx, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			ids := []string{}
			for _, r := range got {
				ids = append(ids, r.CallID)
			}
			if !slices.Equal(ids, tt.want) {
				t.Errorf("ListCalls(%+v) = %v, want %v", tt.f, ids, tt.want)
			}
		})
	}
	busy, err := s.ListCalls(ctx, registry.CallFilter{IMID: "bob"})
	if err != nil || len(busy) != 1 || busy[0].SIPStatus != 486 || busy[0].Q850Cause != 17 {
		t.Errorf("answer and cause not read back: %+v, %v", busy, err)
	}
	if _, err := s.ListCalls(ctx, registry.CallFilter{Outcome: "lost"}); err == nil {
		t.Error("unknown outcome: no error")
	}
}
