package sip_test

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	b2b "github.com/imcall/b2bua/sip"
)

// guesser authenticates INVITEs to sip:nobody@ over a raw socket: after
// authentication the B2BUA answers 404 (no such user), so 404 means
// "authenticated" and no call is set up. via, if set, is the bottom Via a
// proxy would forward (the socket is then the proxy).
type guesser struct {
	s   *rlSocket
	to  string
	via string
}

// try sends the INVITE without credentials, answers its challenge as
// user with password and returns the final status and answer.
func (g *guesser) try(user, password string) (int, string) {
	g.s.t.Helper()
	code, res := g.s.send(g.to, "INVITE", "nobody", g.vias()...)
	if code != 407 {
		return code, res
	}
	nonce := regexp.MustCompile(`(?m)^Proxy-Authenticate: .*nonce="([^"]+)"`).FindStringSubmatch(res)
	if nonce == nil {
		g.s.t.Fatalf("407 without a nonce:\n%s", res)
	}
	// The digest uri the way SIPp sends it without -auth_uri.
	uri := "sip:" + g.to
	h := func(s string) string { b := md5.Sum([]byte(s)); return hex.EncodeToString(b[:]) }
	resp := h(h(user+":im.test:"+password) + ":" + nonce[1] + ":00000001:c0ffee:auth:" + h("INVITE:"+uri))
	auth := fmt.Sprintf(`Proxy-Authorization: Digest username="%s", realm="im.test", nonce="%s", uri="%s", response="%s", algorithm=MD5, qop=auth, nc=00000001, cnonce="c0ffee"`,
		user, nonce[1], uri, resp)
	return g.s.send(g.to, "INVITE", "nobody", append(g.vias(), auth)...)
}

func (g *guesser) vias() []string {
	if g.via == "" {
		return nil
	}
	return []string{"Via: " + g.via}
}

// shape is an answer with what differs between any two answers (nonce,
// tags, Call-ID, CSeq, Via) taken out, so that two answers compare equal
// when they tell the same thing.
func shape(res string) string {
	lines := strings.Split(strings.TrimSpace(res), "\r\n")
	out := []string{lines[0]}
	for _, l := range lines[1:] {
		name, _, _ := strings.Cut(l, ":")
		switch strings.ToLower(name) {
		case "via", "from", "to", "call-id", "cseq", "content-length":
			continue
		}
		out = append(out, regexp.MustCompile(`nonce="[^"]*"`).ReplaceAllString(l, `nonce=""`))
	}
	sort.Strings(out[1:])
	return strings.Join(out, "\n")
}

// TestLockoutInterleavedSuccess: an attacker that authenticates as its own
// account between guesses at alice's password does not reset the count;
// alice is locked out from that source, its own account is not.
func TestLockoutInterleavedSuccess(t *testing.T) {
	e := newEnv(t, withDigest(), withLimits(b2b.Limits{AuthFailures: 3, AuthWindow: time.Minute, AuthLockout: time.Minute}))
	e.addUser("alice")
	e.addUser("mallory")
	g := &guesser{s: newRLSocket(t, "127.0.0.1"), to: e.addr}
	for i := 1; i <= 3; i++ {
		if code, _ := g.try("alice", fmt.Sprint("guess", i)); code != 407 {
			t.Fatalf("guess %d: %d, want 407", i, code)
		}
		if code, _ := g.try("mallory", "secret-mallory"); code != 404 {
			t.Fatalf("own account after guess %d: %d, want 404 (authenticated)", i, code)
		}
	}
	if code, _ := g.try("alice", "secret-alice"); code != 403 {
		t.Errorf("alice after 3 interleaved guesses, right password: %d, want 403", code)
	}
}

// TestLockoutNotFromAnotherAddress: guesses at alice's password from one
// address lock out alice from that address only.
func TestLockoutNotFromAnotherAddress(t *testing.T) {
	e := newEnv(t, withDigest(), withLimits(b2b.Limits{AuthFailures: 3, AuthSourceFailures: 3, AuthWindow: time.Minute, AuthLockout: time.Minute}))
	e.addUser("alice")
	attacker := &guesser{s: newRLSocket(t, "127.0.0.2"), to: e.addr}
	for i := 1; i <= 3; i++ {
		attacker.try("alice", fmt.Sprint("guess", i))
	}
	if code, _ := attacker.try("alice", "secret-alice"); code != 403 {
		t.Fatalf("attacker after 3 guesses: %d, want 403", code)
	}
	alice := &guesser{s: newRLSocket(t, "127.0.0.1"), to: e.addr}
	if code, res := alice.try("alice", "secret-alice"); code != 404 {
		t.Errorf("alice from her own address: %d, want 404 (authenticated)\n%s", code, res)
	}
}

// TestLockoutNoEnumeration: an unknown user and a known user with a wrong
// password get the same answers, attempt by attempt, before and after the
// lock-out begins.
func TestLockoutNoEnumeration(t *testing.T) {
	e := newEnv(t, withDigest(), withLimits(b2b.Limits{AuthFailures: 3, AuthWindow: time.Minute, AuthLockout: time.Minute}))
	e.addUser("alice")
	g := &guesser{s: newRLSocket(t, "127.0.0.1"), to: e.addr}
	var codes []int
	for i := 1; i <= 5; i++ {
		kc, known := g.try("alice", "wrong")
		uc, unknown := g.try("ghost", "wrong")
		if shape(known) != shape(unknown) {
			t.Errorf("attempt %d: known user answered\n%s\nunknown user answered\n%s", i, shape(known), shape(unknown))
		}
		if kc != uc {
			t.Errorf("attempt %d: %d for the known user, %d for the unknown", i, kc, uc)
		}
		codes = append(codes, kc)
	}
	if fmt.Sprint(codes) != "[407 407 407 403 403]" {
		t.Errorf("answers %v, want 407 for the 3 allowed failures, then 403", codes)
	}
}

// TestLockoutSourceRestricted: a source with many failures over many user
// names may go on authenticating as users that did so lately from it, but
// no new name gets a check.
func TestLockoutSourceRestricted(t *testing.T) {
	e := newEnv(t, withDigest(), withLimits(b2b.Limits{AuthFailures: 10, AuthSourceFailures: 4, AuthWindow: time.Minute, AuthLockout: time.Minute}))
	e.addUser("alice")
	e.addUser("bob")
	g := &guesser{s: newRLSocket(t, "127.0.0.1"), to: e.addr}
	if code, _ := g.try("alice", "secret-alice"); code != 404 {
		t.Fatalf("alice: %d, want 404", code)
	}
	for i, u := range []string{"u1", "u2", "u3", "u4"} {
		if code, _ := g.try(u, "x"); code != 407 && i < 3 {
			t.Fatalf("guess %d: %d, want 407", i+1, code)
		}
	}
	for _, tc := range []struct {
		user, pass string
		want       int
	}{{"alice", "secret-alice", 404}, {"bob", "secret-bob", 403}, {"u5", "x", 403}} {
		if code, _ := g.try(tc.user, tc.pass); code != tc.want {
			t.Errorf("%s from the restricted source: %d, want %d", tc.user, code, tc.want)
		}
	}
}

// TestLockoutBehindProxy: behind a declared proxy every sender is limited
// by the address the proxy reports in the bottom Via, never as one.
func TestLockoutBehindProxy(t *testing.T) {
	e := newEnv(t, withDigest(), withLimits(b2b.Limits{AuthFailures: 3, AuthSourceFailures: 3, AuthWindow: time.Minute, AuthLockout: time.Minute, Rate: 0.01, Burst: 8}),
		func(c *b2bConfig) { c.Proxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.3/32")} })
	e.addUser("alice")
	e.addUser("bob")
	proxy := newRLSocket(t, "127.0.0.3")
	attacker := &guesser{s: proxy, to: e.addr, via: "SIP/2.0/UDP 10.0.0.66:5060;branch=z9hG4bK-ua1;received=192.0.2.66"}
	for i := 1; i <= 3; i++ {
		attacker.try("alice", fmt.Sprint("guess", i))
	}
	if code, _ := attacker.try("bob", "secret-bob"); code != 403 {
		t.Fatalf("attacker behind the proxy after 3 failures: %d, want 403", code)
	}
	for _, tc := range []struct{ via, user string }{
		{"SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bK-ua2;received=192.0.2.7", "alice"},
		{"SIP/2.0/UDP 192.0.2.8:5060;branch=z9hG4bK-ua3", "bob"},
	} {
		u := &guesser{s: proxy, to: e.addr, via: tc.via}
		if code, res := u.try(tc.user, "secret-"+tc.user); code != 404 {
			t.Errorf("%s behind the same proxy (%s): %d, want 404\n%s", tc.user, tc.via, code, res)
		}
	}
	// The attacker's sender address has used its burst (8 requests); the
	// proxy as a whole is not limited.
	if code, _ := proxy.send(e.addr, "OPTIONS", "nobody", attacker.vias()...); code != 503 {
		t.Errorf("attacker's sender past its burst: %d, want 503", code)
	}
	if code, _ := proxy.send(e.addr, "OPTIONS", "nobody", "Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK-ua4"); code == 503 {
		t.Errorf("another sender behind the proxy rate limited: %d", code)
	}
}

// TestUserRateLimit: the per-user limit counts a user's authenticated
// requests from every address, the senders a proxy reports and its own
// alike; past its burst the user gets 503 with Retry-After wherever it
// speaks from, and another user behind the same proxy is not limited.
func TestUserRateLimit(t *testing.T) {
	e := newEnv(t, withDigest(), withLimits(b2b.Limits{UserRate: 0.01, UserBurst: 3}),
		func(c *b2bConfig) { c.Proxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.3/32")} })
	e.addUser("alice")
	e.addUser("bob")
	proxy := newRLSocket(t, "127.0.0.3")
	for i := 1; i <= 3; i++ {
		g := &guesser{s: proxy, to: e.addr, via: fmt.Sprintf("SIP/2.0/UDP 192.0.2.%d:5060;branch=z9hG4bK-a%d", i, i)}
		if code, res := g.try("alice", "secret-alice"); code != 404 {
			t.Fatalf("alice's request %d: %d, want 404 (authenticated)\n%s", i, code, res)
		}
	}
	for _, g := range []*guesser{
		{s: proxy, to: e.addr, via: "SIP/2.0/UDP 192.0.2.40:5060;branch=z9hG4bK-a4"},
		{s: newRLSocket(t, "127.0.0.1"), to: e.addr},
	} {
		code, res := g.try("alice", "secret-alice")
		if code != 503 || !regexp.MustCompile(`(?m)^Retry-After: [1-9]`).MatchString(res) {
			t.Errorf("alice past her burst: %d, want 503 with Retry-After\n%s", code, res)
		}
	}
	bob := &guesser{s: proxy, to: e.addr, via: "SIP/2.0/UDP 192.0.2.50:5060;branch=z9hG4bK-b1"}
	if code, _ := bob.try("bob", "secret-bob"); code != 404 {
		t.Errorf("bob behind the same proxy: %d, want 404", code)
	}
}
