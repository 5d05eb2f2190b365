package provision

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/imcall/b2bua/registry"
)

// TestCallsAPI pages and filters records in the SQLite file behind the API.
func TestCallsAPI(t *testing.T) {
	e := newEnv(t, token, 0)
	ctx := context.Background()
	t0 := time.Date(2030, 1, 2, 15, 0, 0, 0, time.UTC)
	for i, r := range []registry.CallRecord{
		{CallID: "c1", Caller: "sip:carol@im.example", Callee: "alice", SCPOutcome: "online 127.0.0.1:5062",
			AnsweredAt: t0.Add(1500 * time.Millisecond), EndedAt: t0.Add(31500 * time.Millisecond), EndCause: "callee BYE", Stats: `{"a":{"lost":1}}`},
		{CallID: "c2", Caller: "sip:carol@im.example", Callee: "bob", SCPOutcome: "busy", EndedAt: t0.Add(2 * time.Minute), EndCause: "486 busy"},
		{CallID: "c3", Caller: "sip:alice@im.example", Callee: "bob", EndCause: "caller CANCEL", EndedAt: t0.Add(3 * time.Minute)},
		{CallID: "c4", Caller: "sip:carol@im.example", Callee: "dave"},
	} {
		r.StartedAt = t0.Add(time.Duration(i) * time.Minute)
		if _, err := e.store.StartCall(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(l CallList) string {
		var s []string
		for _, c := range l.Calls {
			s = append(s, c.CallID)
		}
		return strings.Join(s, ",") + fmt.Sprintf(" next=%d", l.NextBefore)
	}
	for _, tc := range []struct{ query, want string }{
		{"", "c4,c3,c2,c1 next=0"},
		{"?limit=2", "c4,c3 next=3"},
		{"?limit=2&before=3", "c2,c1 next=1"},
		{"?limit=2&before=1", " next=0"},
		{"?im=alice", "c3,c1 next=0"},
		{"?outcome=busy", "c2 next=0"},
		{"?outcome=cancelled", "c3 next=0"},
		{"?outcome=active", "c4 next=0"},
		{"?since=2030-01-02T15:02:00Z", "c4,c3 next=0"},
		{"?since=2030-01-02T15:02:00Z&im=bob&outcome=cancelled", "c3 next=0"},
	} {
		var l CallList
		e.must(t, 200, "GET", "/api/v1/calls"+tc.query, "", &l)
		if got := ids(l); got != tc.want {
			t.Errorf("GET /api/v1/calls%s = %s, want %s", tc.query, got, tc.want)
		}
	}

	var l CallList
	e.must(t, 200, "GET", "/api/v1/calls?outcome=answered", "", &l)
	c := l.Calls[0]
	if c.SetupSeconds == nil || *c.SetupSeconds != 1.5 || *c.TalkSeconds != 30 || *c.TotalSeconds != 31.5 ||
		c.SIPStatus != 200 || c.EndCause != "callee BYE" || string(c.Stats) != `{"a":{"lost":1}}` || !c.AnsweredAt.Equal(t0.Add(1500*time.Millisecond)) {
		t.Errorf("answered call = %+v", c)
	}
	r := e.do(t, "GET", "/api/v1/calls?outcome=answered", "")
	if !strings.Contains(string(r.body), `"started_at":"2030-01-02T15:00:00Z"`) {
		t.Errorf("started_at is not RFC 3339 UTC: %s", r.body)
	}

	for _, tc := range []struct{ query, field string }{
		{"?limit=0", "limit"}, {"?limit=1001", "limit"}, {"?limit=x", "limit"},
		{"?before=-1", "before"}, {"?since=tomorrow", "since"},
		{"?outcome=lost", "outcome"}, {"?im=Alice", "im_id"},
	} {
		r := e.do(t, "GET", "/api/v1/calls"+tc.query, "")
		if err := r.err(); r.status != 400 || err.Code != CodeInvalidArgument || err.Field != tc.field {
			t.Errorf("GET /api/v1/calls%s: %d %s, want 400 on %s", tc.query, r.status, r.body, tc.field)
		}
	}
}
