package digest

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imcall/b2bua/registry"
)

// TestPublishedVectors checks the response computation and the parser
// against the worked examples of RFC 2617 section 3.5 (MD5) and RFC 7616
// section 3.9.1 (MD5 and SHA-256): the Authorization values as published
// are parsed, and the response computed from their parameters and the
// published password must equal the published response.
func TestPublishedVectors(t *testing.T) {
	tests := []struct {
		name     string
		header   string
		password string
		alg      algorithm
	}{
		{
			name:     "RFC 2617 3.5 MD5",
			password: "Circle Of Life",
			alg:      algMD5,
			header: `Digest username="Mufasa",
                 realm="testrealm@host.com",
                 nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
                 uri="/dir/index.html",
                 qop=auth,
                 nc=00000001,
                 cnonce="0a4f113b",
                 response="6629fae49393a05397450978507c4ef1",
                 opaque="5ccc069c403ebaf9f0171e9517f40e41"`,
		},
		{
			name:     "RFC 7616 3.9.1 MD5",
			password: "Circle of Life",
			alg:      algMD5,
			header: `Digest username="Mufasa",
       realm="http-auth@example.org",
       uri="/dir/index.html",
       algorithm=MD5,
       nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
       nc=00000001,
       cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
       qop=auth,
       response="8ca523f5e9506fed4657c9700eebdbec",
       opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"`,
		},
		{
			name:     "RFC 7616 3.9.1 SHA-256",
			password: "Circle of Life",
			alg:      algSHA256,
			header: `Digest username="Mufasa",
       realm="http-auth@example.org",
       uri="/dir/index.html",
       algorithm=SHA-256,
       nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
       nc=00000001,
       cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
       qop=auth,
       response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
       opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseCredentials(tt.header)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			alg, ok := parseAlgorithm(c["algorithm"])
			if !ok || alg != tt.alg {
				t.Fatalf("algorithm %q: got %q", c["algorithm"], alg)
			}
			ha1 := hexHash(alg, c["username"]+":"+c["realm"]+":"+tt.password)
			got := response(alg, ha1, c["nonce"], c["nc"], c["cnonce"], c["qop"], "GET", c["uri"])
			if got != c["response"] {
				t.Errorf("response = %s, published %s", got, c["response"])
			}
		})
	}
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

const realm = "im.example"

var responseParam = regexp.MustCompile(`response="[0-9a-f]*", `)

// users is a credential store with "alice" (password "secret") and a count
// of lookups, so tests can see that every request did the same work.
type users struct {
	mu      sync.Mutex
	creds   map[string]registry.Credentials
	lookups int
	err     error
}

func newUsers() *users {
	return &users{creds: map[string]registry.Credentials{
		"alice":   registry.NewCredentials("alice", realm, "secret"),
		"carol":   registry.NewCredentials("carol", "other.example", "secret"),
		"dave":    {Realm: realm, HA1MD5: registry.NewCredentials("dave", realm, "secret").HA1MD5},
		"quote\"": registry.NewCredentials("quote\"", realm, "secret"),
	}}
}

func (u *users) lookup(_ context.Context, name string) (registry.Credentials, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.lookups++
	if u.err != nil {
		return registry.Credentials{}, u.err
	}
	c, ok := u.creds[name]
	if !ok {
		return registry.Credentials{}, fmt.Errorf("user %q: %w", name, registry.ErrNotFound)
	}
	return c, nil
}

func newVerifier(t testing.TB, mod func(*Config)) (*Verifier, *clock, *users) {
	t.Helper()
	clk := &clock{t: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)}
	u := newUsers()
	// Both algorithms, so that every test can answer with either; the
	// default (MD5 alone) has TestDefaultAlgorithm.
	cfg := Config{Realm: realm, Lookup: u.lookup, NonceTTL: time.Minute, Now: clk.now, Algorithms: []string{"SHA-256", "MD5"}}
	if mod != nil {
		mod(&cfg)
	}
	v, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v, clk, u
}

// answer is what a UA does with a challenge: it picks the challenge of the
// wanted algorithm and computes an Authorization value.
type answer struct {
	user, password, method, uri, nc, cnonce string
	alg                                     algorithm
	extra                                   string // appended parameters
}

func (a answer) to(t *testing.T, challenges []string) string {
	t.Helper()
	for _, ch := range challenges {
		c, err := parseCredentials(ch)
		if err != nil {
			t.Fatalf("challenge %q: %v", ch, err)
		}
		if c["algorithm"] != string(a.alg) {
			continue
		}
		return a.withNonce(c["nonce"])
	}
	t.Fatalf("no %s challenge in %q", a.alg, challenges)
	return ""
}

func (a answer) withNonce(nonce string) string {
	if a.method == "" {
		a.method = "INVITE"
	}
	if a.uri == "" {
		a.uri = "sip:bob@im.example"
	}
	if a.nc == "" {
		a.nc = "00000001"
	}
	if a.cnonce == "" {
		a.cnonce = "0a4f113b"
	}
	ha1 := hexHash(a.alg, a.user+":"+realm+":"+a.password)
	resp := response(a.alg, ha1, nonce, a.nc, a.cnonce, "auth", a.method, a.uri)
	return fmt.Sprintf(`Digest username=%s, realm="%s", nonce="%s", uri="%s", response="%s", algorithm=%s, qop=auth, nc=%s, cnonce="%s"%s`,
		quote(a.user), realm, nonce, a.uri, resp, a.alg, a.nc, a.cnonce, a.extra)
}

func TestChallenges(t *testing.T) {
	v, _, _ := newVerifier(t, nil)
	for _, stale := range []bool{false, true} {
		got := v.Challenges(stale)
		if len(got) != 2 {
			t.Fatalf("got %d challenges, want 2", len(got))
		}
		var nonces []string
		for i, want := range []string{"SHA-256", "MD5"} {
			c, err := parseCredentials(got[i])
			if err != nil {
				t.Fatalf("challenge %q does not parse: %v", got[i], err)
			}
			if c["algorithm"] != want || c["realm"] != realm || c["qop"] != "auth" || c["nonce"] == "" {
				t.Errorf("challenge %d = %q", i, got[i])
			}
			if (c["stale"] == "TRUE") != stale {
				t.Errorf("challenge %q: stale want %v", got[i], stale)
			}
			nonces = append(nonces, c["nonce"])
		}
		if nonces[0] != nonces[1] {
			t.Errorf("nonces differ: %v", nonces)
		}
	}
	a, b := v.Challenges(false), v.Challenges(false)
	if a[0] == b[0] {
		t.Error("two challenges carry the same nonce")
	}
}

func TestVerifyAccepts(t *testing.T) {
	tests := []struct {
		name       string
		a          answer
		requestURI string
	}{
		{"MD5", answer{user: "alice", password: "secret", alg: algMD5}, "sip:bob@im.example"},
		{"SHA-256", answer{user: "alice", password: "secret", alg: algSHA256}, "sip:bob@im.example"},
		{"REGISTER", answer{user: "alice", password: "secret", alg: algSHA256, method: "REGISTER", uri: "sip:im.example"}, "sip:im.example"},
		{"MESSAGE", answer{user: "alice", password: "secret", alg: algMD5, method: "MESSAGE"}, "sip:bob@im.example"},
		{"host case", answer{user: "alice", password: "secret", alg: algMD5, uri: "SIP:bob@IM.Example;transport=udp"}, "sip:bob@im.example;transport=udp"},
		{"no request URI check", answer{user: "alice", password: "secret", alg: algMD5, uri: "sip:elsewhere"}, ""},
		// SIPp's [authentication] without -auth_uri: sip:HOST:PORT.
		{"SIPp INVITE uri", answer{user: "alice", password: "secret", alg: algMD5, uri: "sip:127.0.0.1:5060"}, "sip:bob@127.0.0.1:5060"},
		{"SIPp REGISTER uri", answer{user: "alice", password: "secret", alg: algMD5, method: "REGISTER", uri: "sip:127.0.0.1:5060"}, "sip:127.0.0.1:5060"},
		{"port differs", answer{user: "alice", password: "secret", alg: algMD5, uri: "sip:bob@im.example:5060"}, "sip:bob@im.example"},
		{"transport parameter differs", answer{user: "alice", password: "secret", alg: algMD5, uri: "sip:bob@im.example"}, "sip:bob@im.example;transport=tcp"},
		{"sips for sip", answer{user: "alice", password: "secret", alg: algMD5, uri: "sips:bob@im.example"}, "sip:bob@im.example"},
		{"IPv6 host", answer{user: "alice", password: "secret", alg: algMD5, uri: "sip:[::1]:5060"}, "sip:bob@[::1]:5070"},
		{"unknown parameters ignored", answer{user: "alice", password: "secret", alg: algMD5, extra: `, opaque="x,y", foo=bar`}, "sip:bob@im.example"},
		{"username with quote", answer{user: "quote\"", password: "secret", alg: algSHA256}, "sip:bob@im.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, _, _ := newVerifier(t, nil)
			h := tt.a.to(t, v.Challenges(false))
			method := tt.a.method
			if method == "" {
				method = "INVITE"
			}
			user, err := v.VerifyRequest(context.Background(), method, tt.requestURI, h)
			if err != nil {
				t.Fatalf("VerifyRequest(%s): %v", h, err)
			}
			if user != tt.a.user {
				t.Errorf("user = %q, want %q", user, tt.a.user)
			}
		})
	}
}

func TestVerifyRejects(t *testing.T) {
	good := answer{user: "alice", password: "secret", alg: algMD5}
	tests := []struct {
		name   string
		header func(nonce string) string
		method string
		uri    string
	}{
		{"wrong password", func(n string) string { a := good; a.password = "guess"; return a.withNonce(n) }, "", ""},
		{"wrong method", func(n string) string { return good.withNonce(n) }, "BYE", ""},
		{"other request URI", func(n string) string { return good.withNonce(n) }, "", "sip:carol@im.example"},
		{"other user part case", func(n string) string { return good.withNonce(n) }, "", "sip:BOB@im.example"},
		{"other host", func(n string) string { return good.withNonce(n) }, "", "sip:bob@other.example"},
		{"tel uri for a sip target", func(n string) string { a := good; a.uri = "tel:+15551234"; return a.withNonce(n) }, "", "sip:+15551234@im.example"},
		{"user parameter hides the host", func(n string) string { a := good; a.uri = "sip:bob;x=@other.example"; return a.withNonce(n) }, "", "sip:bob@im.example"},
		{"other realm", func(n string) string { return strings.Replace(good.withNonce(n), `realm="im.example"`, `realm="x"`, 1) }, "", ""},
		{"qop absent", func(n string) string { return strings.Replace(good.withNonce(n), "qop=auth, ", "", 1) }, "", ""},
		{"qop auth-int", func(n string) string { return strings.Replace(good.withNonce(n), "qop=auth", "qop=auth-int", 1) }, "", ""},
		{"MD5-sess", func(n string) string {
			return strings.Replace(good.withNonce(n), "algorithm=MD5", "algorithm=MD5-sess", 1)
		}, "", ""},
		{"SHA-512-256", func(n string) string {
			return strings.Replace(good.withNonce(n), "algorithm=MD5", "algorithm=SHA-512-256", 1)
		}, "", ""},
		{"algorithm swapped", func(n string) string {
			return strings.Replace(good.withNonce(n), "algorithm=MD5", "algorithm=SHA-256", 1)
		}, "", ""},
		{"nc zero", func(n string) string { a := good; a.nc = "00000000"; return a.withNonce(n) }, "", ""},
		{"nc short", func(n string) string { a := good; a.nc = "1"; return a.withNonce(n) }, "", ""},
		{"nc not hex", func(n string) string { a := good; a.nc = "0000000g"; return a.withNonce(n) }, "", ""},
		{"no cnonce", func(n string) string { return strings.Replace(good.withNonce(n), `, cnonce="0a4f113b"`, "", 1) }, "", ""},
		{"userhash", func(n string) string { return good.withNonce(n) + ", userhash=true" }, "", ""},
		{"no response", func(n string) string { return responseParam.ReplaceAllString(good.withNonce(n), "") }, "", ""},
		{"empty response", func(n string) string {
			return responseParam.ReplaceAllString(good.withNonce(n), `response="", `)
		}, "", ""},
		{"short response", func(n string) string {
			return responseParam.ReplaceAllStringFunc(good.withNonce(n), func(m string) string { return m[:20] + `", ` })
		}, "", ""},
		{"duplicate nonce", func(n string) string { return good.withNonce(n) + `, nonce="` + n + `"` }, "", ""},
		{"Basic", func(string) string { return "Basic YWxpY2U6c2VjcmV0" }, "", ""},
		{"empty", func(string) string { return "" }, "", ""},
		{"user for another realm", func(n string) string { a := good; a.user = "carol"; return a.withNonce(n) }, "", ""},
		{"user without SHA-256 hash", func(n string) string { a := good; a.user = "dave"; a.alg = algSHA256; return a.withNonce(n) }, "", ""},
		{"tampered nonce", func(n string) string { return good.withNonce(flip(n, 5)) }, "", ""},
		{"tampered nonce time", func(n string) string { return good.withNonce(flip(n, 0)) }, "", ""},
		{"truncated nonce", func(n string) string { return good.withNonce(n[:len(n)-1]) }, "", ""},
		{"foreign nonce", func(string) string { return good.withNonce("dcd98b7102dd2f0e8b11d0f600bfb0c093") }, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, _, _ := newVerifier(t, nil)
			nonce := nonceOf(t, v.Challenges(false))
			method := tt.method
			if method == "" {
				method = "INVITE"
			}
			uri := tt.uri
			if uri == "" {
				uri = "sip:bob@im.example"
			}
			_, err := v.VerifyRequest(context.Background(), method, uri, tt.header(nonce))
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

func nonceOf(t *testing.T, challenges []string) string {
	t.Helper()
	c, err := parseCredentials(challenges[0])
	if err != nil {
		t.Fatal(err)
	}
	return c["nonce"]
}

// flip changes one character of a base64url string to another valid one.
func flip(s string, i int) string {
	b := []byte(s)
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

// TestUnknownUserLooksLikeWrongPassword: the error text, the sentinel and
// the work done (one lookup, one response computation) are the same.
func TestUnknownUserLooksLikeWrongPassword(t *testing.T) {
	for _, alg := range []algorithm{algMD5, algSHA256} {
		t.Run(string(alg), func(t *testing.T) {
			v, _, u := newVerifier(t, nil)
			wrong := answer{user: "alice", password: "guess", alg: alg}.to(t, v.Challenges(false))
			_, errWrong := v.Verify(context.Background(), "INVITE", wrong)
			lookupsWrong := u.lookups
			unknown := answer{user: "mallory", password: "guess", alg: alg}.to(t, v.Challenges(false))
			_, errUnknown := v.Verify(context.Background(), "INVITE", unknown)
			if !errors.Is(errWrong, ErrInvalid) || !errors.Is(errUnknown, ErrInvalid) {
				t.Fatalf("errors: wrong password %v, unknown user %v", errWrong, errUnknown)
			}
			if errWrong.Error() != errUnknown.Error() {
				t.Errorf("answers differ: %q vs %q", errWrong, errUnknown)
			}
			if lookupsWrong != 1 || u.lookups != 2 {
				t.Errorf("lookups: %d then %d, want 1 then 2", lookupsWrong, u.lookups)
			}
		})
	}
}

func TestExpiredNonceIsStale(t *testing.T) {
	v, clk, _ := newVerifier(t, nil)
	ch := v.Challenges(false)
	clk.add(time.Minute + time.Second)
	_, err := v.Verify(context.Background(), "INVITE", answer{user: "alice", password: "secret", alg: algSHA256}.to(t, ch))
	if !errors.Is(err, ErrStale) {
		t.Fatalf("right password, expired nonce: err = %v, want ErrStale", err)
	}
	// Stale is only said to a UA that knows the password (RFC 7616 3.3).
	_, err = v.Verify(context.Background(), "INVITE", answer{user: "alice", password: "guess", alg: algSHA256, nc: "00000002"}.to(t, ch))
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("wrong password, expired nonce: err = %v, want ErrInvalid", err)
	}
	// A nonce from the future beyond the TTL (a clock stepped back) is
	// stale too.
	ch = v.Challenges(false)
	clk.add(-2*time.Minute - time.Second)
	_, err = v.Verify(context.Background(), "INVITE", answer{user: "alice", password: "secret", alg: algMD5}.to(t, ch))
	if !errors.Is(err, ErrStale) {
		t.Fatalf("future nonce: err = %v, want ErrStale", err)
	}
	// Within the TTL it is fine.
	ch = v.Challenges(false)
	clk.add(59 * time.Second)
	if _, err := v.Verify(context.Background(), "INVITE", answer{user: "alice", password: "secret", alg: algMD5}.to(t, ch)); err != nil {
		t.Fatalf("nonce within TTL: %v", err)
	}
}

func TestReplay(t *testing.T) {
	v, _, _ := newVerifier(t, nil)
	nonce := nonceOf(t, v.Challenges(false))
	steps := []struct {
		nc string
		ok bool
	}{
		{"00000001", true},
		{"00000001", false}, // replay
		{"00000002", true},
		{"00000005", true},
		{"00000004", true}, // late, within the window
		{"00000004", false},
		{"00000003", true},
		{"00000002", false},
		{"00000050", true},
		{"00000006", false}, // below the window
		{"0000004F", true},  // inside the window, upper-case hex
		{"0000004f", false}, // same count in lower case
		{"ffffffff", true},
		{"ffffffff", false},
	}
	for i, s := range steps {
		h := answer{user: "alice", password: "secret", alg: algMD5, nc: s.nc}.withNonce(nonce)
		_, err := v.Verify(context.Background(), "INVITE", h)
		if s.ok && err != nil {
			t.Fatalf("step %d nc=%s: %v", i, s.nc, err)
		}
		if !s.ok && !errors.Is(err, ErrInvalid) {
			t.Fatalf("step %d nc=%s: err = %v, want ErrInvalid", i, s.nc, err)
		}
	}
	// A second nonce has its own counts.
	h := answer{user: "alice", password: "secret", alg: algMD5}.to(t, v.Challenges(false))
	if _, err := v.Verify(context.Background(), "INVITE", h); err != nil {
		t.Fatalf("second nonce: %v", err)
	}
}

// TestReplayCacheBounded: with room for two nonces, using a third forgets the
// oldest, and that nonce is then refused as stale (never accepted again).
func TestReplayCacheBounded(t *testing.T) {
	v, clk, _ := newVerifier(t, func(c *Config) { c.MaxNonces = 2 })
	var nonces []string
	for i := 0; i < 3; i++ {
		n := nonceOf(t, v.Challenges(false))
		clk.add(time.Millisecond)
		nonces = append(nonces, n)
		h := answer{user: "alice", password: "secret", alg: algMD5}.withNonce(n)
		if _, err := v.Verify(context.Background(), "INVITE", h); err != nil {
			t.Fatalf("nonce %d: %v", i, err)
		}
	}
	if n := v.replay.len(); n != 2 {
		t.Errorf("cache holds %d nonces, want 2", n)
	}
	for _, nc := range []string{"00000001", "00000002"} {
		h := answer{user: "alice", password: "secret", alg: algMD5, nc: nc}.withNonce(nonces[0])
		if _, err := v.Verify(context.Background(), "INVITE", h); !errors.Is(err, ErrStale) {
			t.Errorf("forgotten nonce nc=%s: err = %v, want ErrStale", nc, err)
		}
	}
	h := answer{user: "alice", password: "secret", alg: algMD5, nc: "00000002"}.withNonce(nonces[2])
	if _, err := v.Verify(context.Background(), "INVITE", h); err != nil {
		t.Errorf("remembered nonce, next count: %v", err)
	}
	// Expired entries leave the cache.
	clk.add(2 * time.Minute)
	h = answer{user: "alice", password: "secret", alg: algMD5}.to(t, v.Challenges(false))
	if _, err := v.Verify(context.Background(), "INVITE", h); err != nil {
		t.Fatalf("fresh nonce: %v", err)
	}
	if n := v.replay.len(); n != 1 {
		t.Errorf("cache holds %d nonces after expiry, want 1", n)
	}
}

func TestSharedSecret(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	a, _, _ := newVerifier(t, func(c *Config) { c.Secret = secret })
	b, _, _ := newVerifier(t, func(c *Config) { c.Secret = secret })
	other, _, _ := newVerifier(t, func(c *Config) { c.Secret = []byte("fedcba9876543210fedcba9876543210") })
	h := answer{user: "alice", password: "secret", alg: algSHA256}.to(t, a.Challenges(false))
	if _, err := b.Verify(context.Background(), "INVITE", h); err != nil {
		t.Errorf("nonce from a node with the same secret: %v", err)
	}
	if _, err := other.Verify(context.Background(), "INVITE", h); !errors.Is(err, ErrInvalid) {
		t.Errorf("nonce from a node with another secret: err = %v, want ErrInvalid", err)
	}
}

func TestLookupFailureIsNotAnAuthFailure(t *testing.T) {
	v, _, u := newVerifier(t, nil)
	dbDown := errors.New("database is locked")
	u.err = dbDown
	h := answer{user: "alice", password: "secret", alg: algMD5}.to(t, v.Challenges(false))
	_, err := v.Verify(context.Background(), "INVITE", h)
	if !errors.Is(err, dbDown) || errors.Is(err, ErrInvalid) || errors.Is(err, ErrStale) {
		t.Fatalf("err = %v, want the lookup error only", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := v.Verify(ctx, "INVITE", h); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: err = %v", err)
	}
}

func TestNewValidates(t *testing.T) {
	lookup := func(context.Context, string) (registry.Credentials, error) { return registry.Credentials{}, nil }
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no realm", Config{Lookup: lookup}},
		{"no lookup", Config{Realm: realm}},
		{"negative TTL", Config{Realm: realm, Lookup: lookup, NonceTTL: -1}},
		{"short secret", Config{Realm: realm, Lookup: lookup, Secret: []byte("short")}},
		{"negative cap", Config{Realm: realm, Lookup: lookup, MaxNonces: -1}},
	}
	for _, tt := range tests {
		if _, err := New(tt.cfg); err == nil {
			t.Errorf("%s: New accepted %+v", tt.name, tt.cfg)
		}
	}
	if _, err := New(Config{Realm: realm, Lookup: lookup}); err != nil {
		t.Errorf("minimal config: %v", err)
	}
}

// TestConcurrentVerify runs under -race: many goroutines verifying with
// their own nonces and counts.
func TestConcurrentVerify(t *testing.T) {
	v, _, _ := newVerifier(t, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 8*20)
	for g := 0; g < 8; g++ {
		nonce := nonceOf(t, v.Challenges(false))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; i <= 20; i++ {
				h := answer{user: "alice", password: "secret", alg: algSHA256, nc: fmt.Sprintf("%08x", i)}.withNonce(nonce)
				if _, err := v.Verify(context.Background(), "INVITE", h); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestRegistryCredentialsMatch(t *testing.T) {
	// The HA1 the registry stores is the one this package recomputes.
	c := registry.NewCredentials("alice", realm, "secret")
	m := md5.Sum([]byte("alice:" + realm + ":secret"))
	s := sha256.Sum256([]byte("alice:" + realm + ":secret"))
	if c.HA1MD5 != hex.EncodeToString(m[:]) || c.HA1SHA256 != hex.EncodeToString(s[:]) {
		t.Fatalf("registry credentials %+v differ from H(user:realm:password)", c)
	}
}

// TestDefaultAlgorithm: without Config.Algorithms one MD5 challenge is
// offered, and SHA-256 credentials are refused.
func TestDefaultAlgorithm(t *testing.T) {
	v, _, _ := newVerifier(t, func(c *Config) { c.Algorithms = nil })
	ch := v.Challenges(false)
	if len(ch) != 1 || !strings.Contains(ch[0], "algorithm=MD5") {
		t.Fatalf("default challenges = %q, want one MD5", ch)
	}
	md5 := answer{user: "alice", password: "secret", alg: algMD5}
	if _, err := v.VerifyRequest(context.Background(), "INVITE", "sip:bob@im.example", md5.to(t, ch)); err != nil {
		t.Errorf("MD5 answer: %v", err)
	}
	sha := answer{user: "alice", password: "secret", alg: algSHA256}
	if _, err := v.VerifyRequest(context.Background(), "INVITE", "sip:bob@im.example", sha.withNonce(nonceOf(t, v.Challenges(false)))); !errors.Is(err, ErrInvalid) {
		t.Errorf("SHA-256 answer: err = %v, want ErrInvalid", err)
	}
}

// TestServerHosts: a digest uri naming the server itself, without a user,
// is accepted whatever the Request-URI (SIPp without -auth_uri).
func TestServerHosts(t *testing.T) {
	v, _, _ := newVerifier(t, func(c *Config) { c.ServerHosts = []string{"127.0.0.1", "[::1]"} })
	for _, tc := range []struct {
		uri  string
		want bool
	}{
		{"sip:127.0.0.1:5060", true},
		{"sip:127.0.0.1", true},
		{"sip:[::1]:5060", true},
		{"sip:127.0.0.2:5060", false},
		{"sip:carol@127.0.0.1:5060", false},
	} {
		a := answer{user: "alice", password: "secret", alg: algMD5, uri: tc.uri}
		_, err := v.VerifyRequest(context.Background(), "INVITE", "sip:bob@im.example", a.to(t, v.Challenges(false)))
		if (err == nil) != tc.want {
			t.Errorf("digest uri %s for sip:bob@im.example: err = %v, want accepted %v", tc.uri, err, tc.want)
		}
	}
}

func TestAlgorithmsConfig(t *testing.T) {
	v, _, _ := newVerifier(t, func(c *Config) { c.Algorithms = []string{"MD5"} })
	ch := v.Challenges(false)
	if len(ch) != 1 || !strings.Contains(ch[0], "algorithm=MD5") {
		t.Fatalf("MD5 only: challenges %q", ch)
	}
	nonce := nonceOf(t, ch)
	if _, err := v.Verify(context.Background(), "INVITE", answer{user: "alice", password: "secret", alg: algSHA256}.withNonce(nonce)); !errors.Is(err, ErrInvalid) {
		t.Errorf("SHA-256 answer to an MD5-only verifier: err = %v, want ErrInvalid", err)
	}
	if _, err := v.Verify(context.Background(), "INVITE", answer{user: "alice", password: "secret", alg: algMD5}.withNonce(nonce)); err != nil {
		t.Errorf("MD5 answer: %v", err)
	}

	v, _, _ = newVerifier(t, func(c *Config) { c.Algorithms = []string{"md5", "sha-256"} })
	ch = v.Challenges(false)
	if len(ch) != 2 || !strings.Contains(ch[0], "algorithm=MD5") || !strings.Contains(ch[1], "algorithm=SHA-256") {
		t.Fatalf("MD5 first: challenges %q", ch)
	}

	lookup := newUsers().lookup
	for _, algs := range [][]string{{}, {"MD5", "md5"}, {"SHA-512-256"}, {""}} {
		if _, err := New(Config{Realm: realm, Lookup: lookup, Algorithms: algs}); err == nil {
			t.Errorf("New accepted Algorithms %q", algs)
		}
	}
}
