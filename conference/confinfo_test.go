package conference

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"
)

// parsed is what tests read back from a conference-info document.
type parsed struct {
	State   string `xml:"state,attr"`
	Version uint32 `xml:"version,attr"`
	Count   int    `xml:"conference-state>user-count"`
	Active  bool   `xml:"conference-state>active"`
	Users   []struct {
		Entity    string `xml:"entity,attr"`
		State     string `xml:"state,attr"`
		Endpoints []struct {
			Entity     string `xml:"entity,attr"`
			State      string `xml:"state,attr"`
			Status     string `xml:"status"`
			Joining    string `xml:"joining-method"`
			Disconnect string `xml:"disconnection-method"`
			Reason     string `xml:"disconnection-info>reason"`
			Media      []struct {
				Status  string `xml:"status"`
				Talking string `xml:"urn:x-imcall:params:xml:ns:conference-talking talking"`
			} `xml:"media"`
		} `xml:"endpoint"`
	} `xml:"users>user"`
}

func parse(t *testing.T, body []byte) parsed {
	t.Helper()
	var p parsed
	if err := xml.Unmarshal(body, &p); err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	return p
}

// TestWatcherSeesDialOutAndHangUp is a subscriber's view of one participant
// who is dialed, rings, answers and hangs up: every document valid, the
// first full, the rest partial with a version rising by one.
func TestWatcherSeesDialOutAndHangUp(t *testing.T) {
	f := &fakeDialer{}
	m := newManager(t, f)
	ctx := t.Context()
	c, err := m.Create(ctx, "alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	conf, _ := m.Conference(c.ID)
	w := conf.Watch(ctx)
	var n Notifier
	var docs []parsed
	read := func() {
		t.Helper()
		body, err := n.Document(next(t, w))
		if err != nil {
			t.Fatal(err)
		}
		mustValidate(t, body)
		docs = append(docs, parse(t, body))
	}
	read() // the full document of the empty conference

	p, err := m.Add(ctx, c.ID, "+15550001111", "Bob")
	if err != nil {
		t.Fatal(err)
	}
	read() // pending
	read() // dialing-out (the dialer started the INVITE)
	leg := f.leg(t, c.ID, p.ID)
	if err := leg.Alerting(); err != nil {
		t.Fatal(err)
	}
	read()
	if err := leg.Connected(); err != nil {
		t.Fatal(err)
	}
	read()
	if err := leg.Ended(Ending{Method: Departed, Q850: 16, Reason: "BYE from the participant"}); err != nil {
		t.Fatal(err)
	}
	read()
	read() // the last participant left: the conference ends
	if _, ok := <-w.Events(); ok {
		t.Error("watch still open after the conference ended")
	}

	var statuses []string
	for i, d := range docs {
		if d.Version != uint32(i+1) {
			t.Errorf("document %d: version %d", i, d.Version)
		}
		if want := map[bool]string{true: "full", false: "partial"}[i == 0]; d.State != want {
			t.Errorf("document %d: state %q, want %q", i, d.State, want)
		}
		for _, u := range d.Users {
			for _, e := range u.Endpoints {
				statuses = append(statuses, e.Status)
			}
		}
	}
	want := []string{"pending", "dialing-out", "alerting", "connected", "disconnected"}
	if strings.Join(statuses, " ") != strings.Join(want, " ") {
		t.Errorf("statuses %v, want %v", statuses, want)
	}
	ep := docs[5].Users[0].Endpoints[0]
	if ep.Disconnect != "departed" || ep.Reason != "Q.850;cause=16; BYE from the participant" {
		t.Errorf("end: method %q reason %q", ep.Disconnect, ep.Reason)
	}
	if docs[5].Users[0].Entity != "tel:+15550001111" {
		t.Errorf("user entity %q", docs[5].Users[0].Entity)
	}
	if last := docs[6]; last.Active || last.Count != 0 {
		t.Errorf("last document: active %v, user-count %d", last.Active, last.Count)
	}
}

// TestEndpointStatuses renders a conference holding each status once and
// checks every RFC 4575 endpoint status and media status it maps to.
func TestEndpointStatuses(t *testing.T) {
	f := &fakeDialer{dial: func(p Participant, leg Leg) error {
		if p.Target == "pending.one" {
			return nil // the dialer has not sent the INVITE yet
		}
		return leg.Dialing()
	}}
	m := newManager(t, f)
	ctx := t.Context()
	c, err := m.Create(ctx, "alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	add := func(target string) Leg {
		p, err := m.Add(ctx, c.ID, target, "")
		if err != nil {
			t.Fatal(err)
		}
		return f.leg(t, c.ID, p.ID)
	}
	add("pending.one")
	add("dialing.one")
	_ = add("alerting.one").Alerting()
	connected := add("connected.one")
	_ = connected.Connected()
	_ = connected.Talking(true)
	held := add("held.one")
	_ = held.Connected()
	_ = held.Held(true)
	muted := add("muted.one")
	_ = muted.Connected()
	if _, err := m.SetMuted(ctx, c.ID, muted.ParticipantID(), true); err != nil {
		t.Fatal(err)
	}
	booted := add("booted.one")
	_ = booted.Connected()
	if _, err := m.Kick(ctx, c.ID, booted.ParticipantID()); err != nil {
		t.Fatal(err)
	}
	_ = add("failed.one").Ended(Ending{Method: Departed, SIPCode: 480, Q850: 18, Reason: "no answer"})
	_ = add("busy.one").Ended(Ending{Method: Busy, SIPCode: 486, Q850: 17})
	_, err = m.Join(c.ID, "dialin.one", "")
	if err != nil {
		t.Fatal(err)
	}
	conf, _ := m.Conference(c.ID)

	var n Notifier
	body, err := n.Document(Event{State: conf.Snapshot(), Full: true})
	if err != nil {
		t.Fatal(err)
	}
	mustValidate(t, body)
	type row struct{ status, joining, disconnect, reason, media, talking string }
	got := map[string]row{}
	for _, u := range parse(t, body).Users {
		e := u.Endpoints[0]
		r := row{status: e.Status, joining: e.Joining, disconnect: e.Disconnect, reason: e.Reason}
		if len(e.Media) == 1 {
			r.media, r.talking = e.Media[0].Status, e.Media[0].Talking
		}
		got[strings.TrimSuffix(strings.TrimPrefix(u.Entity, "sip:"), ".one@im.example")] = r
	}
	want := map[string]row{
		"pending":   {status: "pending", joining: "dialed-out"},
		"dialing":   {status: "dialing-out", joining: "dialed-out"},
		"alerting":  {status: "alerting", joining: "dialed-out"},
		"connected": {status: "connected", joining: "dialed-out", media: "sendrecv", talking: "true"},
		"held":      {status: "on-hold", joining: "dialed-out", media: "inactive", talking: "false"},
		"muted":     {status: "muted-via-focus", joining: "dialed-out", media: "recvonly", talking: "false"},
		"booted":    {status: "disconnected", joining: "dialed-out", disconnect: "booted", reason: "Q.850;cause=16; kicked by the owner"},
		"failed":    {status: "disconnected", joining: "dialed-out", disconnect: "failed", reason: "SIP;cause=480; Q.850;cause=18; no answer"},
		"busy":      {status: "disconnected", joining: "dialed-out", disconnect: "busy", reason: "SIP;cause=486; Q.850;cause=17"},
		"dialin":    {status: "dialing-in", joining: "dialed-in"},
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: got %+v, want %+v", k, got[k], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d users, want %d", len(got), len(want))
	}

	// Removing a participant deletes its user from the roster.
	w := conf.Watch(ctx)
	n = Notifier{}
	first, _ := n.Document(next(t, w))
	mustValidate(t, first)
	if err := m.Remove(ctx, c.ID, connected.ParticipantID()); err != nil {
		t.Fatal(err)
	}
	next(t, w) // the kick (disconnected, booted)
	body, err = n.Document(next(t, w))
	if err != nil {
		t.Fatal(err)
	}
	mustValidate(t, body)
	d := parse(t, body)
	if d.State != "partial" || len(d.Users) != 1 || d.Users[0].State != "deleted" || d.Users[0].Entity != "sip:connected.one@im.example" {
		t.Errorf("removal document: %s", body)
	}
}

// TestSchemaRejects shows the validation can fail: a document with a status
// RFC 4575 does not have is refused.
func TestSchemaRejects(t *testing.T) {
	var n Notifier
	m := newManager(t, &fakeDialer{})
	c, _ := m.Create(t.Context(), "alice", []string{"bob"})
	conf, _ := m.Conference(c.ID)
	body, _ := n.Document(Event{State: conf.Snapshot(), Full: true})
	mustValidate(t, body)
	bad := bytes.Replace(body, []byte("<status>dialing-out</status>"), []byte("<status>ringing</status>"), 1)
	if bytes.Equal(bad, body) {
		t.Fatalf("no dialing-out status in\n%s", body)
	}
	if err := validate(t, bad); err == nil {
		t.Error("xmllint accepted a status outside RFC 4575")
	}
}
