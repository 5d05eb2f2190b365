package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// binary is the b2bua command built once for every CLI test: the tests run
// what users run, flags, exit status and all.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "b2bua-cli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "b2bua")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building b2bua:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

// cli runs the binary against db with stdin, in a clean environment so that
// a developer's B2BUA_DB cannot leak in.
func cli(t *testing.T, db, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"--db", db}, args...)...)
	cmd.Dir = filepath.Dir(db)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + filepath.Dir(db)}
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	code := 0
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("running b2bua %s: %v", strings.Join(args, " "), err)
	}
	return result{out.String(), errb.String(), code}
}

// ok runs a command that must succeed and returns its stdout.
func ok(t *testing.T, db, stdin string, args ...string) string {
	t.Helper()
	r := cli(t, db, stdin, args...)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("b2bua %s: exit %d, stderr %q", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// state is everything the registry holds, as the CLI shows it, minus the
// creation times, so that two states can be compared.
func state(t *testing.T, db string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(ok(t, db, "", "user", "list"))
	b.WriteString(ok(t, db, "", "terminal", "list"))
	for _, owner := range []string{"alice", "bob"} {
		if r := cli(t, db, "", "contact", "list", "--owner", owner); r.code == 0 {
			b.WriteString(r.stdout)
		}
	}
	return b.String()
}

func newDB(t *testing.T) string {
	return filepath.Join(t.TempDir(), "b2bua.db")
}

// seed makes alice (with terminals 1, active, and 2) and bob.
func seed(t *testing.T, db string) {
	t.Helper()
	ok(t, db, "alice-pw\n", "user", "add", "alice", "--password-stdin", "--display", "Alice Smith")
	ok(t, db, "bob-pw\n", "user", "add", "bob", "--password-stdin")
	if id := ok(t, db, "", "terminal", "add", "--im", "alice", "--imsi", "001010000000001", "--active"); id != "1\n" {
		t.Fatalf("first terminal ID = %q, want 1", id)
	}
	if id := ok(t, db, "", "terminal", "add", "--im", "alice", "--mac", "AA-BB-CC-DD-EE-FF", "--kind", "smart", "--caps", "audio,text"); id != "2\n" {
		t.Fatalf("second terminal ID = %q, want 2", id)
	}
}

func TestCLIGoodPaths(t *testing.T) {
	db := newDB(t)
	seed(t, db)

	tests := []struct {
		name  string
		stdin string
		args  []string
		want  []string // substrings of stdout, in order
	}{
		{"user list", "", []string{"user", "list"}, []string{"IM ID", "DISPLAY", "alice", "Alice Smith", "bob"}},
		{"terminal list", "", []string{"terminal", "list"}, []string{"ID", "MOBILE ID", "1", "imsi:001010000000001", "legacy", "audio", "yes", "2", "mac:aa:bb:cc:dd:ee:ff", "smart", "audio,text", "no"}},
		{"terminal list of a user", "", []string{"terminal", "list", "--im", "alice"}, []string{"alice", "alice"}},
		{"terminal list of a user without terminals", "", []string{"terminal", "list", "--im", "bob"}, []string{"ID"}},
		{"activate", "", []string{"terminal", "activate", "2"}, nil},
		{"show after activate", "", []string{"terminal", "show", "2"}, []string{"2", "alice", "mac:aa:bb:cc:dd:ee:ff", "smart", "yes"}},
		{"the other is inactive", "", []string{"terminal", "show", "1"}, []string{"1", "imsi:001010000000001", "no"}},
		{"deactivate", "", []string{"terminal", "deactivate", "2"}, nil},
		{"show after deactivate", "", []string{"terminal", "show", "2"}, []string{"smart", "no"}},
		{"msisdn", "", []string{"terminal", "add", "--im", "bob", "--msisdn", "+441632960001", "--caps", "audio,video"}, []string{"3"}},
		{"passwd", "new-pw\r\n", []string{"user", "passwd", "bob", "--password-stdin"}, nil},
		{"remove terminal", "", []string{"terminal", "remove", "3"}, nil},
		{"terminal qr draws", "", []string{"terminal", "qr", "1"}, []string{"█"}},
		{"env domain", "", []string{"--domain", "im.example", "terminal", "qr", "1", "--invert"}, []string{"█"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := ok(t, db, tt.stdin, tt.args...)
			rest := out
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("stdout %q lacks %q (in order)", out, w)
				}
				rest = rest[i+len(w):]
			}
		})
	}

	// The JSON output has stable field names.
	var tl struct {
		Terminals []struct {
			ID       int64 `json:"id"`
			IMID     string
			MobileID struct{ Type, Value string } `json:"mobile_id"`
			Kind     string                       `json:"kind"`
			Caps     []string                     `json:"caps"`
			Active   bool                         `json:"active"`
		} `json:"terminals"`
	}
	if err := json.Unmarshal([]byte(ok(t, db, "", "terminal", "list", "--output", "json")), &tl); err != nil {
		t.Fatal(err)
	}
	if len(tl.Terminals) != 2 || tl.Terminals[1].MobileID.Value != "aa:bb:cc:dd:ee:ff" || tl.Terminals[1].Caps[1] != "text" || tl.Terminals[0].Active {
		t.Fatalf("terminal list json = %+v", tl)
	}
	var ul struct {
		Users []map[string]any `json:"users"`
	}
	if err := json.Unmarshal([]byte(ok(t, db, "", "user", "list", "-o", "json")), &ul); err != nil {
		t.Fatal(err)
	}
	if len(ul.Users) != 2 || ul.Users[0]["im_id"] != "alice" || ul.Users[0]["display"] != "Alice Smith" || ul.Users[0]["realm"] != "127.0.0.1" {
		t.Fatalf("user list json = %+v", ul)
	}
	for _, u := range ul.Users {
		for k := range u {
			if strings.Contains(k, "ha1") || strings.Contains(k, "password") {
				t.Fatalf("user list json shows %q", k)
			}
		}
	}

	// Removing a user removes its terminals.
	ok(t, db, "", "user", "remove", "alice")
	if out := ok(t, db, "", "terminal", "list"); strings.Contains(out, "alice") {
		t.Fatalf("alice's terminals outlived her: %q", out)
	}
}

func TestCLIEnvironment(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "env.db")
	cmd := exec.Command(binary, "user", "add", "carol", "--password-stdin")
	cmd.Dir = dir
	cmd.Env = []string{"B2BUA_DB=" + db, "B2BUA_DOMAIN=im.example"}
	cmd.Stdin = strings.NewReader("pw\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if out := ok(t, db, "", "user", "list"); !strings.Contains(out, "carol") || !strings.Contains(out, "im.example") {
		t.Fatalf("B2BUA_DB / B2BUA_DOMAIN ignored: %q", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "b2bua.db")); !os.IsNotExist(err) {
		t.Fatalf("the default ./b2bua.db was created although B2BUA_DB was set")
	}
}

// TestCLIBadArguments: every mistake gives exactly one line on stderr that
// names the field and the rule, a non-zero exit, nothing on stdout, and no
// change to the registry.
func TestCLIBadArguments(t *testing.T) {
	db := newDB(t)
	seed(t, db)
	png := filepath.Join(filepath.Dir(db), "alice.png")
	ok(t, db, "", "terminal", "qr", "1", "--png", png)
	notPNG := filepath.Join(filepath.Dir(db), "not.png")
	if err := os.WriteFile(notPNG, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := state(t, db)

	tests := []struct {
		stdin string
		args  []string
		want  string
	}{
		{"", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"", []string{"user", "add"}, "IMID: argument is required"},
		{"pw\n", []string{"user", "add", "bad!", "--password-stdin"}, "im_id: must be 1 to 64 characters"},
		{"pw\n", []string{"user", "add", "dave"}, "password: must be given on standard input with --password-stdin"},
		{"", []string{"user", "add", "dave", "--password-stdin"}, "password: must not be empty"},
		{"\n", []string{"user", "add", "dave", "--password-stdin"}, "password: must not be empty"},
		{"pw\n", []string{"user", "add", "dave", "--password-stdin", "--display", "bell\a"}, "display: must not contain control characters"},
		{"pw\n", []string{"user", "add", "dave", "--password-stdin", "--display", strings.Repeat("x", 129)}, "display: must be at most 128 characters"},
		{"pw\n", []string{"user", "add", "alice", "--password-stdin"}, "user alice: already exists"},
		{"pw\n", []string{"user", "add", "dave", "extra", "--password-stdin"}, `arguments: unexpected "extra"`},
		{"pw\n", []string{"--domain", "bad_domain", "user", "add", "dave", "--password-stdin"}, "domain: must be a DNS name"},
		{"pw\n", []string{"user", "passwd", "nobody", "--password-stdin"}, "user nobody: not found"},
		{"", []string{"user", "passwd", "alice", "--password-stdin"}, "password: must not be empty"},
		{"", []string{"user", "remove", "nobody"}, "user nobody: not found"},
		{"", []string{"user", "list", "--output", "yaml"}, "output: must be table or json"},
		{"", []string{"user", "list", "--bogus"}, "unknown flag: --bogus"},
		{"", []string{"terminal", "add", "--imsi", "001010000000009"}, "im: --im is required"},
		{"", []string{"terminal", "add", "--im", "alice"}, "mobile_id: exactly one of imsi, mac or msisdn is required"},
		{"", []string{"terminal", "add", "--im", "alice", "--imsi", "001010000000009", "--mac", "aabbccddeeff"}, "mobile_id: exactly one of imsi, mac or msisdn is required"},
		{"", []string{"terminal", "add", "--im", "alice", "--imsi", "12345"}, "imsi: must be 6 to 15 digits"},
		{"", []string{"terminal", "add", "--im", "alice", "--imsi", "0010100000000011"}, "imsi: must be 6 to 15 digits"},
		{"", []string{"terminal", "add", "--im", "alice", "--imsi", "00101a"}, "imsi: must be 6 to 15 digits"},
		{"", []string{"terminal", "add", "--im", "alice", "--imsi", ""}, "imsi: must be 6 to 15 digits"},
		{"", []string{"terminal", "add", "--im", "alice", "--mac", "aa:bb:cc:dd:ee"}, "mac: must be an EUI-48 address"},
		{"", []string{"terminal", "add", "--im", "alice", "--mac", "gg:bb:cc:dd:ee:ff"}, "mac: must be an EUI-48 address"},
		{"", []string{"terminal", "add", "--im", "alice", "--msisdn", "441632960001"}, "msisdn: must be an E.164 number"},
		{"", []string{"terminal", "add", "--im", "alice", "--imsi", "001010000000009", "--kind", "robot"}, "kind: must be legacy or smart"},
		{"", []string{"terminal", "add", "--im", "alice", "--imsi", "001010000000009", "--caps", "audio,smell"}, `caps: unknown capability "smell"`},
		{"", []string{"terminal", "add", "--im", "alice", "--imsi", "001010000000009", "--caps", "audio,,text"}, `caps: unknown capability ""`},
		{"", []string{"terminal", "add", "--im", "Al ice", "--imsi", "001010000000009"}, "im_id: must be 1 to 64 characters"},
		{"", []string{"terminal", "add", "--im", "nobody", "--imsi", "001010000000009"}, "user nobody: not found"},
		{"", []string{"terminal", "add", "--im", "bob", "--imsi", "001010000000001"}, "terminal imsi:001010000000001: already exists"},
		{"", []string{"terminal", "add", "--im", "bob", "--imsi", "001010000000009", "--active=maybe"}, `invalid argument "maybe" for "--active"`},
		{"", []string{"terminal", "add", "--im", "bob", "--imsi", "001010000000009", "stray"}, `arguments: unexpected "stray"`},
		{"", []string{"terminal", "list", "--im", "-x-"}, "im_id: must be 1 to 64 characters"},
		// One IM ID rule, the registry's (README "IM IDs"): nothing is
		// folded or mapped onto an existing user.
		{"", []string{"terminal", "list", "--im", "ALICE"}, "im_id: must be 1 to 64 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit: upper-case 'A' is not allowed"},
		{"pw\n", []string{"user", "add", "\u212aate", "--password-stdin"}, "im_id: must be 1 to 64 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit: character U+212A is not allowed"},
		{"pw\n", []string{"user", "add", " alice", "--password-stdin"}, "im_id: must be 1 to 64 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit: ' ' at position 1 is not allowed"},
		{"", []string{"contact", "list", "--owner", "Bob"}, "owner: must be 1 to 64 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit: upper-case 'B' is not allowed"},
		{"", []string{"terminal", "list", "--im", "nobody"}, "user nobody: not found"},
		{"", []string{"terminal", "show"}, "ID: argument is required"},
		{"", []string{"terminal", "show", "one"}, "id: must be a positive integer"},
		{"", []string{"terminal", "show", "0"}, "id: must be a positive integer"},
		{"", []string{"terminal", "show", "-5"}, "unknown shorthand flag: '5' in -5"},
		{"", []string{"terminal", "show", "99"}, "terminal 99: not found"},
		{"", []string{"terminal", "show", "1", "-o", "xml"}, "output: must be table or json"},
		{"", []string{"terminal", "activate", "99"}, "terminal 99: not found"},
		{"", []string{"terminal", "activate", "x"}, "id: must be a positive integer"},
		{"", []string{"terminal", "deactivate"}, "ID: argument is required"},
		{"", []string{"terminal", "remove", "99"}, "terminal 99: not found"},
		{"", []string{"terminal", "remove", "1", "2"}, `arguments: unexpected "2"`},
		{"", []string{"terminal", "qr", "99"}, "terminal 99: not found"},
		{"", []string{"terminal", "qr", "1", "--size", "10", "--png", "x.png"}, "size: must be 64 to 4096 pixels"},
		{"", []string{"terminal", "qr", "1", "--png", ""}, "png: must name a file"},
		{"", []string{"--domain", "bad_domain", "terminal", "qr", "1"}, "domain: must be a DNS name"},
		{"", []string{"contact", "import", "--qr", png}, "owner: --owner is required"},
		{"", []string{"contact", "import", "--owner", "bob"}, "qr: --qr is required"},
		{"", []string{"contact", "import", "--owner", "B O B", "--qr", png}, "owner: must be 1 to 64 characters"},
		{"", []string{"contact", "import", "--owner", "nobody", "--qr", png}, "user nobody: not found"},
		{"", []string{"contact", "import", "--owner", "bob", "--qr", filepath.Join(filepath.Dir(db), "missing.png")}, "qr: must be a readable file"},
		{"", []string{"contact", "import", "--owner", "bob", "--qr", notPNG}, "qr: must be a PNG or JPEG picture"},
		{"", []string{"contact", "list"}, "owner: --owner is required"},
		{"", []string{"contact", "list", "--owner", "nobody"}, "user nobody: not found"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := cli(t, db, tt.stdin, tt.args...)
			if r.code == 0 {
				t.Fatalf("exit 0, want non-zero; stdout %q", r.stdout)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
			lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "b2bua: ") || !strings.Contains(lines[0], tt.want) {
				t.Fatalf("stderr %q, want one line \"b2bua: ...%s...\"", r.stderr, tt.want)
			}
			if tt.stdin != "" && strings.TrimSpace(tt.stdin) != "" && strings.Contains(r.stderr, strings.TrimSpace(tt.stdin)) {
				t.Fatalf("stderr %q echoes the password", r.stderr)
			}
		})
	}
	if after := state(t, db); after != before {
		t.Fatalf("a failed command changed the registry:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestCLIBadArgumentsTouchNothing: a bad argument never creates the
// database file.
func TestCLIBadArgumentsTouchNothing(t *testing.T) {
	db := newDB(t)
	for _, a := range [][]string{
		{"terminal", "add", "--im", "alice", "--imsi", "12"},
		{"user", "add", "alice"},
		{"terminal", "show", "x"},
		{"user", "list", "-o", "yaml"},
	} {
		if r := cli(t, db, "", a...); r.code == 0 {
			t.Fatalf("%v: exit 0", a)
		}
	}
	if _, err := os.Stat(db); !os.IsNotExist(err) {
		t.Fatalf("bad arguments created %s", db)
	}
}

func TestCLIPasswordNeverStored(t *testing.T) {
	db := newDB(t)
	const pw = "Correct-Horse-Battery-Staple"
	r := cli(t, db, pw+"\n", "user", "add", "erin", "--password-stdin")
	if r.code != 0 || strings.Contains(r.stdout+r.stderr, pw) {
		t.Fatalf("user add: %+v", r)
	}
	r = cli(t, db, pw+"2\n", "user", "passwd", "erin", "--password-stdin")
	if r.code != 0 || strings.Contains(r.stdout+r.stderr, pw) {
		t.Fatalf("user passwd: %+v", r)
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(db + suffix)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(pw)) {
			t.Fatalf("%s holds the plaintext password", db+suffix)
		}
	}
}

// TestCLIQRRoundTrip: bob scans alice's terminal's code and has her in his
// contacts, through a real encoder, a PNG file and a real decoder.
func TestCLIQRRoundTrip(t *testing.T) {
	db := newDB(t)
	seed(t, db)
	png := filepath.Join(filepath.Dir(db), "alice.png")
	if out := ok(t, db, "", "--domain", "im.example", "terminal", "qr", "2", "--png", png); out != "" {
		t.Fatalf("qr --png printed %q", out)
	}
	if id := ok(t, db, "", "contact", "import", "--owner", "bob", "--qr", png); id != "1\n" {
		t.Fatalf("contact import printed %q, want the ID 1", id)
	}
	out := ok(t, db, "", "contact", "list", "--owner", "bob")
	for _, w := range []string{"alice", "im.example", "mac:aa:bb:cc:dd:ee:ff", "Alice Smith"} {
		if !strings.Contains(out, w) {
			t.Fatalf("contact list %q lacks %q", out, w)
		}
	}
	var cl struct {
		Contacts []struct {
			ID       int64  `json:"id"`
			Owner    string `json:"owner"`
			IMID     string `json:"im_id"`
			Domain   string `json:"domain"`
			MobileID *struct {
				Type  string `json:"type"`
				Value string `json:"value"`
			} `json:"mobile_id"`
			Display string `json:"display"`
		} `json:"contacts"`
	}
	if err := json.Unmarshal([]byte(ok(t, db, "", "contact", "list", "--owner", "bob", "--output", "json")), &cl); err != nil {
		t.Fatal(err)
	}
	if len(cl.Contacts) != 1 {
		t.Fatalf("contacts = %+v", cl)
	}
	c := cl.Contacts[0]
	if c.ID != 1 || c.Owner != "bob" || c.IMID != "alice" || c.Domain != "im.example" || c.MobileID == nil ||
		c.MobileID.Type != "mac" || c.MobileID.Value != "aa:bb:cc:dd:ee:ff" || c.Display != "Alice Smith" {
		t.Fatalf("contact = %+v", c)
	}
	// Scanning the same code twice is refused, not duplicated.
	r := cli(t, db, "", "contact", "import", "--owner", "bob", "--qr", png)
	if r.code == 0 || !strings.Contains(r.stderr, "already exists") {
		t.Fatalf("second import: %+v", r)
	}
	if out := ok(t, db, "", "contact", "list", "--owner", "alice"); strings.Contains(out, "alice ") {
		t.Fatalf("alice's own contacts changed: %q", out)
	}
}
