package storetest

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/imcall/b2bua/registry"
)

func mustUser(t *testing.T, s registry.Store, imID string) registry.User {
	t.Helper()
	u, err := s.AddUser(context.Background(), registry.User{IMID: imID, Display: "User " + imID, Creds: registry.NewCredentials(imID, "im.example", "secret")})
	if err != nil {
		t.Fatalf("AddUser(%s): %v", imID, err)
	}
	return u
}

func mustTerminal(t *testing.T, s registry.Store, imID, mobile string, active bool) registry.Terminal {
	t.Helper()
	m, err := registry.ParseMobileID(mobile)
	if err != nil {
		t.Fatal(err)
	}
	term, err := s.AddTerminal(context.Background(), registry.NewTerminal{IMID: imID, MobileID: m, Active: active})
	if err != nil {
		t.Fatalf("AddTerminal(%s, %s): %v", imID, mobile, err)
	}
	return term
}

func activeIDs(t *testing.T, s registry.Store, imID string) []int64 {
	t.Helper()
	ts, err := s.Terminals(context.Background(), imID)
	if err != nil {
		t.Fatalf("Terminals(%s): %v", imID, err)
	}
	var ids []int64
	for _, term := range ts {
		if term.Active {
			ids = append(ids, term.ID)
		}
	}
	return ids
}

func testUsers(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.open(t)
	u := mustUser(t, s, "alice")
	if u.IMID != "alice" {
		t.Errorf("IMID = %q, want alice", u.IMID)
	}
	// IM IDs are taken as written (ParseIMID): another spelling is refused,
	// never mapped onto alice.
	for _, other := range []string{"ALICE", "Alice", "\u212alice"} {
		var ve *registry.ValidationError
		if _, err := s.User(ctx, other); !errors.As(err, &ve) || ve.Field != "im_id" {
			t.Errorf("User(%q): err = %v, want ValidationError on im_id", other, err)
		}
		if _, err := s.AddUser(ctx, registry.User{IMID: other}); !errors.As(err, &ve) || ve.Field != "im_id" {
			t.Errorf("AddUser(%q): err = %v, want ValidationError on im_id", other, err)
		}
	}
	// conf- names the conference bridge's URIs, never a user.
	var ve *registry.ValidationError
	for _, name := range []string{"conf-1", "conference"} {
		if _, err := s.AddUser(ctx, registry.User{IMID: name}); !errors.As(err, &ve) || ve.Field != "im_id" || !strings.Contains(err.Error(), "conference bridge") {
			t.Errorf("AddUser(%s): err = %v, want ValidationError on im_id naming the conference bridge", name, err)
		}
	}
	got, err := s.User(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if got != u {
		t.Errorf("User = %+v, want %+v", got, u)
	}
	if _, err := s.AddUser(ctx, registry.User{IMID: "alice"}); !errors.Is(err, registry.ErrExists) {
		t.Errorf("second AddUser: err = %v, want ErrExists", err)
	}
	if _, err := s.User(ctx, "bob"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("User(bob): err = %v, want ErrNotFound", err)
	}
	ve = nil
	if _, err := s.AddUser(ctx, registry.User{IMID: "bad id"}); !errors.As(err, &ve) || ve.Field != "im_id" {
		t.Errorf("AddUser(bad id): err = %v, want ValidationError on im_id", err)
	}
	if _, err := s.AddUser(ctx, registry.User{IMID: "carol", Creds: registry.Credentials{Realm: "r", HA1MD5: "xyz"}}); !errors.As(err, &ve) || ve.Field != "ha1_md5" {
		t.Errorf("AddUser(bad HA1): err = %v, want ValidationError on ha1_md5", err)
	}
	mustUser(t, s, "bob")
	users, err := s.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 2 || users[0].IMID != "alice" || users[1].IMID != "bob" {
		t.Errorf("Users = %+v, want alice, bob", users)
	}

	c := registry.NewCredentials("bob", "other.example", "new")
	if err := s.SetCredentials(ctx, "bob", c); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.User(ctx, "bob"); got.Creds != c {
		t.Errorf("Creds = %+v, want %+v", got.Creds, c)
	}
	if err := s.SetCredentials(ctx, "nobody", c); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("SetCredentials(nobody): err = %v, want ErrNotFound", err)
	}
	if err := s.RemoveUser(ctx, "nobody"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("RemoveUser(nobody): err = %v, want ErrNotFound", err)
	}
}

func testNewCredentials(t *testing.T, h Harness) {
	c := registry.NewCredentials("x", "r", "p")
	if len(c.HA1MD5) != 32 || len(c.HA1SHA256) != 64 || c.Realm != "r" {
		t.Fatalf("NewCredentials = %+v", c)
	}
	if _, err := registry.ValidateCredentials(c); err != nil {
		t.Errorf("ValidateCredentials(NewCredentials) = %v", err)
	}
	// Computed independently: echo -n 'alice:im.example:secret' | md5sum
	// (and sha256sum). The IM ID is lower-cased as the store keeps it.
	c = registry.NewCredentials("Alice", "im.example", "secret")
	const wantMD5 = "917d168365c7e260a9b6d782fca48a86"
	const wantSHA = "d986435f2701d46acf4e2698d8a080b05b84ebfb1f4529bb80c6f670dfa50185"
	if c.HA1MD5 != wantMD5 || c.HA1SHA256 != wantSHA {
		t.Errorf("NewCredentials(Alice) = %s %s, want %s %s", c.HA1MD5, c.HA1SHA256, wantMD5, wantSHA)
	}
}

func testTerminalsAndActive(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.open(t)
	mustUser(t, s, "alice")
	mustUser(t, s, "bob")

	if _, err := s.ActiveTerminal(ctx, "alice"); !errors.Is(err, registry.ErrNoActiveTerminal) {
		t.Errorf("ActiveTerminal(alice) with none: err = %v, want ErrNoActiveTerminal", err)
	}
	if _, err := s.ActiveTerminal(ctx, "nobody"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("ActiveTerminal(nobody): err = %v, want ErrNotFound", err)
	}

	t1 := mustTerminal(t, s, "alice", "imsi:001010000000001", true)
	if !t1.Active || t1.Kind != registry.Legacy || t1.Caps != registry.CapAudio || t1.IMID != "alice" || t1.ID == 0 {
		t.Errorf("AddTerminal = %+v", t1)
	}
	got, err := s.ActiveTerminal(ctx, "alice")
	if err != nil || got != t1 {
		t.Errorf("ActiveTerminal = %+v, %v; want %+v", got, err, t1)
	}

	// A second active terminal takes over in the same transaction.
	t2 := mustTerminal(t, s, "alice", "mac:00-1A-2B-3C-4D-5E", true)
	if t2.MobileID.Value != "00:1a:2b:3c:4d:5e" {
		t.Errorf("MAC stored as %q, want normalised", t2.MobileID.Value)
	}
	if ids := activeIDs(t, s, "alice"); len(ids) != 1 || ids[0] != t2.ID {
		t.Errorf("active = %v, want [%d]", ids, t2.ID)
	}
	if got, _ := s.ActiveTerminal(ctx, "alice"); got.ID != t2.ID {
		t.Errorf("ActiveTerminal = %d, want %d", got.ID, t2.ID)
	}

	act, err := s.Activate(ctx, t1.ID)
	if err != nil || !act.Active || act.ID != t1.ID {
		t.Fatalf("Activate = %+v, %v", act, err)
	}
	if ids := activeIDs(t, s, "alice"); len(ids) != 1 || ids[0] != t1.ID {
		t.Errorf("after Activate: active = %v, want [%d]", ids, t1.ID)
	}
	if got, _ := s.ActiveTerminal(ctx, "alice"); got.ID != t1.ID {
		t.Errorf("ActiveTerminal after Activate = %d, want %d", got.ID, t1.ID)
	}
	if _, err := s.Activate(ctx, t1.ID); err != nil {
		t.Errorf("Activate of the active terminal: %v", err)
	}

	// Other users are untouched.
	b1 := mustTerminal(t, s, "bob", "imsi:001010000000009", true)
	if ids := activeIDs(t, s, "alice"); len(ids) != 1 || ids[0] != t1.ID {
		t.Errorf("bob's activation changed alice: %v", ids)
	}

	deact, err := s.Deactivate(ctx, t1.ID)
	if err != nil || deact.Active {
		t.Fatalf("Deactivate = %+v, %v", deact, err)
	}
	if _, err := s.ActiveTerminal(ctx, "alice"); !errors.Is(err, registry.ErrNoActiveTerminal) {
		t.Errorf("after Deactivate: err = %v, want ErrNoActiveTerminal", err)
	}
	if got, _ := s.ActiveTerminal(ctx, "bob"); got.ID != b1.ID {
		t.Errorf("bob's active = %d, want %d", got.ID, b1.ID)
	}

	// Errors.
	if _, err := s.AddTerminal(ctx, registry.NewTerminal{IMID: "bob", MobileID: t1.MobileID}); !errors.Is(err, registry.ErrExists) {
		t.Errorf("duplicate mobile ID: err = %v, want ErrExists", err)
	}
	if _, err := s.AddTerminal(ctx, registry.NewTerminal{IMID: "nobody", MobileID: registry.MobileID{Type: registry.IMSI, Value: "001019999999999"}}); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("unknown user: err = %v, want ErrNotFound", err)
	}
	var ve *registry.ValidationError
	if _, err := s.AddTerminal(ctx, registry.NewTerminal{IMID: "bob", MobileID: registry.MobileID{Type: registry.IMSI, Value: "12"}}); !errors.As(err, &ve) || ve.Field != "imsi" {
		t.Errorf("bad IMSI: err = %v, want ValidationError on imsi", err)
	}
	if _, err := s.AddTerminal(ctx, registry.NewTerminal{IMID: "bob", MobileID: registry.MobileID{Type: registry.IMSI, Value: "001010000000077"}, Caps: 1 << 6}); !errors.As(err, &ve) || ve.Field != "caps" {
		t.Errorf("bad caps: err = %v, want ValidationError on caps", err)
	}
	for _, f := range []func(int64) error{
		func(id int64) error { _, err := s.Activate(ctx, id); return err },
		func(id int64) error { _, err := s.Deactivate(ctx, id); return err },
		func(id int64) error { _, err := s.Terminal(ctx, id); return err },
		func(id int64) error { return s.RemoveTerminal(ctx, id) },
	} {
		if err := f(9999); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("unknown terminal: err = %v, want ErrNotFound", err)
		}
	}
	if _, err := s.Terminals(ctx, "nobody"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Terminals(nobody): err = %v, want ErrNotFound", err)
	}
	all, err := s.Terminals(ctx, "")
	if err != nil || len(all) != 3 {
		t.Errorf("Terminals(all) = %d, %v; want 3", len(all), err)
	}

	// Removal: the terminal, then the user with everything it owns.
	if err := s.RemoveTerminal(ctx, t2.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Terminal(ctx, t2.ID); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("removed terminal: err = %v, want ErrNotFound", err)
	}
	if err := s.RemoveUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Terminal(ctx, b1.ID); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("terminal of removed user: err = %v, want ErrNotFound", err)
	}
	if _, err := s.ActiveTerminal(ctx, "bob"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("ActiveTerminal of removed user: err = %v, want ErrNotFound", err)
	}
	// IDs are not reused.
	t3 := mustTerminal(t, s, "alice", "imsi:001010000000003", false)
	if t3.ID <= b1.ID {
		t.Errorf("new terminal ID %d reuses an old one (<= %d)", t3.ID, b1.ID)
	}
}

// TestOneActiveEnforcedByDatabase writes around the store's code: the
// partial unique index must refuse a second active terminal by itself.
func testOneActiveEnforcedByDatabase(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.open(t)
	raw := h.Raw(t, s)
	mustUser(t, s, "alice")
	mustTerminal(t, s, "alice", "imsi:001010000000001", true)
	t2 := mustTerminal(t, s, "alice", "imsi:001010000000002", false)
	err := raw.Exec(ctx, `UPDATE terminals SET active = true WHERE id = ?`, t2.ID)
	if !raw.IsUnique(err) {
		t.Fatalf("raw second activation: err = %v, want a unique constraint violation", err)
	}
}

func testContacts(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.open(t)
	raw := h.Raw(t, s)
	mustUser(t, s, "alice")
	m, _ := registry.ParseIMSI("001010000000001")
	c := registry.Contact{Owner: "alice", IMID: "bob", Domain: "IM.Example", MobileID: m, Display: "Bob"}
	got, err := s.AddContact(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID == 0 || got.Owner != "alice" || got.IMID != "bob" || got.Domain != "im.example" || got.MobileID != m {
		t.Errorf("AddContact = %+v", got)
	}
	if _, err := s.AddContact(ctx, c); !errors.Is(err, registry.ErrExists) {
		t.Errorf("same card twice: err = %v, want ErrExists", err)
	}
	// Same IM ID without the mobile identity is another entry.
	if _, err := s.AddContact(ctx, registry.Contact{Owner: "alice", IMID: "bob", Domain: "im.example"}); err != nil {
		t.Errorf("contact without mobile: %v", err)
	}
	if _, err := s.AddContact(ctx, registry.Contact{Owner: "nobody", IMID: "bob"}); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("unknown owner: err = %v, want ErrNotFound", err)
	}
	var ve *registry.ValidationError
	if _, err := s.AddContact(ctx, registry.Contact{Owner: "alice", IMID: "bob", Domain: "bad domain"}); !errors.As(err, &ve) || ve.Field != "domain" {
		t.Errorf("bad domain: err = %v, want ValidationError on domain", err)
	}
	list, err := s.Contacts(ctx, "alice")
	if err != nil || len(list) != 2 || list[0] != got {
		t.Errorf("Contacts = %+v, %v", list, err)
	}
	if _, err := s.Contacts(ctx, "nobody"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Contacts(nobody): err = %v, want ErrNotFound", err)
	}
	if err := s.RemoveUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if n, err := raw.Int(ctx, `SELECT count(*) FROM contacts`); err != nil || n != 0 {
		t.Errorf("contacts after RemoveUser = %d, %v; want 0", n, err)
	}
}
