package storetest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/imcall/b2bua/registry"
)

func testBindings(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.open(t)
	raw := h.Raw(t, s)
	mustUser(t, s, "alice")
	smart, err := s.AddTerminal(ctx, registry.NewTerminal{IMID: "alice", MobileID: registry.MobileID{Type: registry.MAC, Value: "001a2b3c4d5e"}, Kind: registry.Smart})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	b1 := registry.Binding{IMID: "alice", TerminalID: smart.ID, Contact: "sip:alice@192.0.2.1:5060", Source: "192.0.2.1:5060",
		Transport: "UDP", Expires: t0.Add(time.Hour), UpdatedAt: t0}
	b2 := registry.Binding{IMID: "alice", Contact: "sip:alice@192.0.2.2:5060", Instance: "urn:uuid:1", Transport: "tcp",
		Expires: t0.Add(2 * time.Minute), UpdatedAt: t0.Add(time.Second)}
	for _, b := range []registry.Binding{b1, b2} {
		if err := s.PutBinding(ctx, b); err != nil {
			t.Fatalf("PutBinding: %v", err)
		}
	}
	got, err := s.Bindings(ctx, "alice", t0)
	if err != nil {
		t.Fatal(err)
	}
	b1.Transport = "udp"
	if len(got) != 2 || got[0] != b2 || got[1] != b1 {
		t.Fatalf("Bindings = %+v, want [b2 b1]", got)
	}
	// b2 has expired three minutes later.
	if got, _ := s.Bindings(ctx, "alice", t0.Add(3*time.Minute)); len(got) != 1 || got[0] != b1 {
		t.Errorf("Bindings later = %+v, want [b1]", got)
	}
	// A refresh replaces the row.
	b1.Expires, b1.UpdatedAt = t0.Add(2*time.Hour), t0.Add(time.Minute)
	if err := s.PutBinding(ctx, b1); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Bindings(ctx, "alice", t0); len(got) != 2 || got[0] != b1 {
		t.Errorf("after refresh = %+v, want b1 first", got)
	}

	if err := s.PutBinding(ctx, registry.Binding{IMID: "nobody", Contact: "sip:x@192.0.2.9", Expires: t0}); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("unknown user: err = %v, want ErrNotFound", err)
	}
	if err := s.PutBinding(ctx, registry.Binding{IMID: "alice", TerminalID: 999, Contact: "sip:x@192.0.2.9", Expires: t0}); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("unknown terminal: err = %v, want ErrNotFound", err)
	}
	var ve *registry.ValidationError
	if err := s.PutBinding(ctx, registry.Binding{IMID: "alice", Expires: t0}); !errors.As(err, &ve) || ve.Field != "contact" {
		t.Errorf("no contact: err = %v, want ValidationError on contact", err)
	}

	if err := s.RemoveBinding(ctx, "alice", b2.Key()); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Bindings(ctx, "alice", t0); len(got) != 1 || got[0] != b1 {
		t.Errorf("after removing b2 = %+v, want [b1]", got)
	}
	if err := s.RemoveBinding(ctx, "alice", b2.Key()); err != nil {
		t.Errorf("removing a missing binding: %v", err)
	}
	// Removing the terminal removes its binding.
	if err := s.RemoveTerminal(ctx, smart.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Bindings(ctx, "alice", t0); len(got) != 0 {
		t.Errorf("bindings of a removed terminal = %+v", got)
	}
	// Removing the user removes the rest.
	if err := s.PutBinding(ctx, b2); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if n, err := raw.Int(ctx, `SELECT count(*) FROM bindings`); err != nil || n != 0 {
		t.Errorf("bindings after RemoveUser = %d, %v", n, err)
	}
}

func testCallRecords(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.open(t)
	t0 := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	var ids []int64
	for i, callID := range []string{"a@h", "b@h", "c@h"} {
		// Node: the node that handled the call, for a cluster's records.
		id, err := s.StartCall(ctx, registry.CallRecord{CallID: callID, Caller: "sip:carol@im.example", Callee: "alice",
			StartedAt: t0.Add(time.Duration(i) * time.Second), Node: "node" + strconv.Itoa(i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	upd := registry.CallRecord{ID: ids[1], TerminalID: 7, SCPOutcome: "online 127.0.0.1:5062", RingingAt: t0.Add(1500 * time.Millisecond), AnsweredAt: t0.Add(2 * time.Second),
		EndedAt: t0.Add(time.Minute), EndCause: "caller BYE", Stats: `{"a":{"packets":10}}`}
	if err := s.UpdateCall(ctx, upd); err != nil {
		t.Fatal(err)
	}
	calls, err := s.Calls(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 2 || calls[0].ID != ids[2] || calls[1].ID != ids[1] {
		t.Fatalf("Calls(2) = %+v, want newest two", calls)
	}
	want := upd
	want.CallID, want.Caller, want.Callee, want.StartedAt, want.Node = "b@h", "sip:carol@im.example", "alice", t0.Add(time.Second), "node1"
	if calls[1] != want {
		t.Errorf("updated record = %+v, want %+v", calls[1], want)
	}
	if !calls[0].AnsweredAt.IsZero() || !calls[0].EndedAt.IsZero() || calls[0].TerminalID != 0 {
		t.Errorf("untouched record = %+v, want zero times and terminal", calls[0])
	}
	if err := s.UpdateCall(ctx, registry.CallRecord{ID: 999}); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("UpdateCall(999): err = %v, want ErrNotFound", err)
	}
	var ve *registry.ValidationError
	if _, err := s.StartCall(ctx, registry.CallRecord{}); !errors.As(err, &ve) || ve.Field != "call_id" {
		t.Errorf("StartCall without Call-ID: err = %v", err)
	}
	if err := s.UpdateCall(ctx, registry.CallRecord{ID: ids[0], Stats: "{"}); !errors.As(err, &ve) || ve.Field != "stats" {
		t.Errorf("UpdateCall bad stats: err = %v", err)
	}
}

func testWriteCalls(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.open(t)
	t0 := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	old, err := s.StartCall(ctx, registry.CallRecord{CallID: "old@h", Caller: "sip:carol@im.example", Callee: "alice", StartedAt: t0})
	if err != nil {
		t.Fatal(err)
	}
	// More records than one transaction of either store takes (256), so
	// the batch is split.
	const manyCalls = 300
	recs := []registry.CallRecord{
		{ID: old, TerminalID: 3, AnsweredAt: t0.Add(time.Second), EndedAt: t0.Add(time.Minute), EndCause: "callee BYE"},
		{CallID: ""},          // invalid: no Call-ID
		{ID: 999999},          // no such record
		{ID: old, Stats: "{"}, // invalid stats
	}
	for i := range manyCalls + 10 {
		recs = append(recs, registry.CallRecord{CallID: fmt.Sprintf("n%d@h", i), Caller: "sip:carol@im.example", Callee: "alice",
			StartedAt: t0.Add(time.Duration(i) * time.Millisecond), EndCause: "486 busy"})
	}
	errs, err := s.WriteCalls(ctx, recs)
	if err != nil {
		t.Fatal(err)
	}
	var ve *registry.ValidationError
	tests := []struct {
		i     int
		check func(error) bool
	}{
		{0, func(err error) bool { return err == nil }},
		{1, func(err error) bool { return errors.As(err, &ve) && ve.Field == "call_id" }},
		{2, func(err error) bool { return errors.Is(err, registry.ErrNotFound) }},
		{3, func(err error) bool { return errors.As(err, &ve) && ve.Field == "stats" }},
		{4, func(err error) bool { return err == nil }},
		{len(recs) - 1, func(err error) bool { return err == nil }},
	}
	for _, tt := range tests {
		if !tt.check(errs[tt.i]) {
			t.Errorf("record %d: err = %v", tt.i, errs[tt.i])
		}
	}
	if recs[1].ID != 0 {
		t.Errorf("invalid record got ID %d", recs[1].ID)
	}
	calls, err := s.Calls(ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(calls), manyCalls+11; got != want {
		t.Fatalf("%d records, want %d", got, want)
	}
	byID := map[int64]registry.CallRecord{}
	for _, c := range calls {
		byID[c.ID] = c
	}
	for i, r := range recs[4:] {
		got := byID[r.ID]
		if r.ID == 0 || got.CallID != r.CallID || !got.StartedAt.Equal(r.StartedAt) || got.EndCause != "486 busy" {
			t.Fatalf("new record %d: ID %d reads back as %+v", i, r.ID, got)
		}
	}
	want := registry.CallRecord{ID: old, CallID: "old@h", Caller: "sip:carol@im.example", Callee: "alice", TerminalID: 3,
		StartedAt: t0, AnsweredAt: t0.Add(time.Second), EndedAt: t0.Add(time.Minute), EndCause: "callee BYE"}
	if byID[old] != want {
		t.Errorf("updated record = %+v, want %+v", byID[old], want)
	}
}

// testLiveBindings: every user's unexpired bindings, newest first, bounded
// by the limit, with the count of them all.
func testLiveBindings(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.open(t)
	t0 := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	for i, im := range []string{"alice", "bob", "carol"} {
		mustUser(t, s, im)
		if err := s.PutBinding(ctx, registry.Binding{IMID: im, Contact: fmt.Sprintf("sip:%s@192.0.2.%d", im, i+1),
			Expires: t0.Add(time.Duration(i+1) * time.Minute), UpdatedAt: t0.Add(time.Duration(i) * time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		at        time.Time
		limit     int
		want      []string
		wantTotal int
	}{
		{t0, 10, []string{"carol", "bob", "alice"}, 3},
		{t0, 2, []string{"carol", "bob"}, 3},
		{t0, 0, []string{}, 3},
		{t0.Add(90 * time.Second), 10, []string{"carol", "bob"}, 2},
		{t0.Add(time.Hour), 10, []string{}, 0},
	}
	for _, tt := range tests {
		got, total, err := s.LiveBindings(ctx, tt.at, tt.limit)
		if err != nil {
			t.Fatal(err)
		}
		ids := []string{}
		for _, b := range got {
			ids = append(ids, b.IMID)
		}
		if fmt.Sprint(ids) != fmt.Sprint(tt.want) || total != tt.wantTotal {
			t.Errorf("at %v limit %d: %v of %d, want %v of %d", tt.at, tt.limit, ids, total, tt.want, tt.wantTotal)
		}
	}
}
