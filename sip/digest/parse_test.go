package digest

import (
	"context"
	"errors"
	"maps"
	"sort"
	"strings"
	"testing"
)

func TestParseCredentials(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want credentials // nil: must fail
	}{
		{"tokens and quoted", `Digest username="alice", nc=00000001, qop=auth`,
			credentials{"username": "alice", "nc": "00000001", "qop": "auth"}},
		{"scheme and names case-insensitive", `digest USERNAME="a", Realm="r"`,
			credentials{"username": "a", "realm": "r"}},
		{"comma inside quotes", `Digest uri="sip:a@b;x=1,2", realm="r"`,
			credentials{"uri": "sip:a@b;x=1,2", "realm": "r"}},
		{"escaped quote and backslash", `Digest username="a\"b\\c", realm="r"`,
			credentials{"username": `a"b\c`, "realm": "r"}},
		{"escaped ordinary char", `Digest username="\a"`, credentials{"username": "a"}},
		{"linear whitespace", "Digest\tusername = \"a\" ,\r\n realm\t=\t\"r\"",
			credentials{"username": "a", "realm": "r"}},
		{"empty list elements", `Digest , username="a",, realm="r",`,
			credentials{"username": "a", "realm": "r"}},
		{"empty quoted value", `Digest opaque=""`, credentials{"opaque": ""}},
		{"unknown parameters kept", `Digest foo=bar, baz="q"`, credentials{"foo": "bar", "baz": "q"}},
		{"scheme only", `Digest`, credentials{}},
		{"UTF-8 in quotes", `Digest username="zoë"`, credentials{"username": "zoë"}},
		{"duplicate", `Digest nonce="a", nonce="b"`, nil},
		{"duplicate other case", `Digest nonce="a", NONCE="a"`, nil},
		{"Basic", `Basic YWxhZGRpbjpvcGVuc2VzYW1l`, nil},
		{"no scheme", `username="a"`, nil},
		{"scheme glued", `Digestusername="a"`, nil},
		{"missing value", `Digest username=`, nil},
		{"missing equals", `Digest username "a"`, nil},
		{"missing comma", `Digest username="a" realm="r"`, nil},
		{"unterminated", `Digest username="a`, nil},
		{"escape at end", `Digest username="a\`, nil},
		{"escaped newline", "Digest username=\"a\\\nb\"", nil},
		{"escaped control char", "Digest username=\"a\\\x03b\"", nil},
		{"control char", "Digest username=\"a\x00b\"", nil},
		{"junk name", `Digest ="a"`, nil},
		{"trailing junk", `Digest a=b c`, nil},
		{"too long", "Digest opaque=\"" + strings.Repeat("x", maxHeaderLen) + "\"", nil},
		{"too many", "Digest " + manyParams(maxParams+1), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCredentials(tt.in)
			if tt.want == nil {
				if err == nil {
					t.Fatalf("parsed %q as %v, want an error", tt.in, got)
				}
				if !errors.Is(err, errSyntax) {
					t.Fatalf("error %v does not wrap errSyntax", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse %q: %v", tt.in, err)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func manyParams(n int) string {
	var parts []string
	for i := 0; i < n; i++ {
		parts = append(parts, "p"+strings.Repeat("x", i)+"=1")
	}
	return strings.Join(parts, ", ")
}

// render writes c back in canonical form, quoting every value.
func render(c credentials) string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+"="+quote(c[k]))
	}
	return "Digest " + strings.Join(parts, ", ")
}

// FuzzParseCredentials: the parser never panics, and whatever it accepts
// survives a render and re-parse unchanged (quoting and unquoting agree).
// The seed corpus is in testdata/fuzz/FuzzParseCredentials.
func FuzzParseCredentials(f *testing.F) {
	f.Add(`Digest username="alice", realm="im.example", nonce="abc", uri="sip:bob@im.example", response="0123", algorithm=MD5, qop=auth, nc=00000001, cnonce="x"`)
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseCredentials(s)
		if err != nil {
			return
		}
		again, err := parseCredentials(render(c))
		if err != nil {
			t.Fatalf("render of %q does not parse: %v", s, err)
		}
		if !maps.Equal(c, again) {
			t.Fatalf("round trip changed %v to %v", c, again)
		}
	})
}

// FuzzVerify: any header value gives an error, never a panic and never a
// success, since no input can carry a nonce minted under the random secret.
func FuzzVerify(f *testing.F) {
	f.Add("INVITE", "sip:bob@im.example", `Digest username="alice", realm="im.example", nonce="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", uri="sip:bob@im.example", response="00", qop=auth, nc=00000001, cnonce="x"`)
	v, _, _ := newVerifier(f, nil)
	f.Fuzz(func(t *testing.T, method, uri, header string) {
		if _, err := v.VerifyRequest(context.Background(), method, uri, header); err == nil {
			t.Fatalf("accepted %q", header)
		}
	})
}

func TestUsername(t *testing.T) {
	for in, want := range map[string]string{
		`Digest username="alice", realm="x", nonce="n"`: "alice",
		`Digest realm="x", username=bob`:                "bob",
		`Digest realm="x"`:                              "",
		`Basic YWxpY2U6c2VjcmV0`:                        "",
		`Digest username="a", username="b"`:             "",
	} {
		if got := Username(in); got != want {
			t.Errorf("Username(%s) = %q, want %q", in, got, want)
		}
	}
}
