package sip_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"
	icdigest "github.com/icholy/digest"

	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/registry/sqlite"
	"github.com/imcall/b2bua/scp"
	"github.com/imcall/b2bua/sip/digest"
)

func withDigest(trusted ...string) envOpt {
	return func(c *b2bConfig) {
		store := c.Terminals.(*sqlite.Store)
		v, err := digest.New(digest.Config{
			Realm: "im.test",
			Lookup: func(ctx context.Context, user string) (registry.Credentials, error) {
				u, err := store.User(ctx, user)
				return u.Creds, err
			},
		})
		if err != nil {
			panic(err)
		}
		c.Auth = v
		c.IsStale = func(err error) bool { return errors.Is(err, digest.ErrStale) }
		for _, p := range trusted {
			c.Trusted = append(c.Trusted, netip.MustParsePrefix(p))
		}
	}
}

func TestInviteAuthentication(t *testing.T) {
	e := newEnv(t, withDigest())
	caller := newPeer(t, "alice")
	term := newPeer(t, "term")
	e.addUser("alice")
	e.addUser("bob")
	e.addLegacy("bob", "001010000000001", term.addr, scp.Online)
	term.setInvite(answerer(term, 0, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// No credentials, an unknown user, a wrong password: the same 407.
	for _, tc := range []struct{ name, user, pass string }{
		{"no credentials", "", ""},
		{"unknown user", "mallory", "secret-mallory"},
		{"wrong password", "alice", "guess"},
	} {
		_, res, err := caller.invite(ctx, e.uri("bob"), sipgo.AnswerOptions{Username: tc.user, Password: tc.pass})
		if err == nil || res == nil || res.StatusCode != 407 {
			t.Fatalf("%s: got %v %v, want 407", tc.name, res, err)
		}
		chal := res.GetHeaders("Proxy-Authenticate")
		// By default one MD5 challenge (digest.Config.Algorithms).
		if len(chal) != 1 || !strings.Contains(chal[0].Value(), "algorithm=MD5") {
			t.Errorf("%s: challenges %v, want one MD5", tc.name, chal)
		}
	}
	select {
	case r := <-term.requests:
		t.Fatalf("terminal was reached without authentication: %s", r.StartLine())
	default:
	}

	dlg, res, err := caller.invite(ctx, e.uri("bob"), sipgo.AnswerOptions{Username: "alice", Password: "secret-alice"})
	if err != nil {
		t.Fatalf("authenticated call: %v %v", res, err)
	}
	inv := term.waitRequest(sipmsg.INVITE, time.Second)
	if inv.From().Address.User != "alice" || inv.GetHeader("Proxy-Authorization") != nil {
		t.Errorf("terminal INVITE From %s, credentials forwarded: %v", inv.From().Value(), inv.GetHeader("Proxy-Authorization"))
	}
	if err := dlg.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, e)
}

func TestTrustedPeerNotChallenged(t *testing.T) {
	e := newEnv(t, withDigest("127.0.0.0/8"))
	caller := newPeer(t, "kamailio")
	term := newPeer(t, "term")
	e.addUser("bob")
	e.addLegacy("bob", "001010000000001", term.addr, scp.Online)
	term.setInvite(answerer(term, 0, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dlg, res, err := caller.invite(ctx, e.uri("bob"), sipgo.AnswerOptions{})
	if err != nil {
		t.Fatalf("trusted call: %v %v", res, err)
	}
	if err := dlg.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, e)
}

// register sends REGISTER for aor from p with the given Contact and
// Expires, answering a digest challenge with user/pass.
func (p *peer) register(ctx context.Context, e *env, aor, contact string, expires int, user, pass string) (*sipmsg.Response, error) {
	reg := func() *sipmsg.Request {
		req := sipmsg.NewRequest(sipmsg.REGISTER, sipmsg.Uri{Scheme: "sip", Host: "im.test"})
		req.SetDestination(e.addr)
		to := &sipmsg.ToHeader{Address: sipmsg.Uri{Scheme: "sip", User: aor, Host: "im.test"}}
		from := &sipmsg.FromHeader{Address: to.Address, Params: sipmsg.NewParams()}
		from.Params.Add("tag", sipmsg.GenerateTagN(8))
		req.AppendHeader(to)
		req.AppendHeader(from)
		if contact != "" {
			req.AppendHeader(sipmsg.NewHeader("Contact", contact))
		}
		req.AppendHeader(sipmsg.NewHeader("Expires", itoa(expires)))
		return req
	}
	req := reg()
	res, err := p.cli.Do(ctx, req)
	if err != nil || res.StatusCode != 401 || user == "" {
		return res, err
	}
	return p.cli.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: user, Password: pass})
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	neg := n < 0
	if neg {
		n = -n
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	if neg {
		b = append([]byte{'-'}, b...)
	}
	return string(b)
}

func TestRegisterThenCallBinding(t *testing.T) {
	e := newEnv(t, withDigest())
	caller := newPeer(t, "alice")
	phone := newPeer(t, "carol")
	e.addUser("alice")
	e.addUser("carol")
	e.addUser("dave")
	mac, _ := registry.ParseMAC("00:1a:2b:3c:4d:5e")
	term, err := e.store.AddTerminal(context.Background(), registry.NewTerminal{IMID: "carol", MobileID: mac, Kind: registry.Smart, Caps: registry.CapAudio, Active: true})
	if err != nil {
		t.Fatal(err)
	}
	phone.setInvite(answerer(phone, 0, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	contact := "<sip:carol@" + phone.addr + ">"

	// Not registered yet: 480.
	if _, res, _ := caller.invite(ctx, e.uri("carol"), sipgo.AnswerOptions{Username: "alice", Password: "secret-alice"}); res == nil || res.StatusCode != 480 {
		t.Fatalf("call before REGISTER: %v", res)
	}
	caller.waitRequest(sipmsg.MESSAGE, 2*time.Second)

	tests := []struct {
		name      string
		aor       string
		expires   int
		user      string
		pass      string
		status    int
		minExpire bool
	}{
		{name: "no credentials", aor: "carol", expires: 3600, status: 401},
		{name: "wrong password", aor: "carol", expires: 3600, user: "carol", pass: "nope", status: 401},
		{name: "someone else's AOR", aor: "dave", expires: 3600, user: "carol", pass: "secret-carol", status: 403},
		{name: "too brief", aor: "carol", expires: 10, user: "carol", pass: "secret-carol", status: 423, minExpire: true},
		{name: "ok", aor: "carol", expires: 3600, user: "carol", pass: "secret-carol", status: 200},
	}
	for _, tc := range tests {
		res, err := phone.register(ctx, e, tc.aor, contact, tc.expires, tc.user, tc.pass)
		if err != nil || res.StatusCode != tc.status {
			t.Fatalf("%s: %v %v, want %d", tc.name, res, err, tc.status)
		}
		if tc.minExpire && res.GetHeader("Min-Expires") == nil {
			t.Errorf("%s: 423 without Min-Expires", tc.name)
		}
		if tc.status == 401 && len(res.GetHeaders("WWW-Authenticate")) == 0 {
			t.Errorf("%s: 401 without WWW-Authenticate", tc.name)
		}
		if tc.status == 200 {
			c := res.GetHeader("Contact")
			if c == nil || !strings.Contains(c.Value(), phone.addr) || !strings.Contains(c.Value(), "expires=") {
				t.Errorf("200 lists %v", c)
			}
		}
	}
	bs, err := e.store.Bindings(ctx, "carol", time.Now())
	if err != nil || len(bs) != 1 || bs[0].TerminalID != term.ID {
		t.Fatalf("stored bindings %+v %v", bs, err)
	}

	dlg, res, err := caller.invite(ctx, e.uri("carol"), sipgo.AnswerOptions{Username: "alice", Password: "secret-alice"})
	if err != nil {
		t.Fatalf("call to the binding: %v %v", res, err)
	}
	inv := phone.waitRequest(sipmsg.INVITE, time.Second)
	if inv.Recipient.String() != "sip:carol@"+phone.addr {
		t.Errorf("INVITE sent to %s", inv.Recipient.String())
	}
	if err := dlg.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, e)

	// Expires: 0 removes the binding (RFC 3261 §10.2.2); so does "*".
	if res, err := phone.register(ctx, e, "carol", contact, 0, "carol", "secret-carol"); err != nil || res.StatusCode != 200 {
		t.Fatalf("unregister: %v %v", res, err)
	}
	if bs, _ := e.store.Bindings(ctx, "carol", time.Now()); len(bs) != 0 {
		t.Errorf("binding left after Expires: 0: %+v", bs)
	}
	if res, err := phone.register(ctx, e, "carol", contact, 3600, "carol", "secret-carol"); err != nil || res.StatusCode != 200 {
		t.Fatalf("register again: %v %v", res, err)
	}
	if res, err := phone.register(ctx, e, "carol", "*", 0, "carol", "secret-carol"); err != nil || res.StatusCode != 200 {
		t.Fatalf("unregister *: %v %v", res, err)
	}
	if bs, _ := e.store.Bindings(ctx, "carol", time.Now()); len(bs) != 0 {
		t.Errorf("binding left after *: %+v", bs)
	}
}

// TestDigestURIMustNameRequestURI: credentials computed for another target
// (a captured Proxy-Authorization replayed against a different Request-URI)
// are refused with a fresh challenge (RFC 7616 §3.4.6); the same
// credentials for the Request-URI itself are accepted.
func TestDigestURIMustNameRequestURI(t *testing.T) {
	e := newEnv(t, withDigest())
	caller := newPeer(t, "alice")
	e.addUser("alice")
	e.addUser("bob") // no terminal: an accepted INVITE gets 480
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bob, carol := e.uri("bob"), e.uri("carol")
	for _, tc := range []struct {
		name, uri string
		want      int
	}{
		{"another target", carol.String(), 407},
		{"the Request-URI", bob.String(), 480},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := sipmsg.NewRequest(sipmsg.INVITE, e.uri("bob"))
			req.SetDestination(e.addr)
			from := &sipmsg.FromHeader{Address: sipmsg.Uri{Scheme: "sip", User: "alice", Host: "im.test"}, Params: sipmsg.NewParams()}
			from.Params.Add("tag", sipmsg.GenerateTagN(8))
			req.AppendHeader(from)
			req.AppendHeader(&sipmsg.ToHeader{Address: e.uri("bob")})
			req.AppendHeader(&caller.contact)
			res, err := caller.cli.Do(ctx, req)
			if err != nil || res.StatusCode != 407 {
				t.Fatalf("first INVITE: %v %v, want 407", res, err)
			}
			var chal *icdigest.Challenge
			for _, h := range res.GetHeaders("Proxy-Authenticate") {
				if c, err := icdigest.ParseChallenge(h.Value()); err == nil && strings.EqualFold(c.Algorithm, "MD5") {
					chal = c
				}
			}
			if chal == nil {
				t.Fatal("no MD5 challenge")
			}
			cred, err := icdigest.Digest(chal, icdigest.Options{Method: "INVITE", URI: tc.uri, Username: "alice", Password: "secret-alice"})
			if err != nil {
				t.Fatal(err)
			}
			req.CSeq().SeqNo++
			req.RemoveHeader("Via")
			req.AppendHeader(sipmsg.NewHeader("Proxy-Authorization", cred.String()))
			res, err = caller.cli.Do(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != tc.want {
				t.Errorf("uri %s: got %d, want %d", tc.uri, res.StatusCode, tc.want)
			}
		})
	}
	waitIdle(t, e)
}
