package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/registry/sqlite"
)

// inOrder fails unless out holds every want, in order.
func inOrder(t *testing.T, out string, want ...string) {
	t.Helper()
	rest := out
	for _, w := range want {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Fatalf("stdout %q lacks %q (in order)", out, w)
		}
		rest = rest[i+len(w):]
	}
}

func TestCLITrunks(t *testing.T) {
	db := newDB(t)
	ok(t, db, "", "trunk", "add", "Carrier-A", "--cidr", "198.51.100.7/24, 2001:db8::/32", "--country-code", "1")
	ok(t, db, "", "trunk", "add", "lab", "--cidr", "127.0.0.2", "--identity", "from")
	inOrder(t, ok(t, db, "", "trunk", "list"),
		"NAME", "CIDRS", "COUNTRY CODE", "IDENTITY",
		"carrier-a", "198.51.100.0/24,2001:db8::/32", "1", "pai",
		"lab", "127.0.0.2/32", "-", "from")
	var l struct {
		Trunks []struct {
			Name        string   `json:"name"`
			CIDRs       []string `json:"cidrs"`
			CountryCode string   `json:"country_code"`
			Identity    string   `json:"identity"`
			CreatedAt   string   `json:"created_at"`
		} `json:"trunks"`
	}
	if err := json.Unmarshal([]byte(ok(t, db, "", "trunk", "list", "--output", "json")), &l); err != nil {
		t.Fatal(err)
	}
	if len(l.Trunks) != 2 || l.Trunks[0].Name != "carrier-a" || len(l.Trunks[0].CIDRs) != 2 || l.Trunks[1].Identity != "from" || l.Trunks[0].CreatedAt == "" {
		t.Fatalf("trunk list json = %+v", l)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"trunk", "add", "x", "--cidr", "198.51.100.0/24"}, "b2bua: range 198.51.100.0/24 of trunk carrier-a: already exists\n"},
		{[]string{"trunk", "add", "lab", "--cidr", "192.0.2.0/24"}, "b2bua: trunk lab: already exists\n"},
		{[]string{"trunk", "add", "x"}, "b2bua: cidr: --cidr is required (see 'b2bua trunk add --help')\n"},
		{[]string{"trunk", "add", "x", "--cidr", "192.0.2.0/33"}, "b2bua: cidr: must be an address range such as 192.0.2.0/24 or 2001:db8::/32, or one address\n"},
		{[]string{"trunk", "add", "x", "--cidr", "192.0.2.0/24", "--country-code", "0"}, "b2bua: country_code: must be 1 to 3 digits not starting with 0, such as 1 or 44\n"},
		{[]string{"trunk", "add", "x", "--cidr", "192.0.2.0/24", "--identity", "rpid"}, "b2bua: identity: must be pai or from\n"},
		{[]string{"trunk", "remove", "nope"}, "b2bua: trunk nope: not found\n"},
	} {
		r := cli(t, db, "", tc.args...)
		if r.code == 0 || r.stdout != "" || r.stderr != tc.want {
			t.Errorf("b2bua %s: exit %d, stdout %q, stderr %q; want %q", strings.Join(tc.args, " "), r.code, r.stdout, r.stderr, tc.want)
		}
	}
	ok(t, db, "", "trunk", "remove", "carrier-a")
	if out := ok(t, db, "", "trunk", "list"); strings.Contains(out, "carrier-a") {
		t.Errorf("removed trunk listed: %q", out)
	}
}

func TestCLIDIDs(t *testing.T) {
	db := newDB(t)
	seed(t, db)
	ok(t, db, "", "did", "add", "+1-555-000-1111", "--im", "alice")
	ok(t, db, "", "did", "add", "+15550002222", "--im", "alice", "--fallback", "terminal")
	ok(t, db, "", "did", "add", "+441632960001", "--im", "bob")
	inOrder(t, ok(t, db, "", "did", "list"), "NUMBER", "IM ID", "FALLBACK",
		"+15550001111", "alice", "none", "+15550002222", "alice", "terminal", "+441632960001", "bob", "none")
	if out := ok(t, db, "", "did", "list", "--im", "bob"); strings.Contains(out, "alice") || !strings.Contains(out, "+441632960001") {
		t.Errorf("did list --im bob = %q", out)
	}
	var l struct {
		DIDs []map[string]any `json:"dids"`
	}
	if err := json.Unmarshal([]byte(ok(t, db, "", "did", "list", "--im", "alice", "-o", "json")), &l); err != nil {
		t.Fatal(err)
	}
	if len(l.DIDs) != 2 || l.DIDs[1]["number"] != "+15550002222" || l.DIDs[1]["im_id"] != "alice" || l.DIDs[1]["fallback"] != "terminal" {
		t.Fatalf("did list json = %+v", l)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"did", "add", "+15550001111", "--im", "bob"}, "b2bua: number +15550001111 belongs to alice: already exists\n"},
		{[]string{"did", "add", "5550003333", "--im", "bob"}, "b2bua: number: must be an E.164 number with its leading +, such as +15550001111\n"},
		{[]string{"did", "add", "+15550003333"}, "b2bua: im: --im is required (see 'b2bua did add --help')\n"},
		{[]string{"did", "add", "+15550003333", "--im", "nobody"}, "b2bua: user nobody: not found\n"},
		{[]string{"did", "add", "+15550003333", "--im", "bob", "--fallback", "voicemail"}, "b2bua: fallback: must be none or terminal\n"},
		{[]string{"did", "list", "--im", "nobody"}, "b2bua: user nobody: not found\n"},
		{[]string{"did", "remove", "+15559999999"}, "b2bua: number +15559999999: not found\n"},
	} {
		r := cli(t, db, "", tc.args...)
		if r.code == 0 || r.stdout != "" || r.stderr != tc.want {
			t.Errorf("b2bua %s: exit %d, stdout %q, stderr %q; want %q", strings.Join(tc.args, " "), r.code, r.stdout, r.stderr, tc.want)
		}
	}
	ok(t, db, "", "did", "remove", "+15550002222")
	// A removed user's numbers go with it.
	ok(t, db, "", "user", "remove", "bob")
	if out := ok(t, db, "", "did", "list"); strings.Contains(out, "+15550002222") || strings.Contains(out, "+441632960001") || !strings.Contains(out, "+15550001111") {
		t.Errorf("did list after removals = %q", out)
	}
}

// TestCLIClients: client list shows a user's live registrations, which the
// SIP server writes; here the test writes them into the same file.
func TestCLIClients(t *testing.T) {
	db := newDB(t)
	seed(t, db)
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Config{Path: db})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, b := range []registry.Binding{
		{IMID: "alice", Contact: "sip:alice@192.0.2.1:5060", Instance: "urn:uuid:00000000-0000-1000-8000-000000000001", Source: "192.0.2.1:5060", Transport: "udp", Expires: now.Add(time.Hour)},
		{IMID: "alice", Contact: "sip:alice@192.0.2.2:5060", Source: "192.0.2.2:5060", Transport: "tcp", Expires: now.Add(30 * time.Minute)},
		{IMID: "alice", Contact: "sip:alice@192.0.2.3:5060", Expires: now.Add(-time.Second), UpdatedAt: now.Add(-time.Hour)}, // over
	} {
		if err := st.PutBinding(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	out := ok(t, db, "", "client", "list", "--im", "alice")
	inOrder(t, out, "INSTANCE", "CONTACT", "SOURCE", "TRANSPORT", "EXPIRES IN")
	for _, w := range []string{"urn:uuid:00000000-0000-1000-8000-000000000001  sip:alice@192.0.2.1:5060", "192.0.2.1:5060  udp", "sip:alice@192.0.2.2:5060", "tcp"} {
		if !strings.Contains(out, w) {
			t.Errorf("client list lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "192.0.2.3") {
		t.Errorf("client list shows an expired login:\n%s", out)
	}
	var l struct {
		Clients []struct {
			IMID      string    `json:"im_id"`
			Instance  string    `json:"instance"`
			Contact   string    `json:"contact"`
			Source    string    `json:"source"`
			Transport string    `json:"transport"`
			ExpiresAt time.Time `json:"expires_at"`
		} `json:"clients"`
	}
	if err := json.Unmarshal([]byte(ok(t, db, "", "client", "list", "--im", "alice", "--output", "json")), &l); err != nil {
		t.Fatal(err)
	}
	// Newest registration first.
	if len(l.Clients) != 2 || l.Clients[0].IMID != "alice" || l.Clients[0].Contact != "sip:alice@192.0.2.2:5060" || l.Clients[0].Instance != "" ||
		l.Clients[1].Instance != "urn:uuid:00000000-0000-1000-8000-000000000001" || l.Clients[1].Source != "192.0.2.1:5060" ||
		l.Clients[1].Transport != "udp" || l.Clients[1].ExpiresAt.Sub(now.Add(time.Hour)).Abs() > time.Millisecond {
		t.Fatalf("client list json = %+v", l)
	}
	if out := ok(t, db, "", "client", "list", "--im", "bob"); strings.TrimSpace(out) != "INSTANCE  CONTACT  SOURCE  TRANSPORT  EXPIRES IN" {
		t.Errorf("bob, logged in nowhere: %q", out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"client", "list"}, "b2bua: im: --im is required (see 'b2bua client list --help')\n"},
		{[]string{"client", "list", "--im", "nobody"}, "b2bua: user nobody: not found\n"},
	} {
		r := cli(t, db, "", tc.args...)
		if r.code == 0 || r.stdout != "" || r.stderr != tc.want {
			t.Errorf("b2bua %s: exit %d, stdout %q, stderr %q; want %q", strings.Join(tc.args, " "), r.code, r.stdout, r.stderr, tc.want)
		}
	}
}
