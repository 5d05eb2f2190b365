package storetest

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/imcall/b2bua/registry"
)

func snapshot(node, key, callID string, started time.Time) registry.DialogSnapshot {
	return registry.DialogSnapshot{Node: node, Key: key, CallID: callID, StartedAt: started, Legs: []registry.DialogLeg{
		{CallID: callID, LocalURI: "<sip:bob@im.test>", LocalTag: "b2b", RemoteURI: "<sip:alice@im.test>", RemoteTag: "a",
			LocalSeq: 1, Target: "sip:alice@127.0.0.1:5070", RouteSet: []string{"<sip:127.0.0.9;lr>"}, Dest: "127.0.0.1:5070", Transport: "UDP"},
		{CallID: "far-" + callID, LocalURI: "<sip:alice@im.test>", LocalTag: "c", RemoteURI: "<sip:bob@im.test>", RemoteTag: "t",
			LocalSeq: 2, Target: "sip:127.0.0.1:5062", Dest: "127.0.0.1:5062", Transport: "TCP"},
	}}
}

func testDialogSnapshots(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.open(t)
	t0 := time.Unix(1700000000, 0).UTC()
	a1, a2, b1 := snapshot("a", "k1", "c1", t0), snapshot("a", "k2", "c2", t0.Add(time.Second)), snapshot("b", "k1", "c3", t0)
	// A leg still ringing keeps what its CANCEL repeats.
	b1.Legs[1].Invite = &registry.PendingInvite{RequestURI: "sip:127.0.0.1:5062", Via: "SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK.x",
		CSeq: 2, RouteSet: []string{"<sip:127.0.0.9;lr>"}, Dest: "127.0.0.1:5062"}
	if err := s.PutDialogs(ctx, []registry.DialogSnapshot{a1, a2, b1}, nil); err != nil {
		t.Fatal(err)
	}
	// A second put of a key replaces it; gone deletes in the same step.
	a1.Legs[1].LocalSeq = 7
	if err := s.PutDialogs(ctx, []registry.DialogSnapshot{a1}, []registry.DialogKey{{Node: "a", Key: "k2"}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Dialogs(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if want := []registry.DialogSnapshot{a1}; !reflect.DeepEqual(got, want) {
		t.Errorf("node a:\n got %+v\nwant %+v", got, want)
	}
	if got, _ := s.Dialogs(ctx, "b"); !reflect.DeepEqual(got, []registry.DialogSnapshot{b1}) {
		t.Errorf("node b: %+v", got)
	}
}

func testEndLeftover(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.open(t)
	t0 := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)
	recs := []registry.CallRecord{
		{CallID: "c1", Caller: "sip:alice@im.test", Callee: "bob", StartedAt: t0, AnsweredAt: t0.Add(time.Second)}, // left open
		{CallID: "c1", Caller: "sip:alice@im.test", Callee: "bob", StartedAt: t0.Add(-time.Hour), AnsweredAt: t0.Add(-time.Hour),
			EndedAt: t0.Add(-time.Hour + time.Second), EndCause: "caller BYE"}, // an earlier call, same Call-ID, closed
		{CallID: "c2", Caller: "sip:carol@im.test", Callee: "bob", StartedAt: t0, AnsweredAt: t0}, // another call, open
	}
	if _, err := s.WriteCalls(ctx, recs); err != nil {
		t.Fatal(err)
	}
	d := snapshot("a", "k1", "c1", t0)
	if err := s.PutDialogs(ctx, []registry.DialogSnapshot{d}, nil); err != nil {
		t.Fatal(err)
	}
	end := t0.Add(30 * time.Second)
	if err := s.EndLeftover(ctx, d, end, "node restarted"); err != nil {
		t.Fatal(err)
	}
	got, err := s.Calls(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[int64]registry.CallRecord{}
	for _, r := range got {
		byID[r.ID] = r
	}
	tests := []struct {
		name  string
		id    int64
		ended time.Time
		cause string
	}{
		{"open record of the call", recs[0].ID, end, "node restarted"},
		{"earlier call with the Call-ID", recs[1].ID, recs[1].EndedAt, "caller BYE"},
		{"another call", recs[2].ID, time.Time{}, ""},
	}
	for _, tt := range tests {
		r := byID[tt.id]
		if !r.EndedAt.Equal(tt.ended) || r.EndCause != tt.cause {
			t.Errorf("%s: ended %v %q, want %v %q", tt.name, r.EndedAt, r.EndCause, tt.ended, tt.cause)
		}
	}
	if left, _ := s.Dialogs(ctx, "a"); len(left) != 0 {
		t.Errorf("snapshot kept: %+v", left)
	}
}
