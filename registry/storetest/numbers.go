package storetest

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imcall/b2bua/registry"
)

func testTrunks(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.open(t)
	p := netip.MustParsePrefix
	a, err := s.AddTrunk(ctx, registry.Trunk{Name: "Carrier-A", CIDRs: []netip.Prefix{p("198.51.100.7/24"), p("2001:db8::/32")}, CountryCode: "+1"})
	if err != nil {
		t.Fatal(err)
	}
	if a.Name != "carrier-a" || a.CountryCode != "1" || a.Identity != registry.IdentityPAI || a.CreatedAt.IsZero() ||
		!slices.Equal(a.CIDRs, []netip.Prefix{p("198.51.100.0/24"), p("2001:db8::/32")}) {
		t.Errorf("AddTrunk = %+v", a)
	}
	b, err := s.AddTrunk(ctx, registry.Trunk{Name: "b", CIDRs: []netip.Prefix{p("203.0.113.5/32")}, Identity: registry.IdentityFrom})
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		in   registry.Trunk
		want error
		text string
	}{
		{"name taken", registry.Trunk{Name: "CARRIER-A", CIDRs: []netip.Prefix{p("192.0.2.0/24")}}, registry.ErrExists, "trunk carrier-a"},
		{"range of another trunk", registry.Trunk{Name: "c", CIDRs: []netip.Prefix{p("192.0.2.0/24"), p("198.51.100.99/24")}}, registry.ErrExists, "198.51.100.0/24 of trunk carrier-a"},
	} {
		if _, err := s.AddTrunk(ctx, tc.in); !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("%s: err = %v, want %v naming %q", tc.name, err, tc.want, tc.text)
		}
	}
	var ve *registry.ValidationError
	if _, err := s.AddTrunk(ctx, registry.Trunk{Name: "d"}); !errors.As(err, &ve) || ve.Field != "cidr" {
		t.Errorf("no range: err = %v", err)
	}

	got, err := s.Trunks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The failed "c" left nothing behind: its first range was rolled back.
	if len(got) != 2 || got[0].Name != "b" || got[1].Name != "carrier-a" ||
		!slices.Equal(got[0].CIDRs, b.CIDRs) || !slices.Equal(got[1].CIDRs, a.CIDRs) ||
		got[0].Identity != registry.IdentityFrom || !got[1].CreatedAt.Equal(a.CreatedAt) {
		t.Fatalf("Trunks = %+v", got)
	}
	if tr, ok := registry.MatchTrunk(got, netip.MustParseAddr("198.51.100.42")); !ok || tr.Name != "carrier-a" {
		t.Errorf("MatchTrunk on stored trunks = %+v, %v", tr, ok)
	}

	if err := s.RemoveTrunk(ctx, "carrier-a"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveTrunk(ctx, "carrier-a"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("second remove: %v", err)
	}
	// Its ranges went with it and are free for another trunk.
	if _, err := s.AddTrunk(ctx, registry.Trunk{Name: "c", CIDRs: []netip.Prefix{p("198.51.100.0/24")}}); err != nil {
		t.Errorf("range after removal: %v", err)
	}
}

func testDIDs(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.open(t)
	mustUser(t, s, "alice")
	mustUser(t, s, "bob")
	d, err := s.AddDID(ctx, registry.DID{Number: "+1 555 000 1111", IMID: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if d.Number != "+15550001111" || d.IMID != "alice" || d.Fallback != registry.FallbackNone || d.CreatedAt.IsZero() {
		t.Errorf("AddDID = %+v", d)
	}
	if _, err := s.AddDID(ctx, registry.DID{Number: "+15550002222", IMID: "alice", Fallback: registry.FallbackTerminal}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddDID(ctx, registry.DID{Number: "+441632960001", IMID: "bob"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddDID(ctx, registry.DID{Number: "+15550001111", IMID: "bob"}); !errors.Is(err, registry.ErrExists) || !strings.Contains(err.Error(), "belongs to alice") {
		t.Errorf("second owner: err = %v, want ErrExists naming alice", err)
	}
	if _, err := s.AddDID(ctx, registry.DID{Number: "+15550003333", IMID: "nobody"}); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("unknown user: %v", err)
	}
	var ve *registry.ValidationError
	if _, err := s.AddDID(ctx, registry.DID{Number: "5550001111", IMID: "bob"}); !errors.As(err, &ve) || ve.Field != "number" {
		t.Errorf("national number: %v", err)
	}

	if got, err := s.DID(ctx, "+15550001111"); err != nil || got != d {
		t.Errorf("DID = %+v, %v; want %+v", got, err, d)
	}
	if _, err := s.DID(ctx, "+15559999999"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("unowned number: %v", err)
	}
	numbers := func(ds []registry.DID) []string {
		var out []string
		for _, d := range ds {
			out = append(out, d.Number)
		}
		return out
	}
	if got, err := s.DIDs(ctx, "alice"); err != nil || !slices.Equal(numbers(got), []string{"+15550001111", "+15550002222"}) || got[1].Fallback != registry.FallbackTerminal {
		t.Errorf("DIDs(alice) = %+v, %v", got, err)
	}
	if got, err := s.DIDs(ctx, ""); err != nil || !slices.Equal(numbers(got), []string{"+15550001111", "+15550002222", "+441632960001"}) {
		t.Errorf("DIDs() = %v, %v", numbers(got), err)
	}
	if _, err := s.DIDs(ctx, "nobody"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("DIDs(nobody): %v", err)
	}

	if err := s.RemoveDID(ctx, "+15550002222"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveDID(ctx, "+15550002222"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("second remove: %v", err)
	}
	// A removed user's numbers are free again.
	if err := s.RemoveUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddDID(ctx, registry.DID{Number: "+441632960001", IMID: "alice"}); err != nil {
		t.Errorf("number of a removed user: %v", err)
	}
}

// TestDIDOneOwnerInDatabase: the rule holds for a writer that bypasses the
// store's code, such as a second program on the file.
func testDIDOneOwnerInDatabase(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.open(t)
	raw := h.Raw(t, s)
	mustUser(t, s, "alice")
	mustUser(t, s, "bob")
	const ins = `INSERT INTO dids (number, im_id, fallback, created) VALUES (?, ?, 'none', 0)`
	if err := raw.Exec(ctx, ins, "+15550001111", "alice"); err != nil {
		t.Fatal(err)
	}
	err := raw.Exec(ctx, ins, "+15550001111", "bob")
	if !raw.IsUnique(err) {
		t.Errorf("duplicate number through SQL: err = %v, want a unique constraint failure", err)
	}
	for _, tc := range []struct{ name, number, fallback string }{
		{"number without +", "15550002222", "none"},
		{"unknown fallback", "+15550002222", "voicemail"},
	} {
		if err := raw.Exec(ctx, `INSERT INTO dids (number, im_id, fallback, created) VALUES (?, 'bob', ?, 0)`, tc.number, tc.fallback); err == nil {
			t.Errorf("%s: accepted by the database", tc.name)
		}
	}
	const insCIDR = `INSERT INTO trunk_cidrs (cidr, trunk) VALUES ('192.0.2.0/24', ?)`
	for _, n := range []string{"a", "b"} {
		if err := raw.Exec(ctx, `INSERT INTO trunks (name, identity, created) VALUES (?, 'pai', 0)`, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := raw.Exec(ctx, insCIDR, "a"); err != nil {
		t.Fatal(err)
	}
	if err := raw.Exec(ctx, insCIDR, "b"); !raw.IsUnique(err) {
		t.Errorf("one range in two trunks through SQL: err = %v", err)
	}
}

// TestBindingsByInstance: a client that sends +sip.instance keeps one login
// whatever Contact it registers from (RFC 5626 §6); a user may be logged in
// on several clients at once; a client without an instance is keyed by its
// Contact.
func testBindingsByInstance(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.open(t)
	mustUser(t, s, "alice")
	t0 := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	const phone, laptop = "urn:uuid:00000000-0000-1000-8000-000000000001", "urn:uuid:00000000-0000-1000-8000-000000000002"
	put := func(b registry.Binding) {
		t.Helper()
		b.IMID = "alice"
		if err := s.PutBinding(ctx, b); err != nil {
			t.Fatalf("PutBinding(%+v): %v", b, err)
		}
	}
	contacts := func(at time.Time) []string {
		t.Helper()
		bs, err := s.Bindings(ctx, "alice", at)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, b := range bs {
			out = append(out, b.Contact)
		}
		return out
	}
	put(registry.Binding{Contact: "sip:alice@192.0.2.1:5060", Instance: phone, Expires: t0.Add(time.Hour), UpdatedAt: t0})
	put(registry.Binding{Contact: "sip:alice@192.0.2.2:5060", Instance: laptop, Expires: t0.Add(time.Hour), UpdatedAt: t0.Add(time.Second)})
	put(registry.Binding{Contact: "sip:alice@192.0.2.3:5060", Expires: t0.Add(time.Hour), UpdatedAt: t0.Add(2 * time.Second)})
	if got := contacts(t0); !slices.Equal(got, []string{"sip:alice@192.0.2.3:5060", "sip:alice@192.0.2.2:5060", "sip:alice@192.0.2.1:5060"}) {
		t.Fatalf("three clients: %v", got)
	}
	// The phone re-registers from a new port: its login moves, no second one.
	put(registry.Binding{Contact: "sip:alice@192.0.2.1:6000", Instance: phone, Expires: t0.Add(time.Hour), UpdatedAt: t0.Add(3 * time.Second)})
	if got := contacts(t0); !slices.Equal(got, []string{"sip:alice@192.0.2.1:6000", "sip:alice@192.0.2.3:5060", "sip:alice@192.0.2.2:5060"}) {
		t.Errorf("after the phone moved: %v", got)
	}
	// The instance-less client starts sending an instance from the same
	// Contact: it is the same client, so its Contact-keyed login is replaced.
	const third = "urn:uuid:00000000-0000-1000-8000-000000000003"
	put(registry.Binding{Contact: "sip:alice@192.0.2.3:5060", Instance: third, Expires: t0.Add(time.Hour), UpdatedAt: t0.Add(4 * time.Second)})
	bs, _ := s.Bindings(ctx, "alice", t0)
	if len(bs) != 3 || bs[0].Instance != third || bs[0].Key() != third {
		t.Errorf("after the third client named its instance: %+v", bs)
	}
	// Logging out of the laptop (Expires: 0 → RemoveBinding by key) leaves
	// the others.
	if err := s.RemoveBinding(ctx, "alice", laptop); err != nil {
		t.Fatal(err)
	}
	if got := contacts(t0); !slices.Equal(got, []string{"sip:alice@192.0.2.3:5060", "sip:alice@192.0.2.1:6000"}) {
		t.Errorf("after logout: %v", got)
	}
	// Expiry ends a login at its time, not before: now is the caller's.
	put(registry.Binding{Contact: "sip:alice@192.0.2.4:5060", Expires: t0.Add(time.Minute), UpdatedAt: t0.Add(5 * time.Second)})
	if got := contacts(t0.Add(time.Minute - time.Nanosecond)); len(got) != 3 {
		t.Errorf("just before expiry: %v", got)
	}
	if got := contacts(t0.Add(time.Minute)); len(got) != 2 || slices.Contains(got, "sip:alice@192.0.2.4:5060") {
		t.Errorf("at expiry: %v", got)
	}
}
