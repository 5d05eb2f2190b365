package sip_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/registry"
)

// TestRegisterClientsByInstance: any client of a user logs in with digest
// credentials and the +sip.instance it generated (RFC 5626 §4.1), with no
// terminal record; two clients of one user are logged in at once; a client
// that re-registers from a new Contact keeps one login; Expires: 0 with the
// instance logs that client out only; a client without an instance is
// keyed by its Contact.
func TestRegisterClientsByInstance(t *testing.T) {
	e := newEnv(t, withDigest())
	e.addUser("alice") // no terminal at all
	phone, laptop := newPeer(t, "phone"), newPeer(t, "laptop")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const (
		phoneID  = "urn:uuid:6f1c0a4e-0b52-4d0b-9c61-1a2b3c4d5e01"
		laptopID = "urn:uuid:6f1c0a4e-0b52-4d0b-9c61-1a2b3c4d5e02"
	)
	contact := func(p *peer, port, inst string) string {
		c := "<sip:alice@" + p.addr + ">"
		if port != "" {
			host, _, _ := strings.Cut(p.addr, ":")
			c = "<sip:alice@" + host + ":" + port + ">"
		}
		if inst != "" {
			c += `;+sip.instance="<` + inst + `>"`
		}
		return c
	}
	register := func(p *peer, c string, expires int) *sipmsg.Response {
		t.Helper()
		res, err := p.register(ctx, e, "alice", c, expires, "alice", "secret-alice")
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("REGISTER %s: %v %v", c, res, err)
		}
		return res
	}
	logins := func() map[string]registry.Binding {
		t.Helper()
		bs, err := e.store.Bindings(ctx, "alice", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]registry.Binding{}
		for _, b := range bs {
			m[b.Key()] = b
		}
		return m
	}

	register(phone, contact(phone, "", phoneID), 3600)
	res := register(laptop, contact(laptop, "", laptopID), 3600)
	got := logins()
	if len(got) != 2 || got[phoneID].Source != phone.addr || got[laptopID].Source != laptop.addr ||
		got[phoneID].TerminalID != 0 || got[phoneID].Transport != "udp" {
		t.Fatalf("two clients: %+v", got)
	}
	// The 200 lists both logins, each with its instance (RFC 5626 §6).
	var listed []string
	for _, h := range res.GetHeaders("Contact") {
		listed = append(listed, h.Value())
	}
	for _, want := range []string{phone.addr + `>;expires=`, `;+sip.instance="<` + phoneID + `>"`, laptop.addr + `>;expires=`, `;+sip.instance="<` + laptopID + `>"`} {
		if !slices.ContainsFunc(listed, func(c string) bool { return strings.Contains(c, want) }) {
			t.Errorf("200 Contacts %q lack %q", listed, want)
		}
	}

	// The phone comes back with another Contact (a new port behind NAT):
	// still one login, now at the new Contact.
	register(phone, contact(phone, "40001", phoneID), 3600)
	got = logins()
	if len(got) != 2 || !strings.HasSuffix(got[phoneID].Contact, ":40001") {
		t.Errorf("after the phone moved: %+v", got)
	}

	// The laptop logs out with Expires: 0 and its instance, from a Contact
	// other than the one it registered: the laptop's login ends, the
	// phone's stays.
	register(laptop, contact(laptop, "40002", laptopID), 0)
	got = logins()
	if _, ok := got[laptopID]; ok || len(got) != 1 {
		t.Errorf("after the laptop logged out: %+v", got)
	}

	// A client without +sip.instance is keyed by its Contact: two Contacts
	// are two logins, and Expires: 0 on one ends that one.
	plain := newPeer(t, "plain")
	register(plain, contact(plain, "", ""), 3600)
	register(plain, contact(plain, "40003", ""), 3600)
	if got = logins(); len(got) != 3 {
		t.Errorf("with two instance-less Contacts: %+v", got)
	}
	register(plain, contact(plain, "40003", ""), 0)
	got = logins()
	if _, ok := got["sip:alice@"+plain.addr]; !ok || len(got) != 2 {
		t.Errorf("after one instance-less Contact logged out: %+v", got)
	}

	// An instance that could not be echoed safely is the client's mistake.
	for _, bad := range []string{`"<urn:uuid:a b>"`, `"<urn:uuid:` + strings.Repeat("a", 300) + `>"`} {
		res, err := plain.register(ctx, e, "alice", "<sip:alice@"+plain.addr+">;+sip.instance="+bad, 3600, "alice", "secret-alice")
		if err != nil || res.StatusCode != 400 {
			t.Errorf("instance %.40s: %v %v, want 400", bad, res, err)
		}
	}

	// A login lasts as long as its registration, and no longer.
	register(phone, contact(phone, "40001", phoneID), 60)
	bs, err := e.store.Bindings(ctx, "alice", time.Now().Add(61*time.Second))
	if err != nil || len(bs) != 1 || bs[0].Instance != "" {
		t.Errorf("61s later: %+v, %v; want only the hour-long instance-less login", bs, err)
	}
}
