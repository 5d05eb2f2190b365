package conference

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/imcall/b2bua/internal/webdriver"
)

// TestBrowserPage opens a five-party conference's page in headless
// Chromium: the page lists the five with their dial status, a click on
// Mute mutes one (as the API and the RFC 4575 document then say), and a
// talking change shows on the page within 300 ms.
func TestBrowserPage(t *testing.T) {
	f := &fakeDialer{dial: func(p Participant, leg Leg) error {
		_ = leg.Dialing()
		_ = leg.Alerting()
		if p.Target == "+15550005555" {
			return nil // still ringing
		}
		return leg.Connected()
	}}
	m := newManager(t, f)
	mux := http.NewServeMux()
	pages := NewPages(m, nil)
	mux.Handle(PagePrefix, pages)
	mux.Handle(APIPrefix, NewAPI(m, "", nil))
	mux.Handle(APIPrefix+"/", NewAPI(m, "", nil))
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { pages.Close(); srv.Close() })
	b := webdriver.Start(t, 390, 844) // a phone's viewport; it quits before the server closes

	ctx := t.Context()
	c, err := m.Create(ctx, "alice", []string{"bob", "carol", "dave", "+15550004444", "+15550005555"})
	if err != nil {
		t.Fatal(err)
	}
	conf, _ := m.Conference(c.ID)
	b.Open(PageLink(srv.URL, c.Token))

	wait, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	b.WaitFor(wait, "five participants", `return document.querySelectorAll("#participants li").length === 5`)
	var statuses []string
	b.Eval(&statuses, `return [...document.querySelectorAll("#participants li")].map(li => li.id + "=" + li.dataset.status)`)
	want := []string{"p-p1=connected", "p-p2=connected", "p-p3=connected", "p-p4=connected", "p-p5=ringing"}
	if len(statuses) != 5 {
		t.Fatalf("page shows %v", statuses)
	}
	for i := range want {
		if statuses[i] != want[i] {
			t.Errorf("page shows %v, want %v", statuses, want)
			break
		}
	}

	b.Click(`#p-p2 button[data-action="mute"]`)
	b.WaitFor(wait, "p2 muted", `const li = document.getElementById("p-p2"); return li !== null && li.dataset.muted === "true"`)
	resp, err := http.Get(srv.URL + APIPrefix + "/" + c.ID)
	if err != nil {
		t.Fatal(err)
	}
	var s Snapshot
	err = json.NewDecoder(resp.Body).Decode(&s)
	resp.Body.Close()
	if p, _ := s.Participant("p2"); err != nil || !p.Muted {
		t.Errorf("API after the click: %+v %v", p, err)
	}
	if !f.mutes[c.ID+"/p2"] {
		t.Error("the mixer was not told to mute p2")
	}
	var n Notifier
	body, err := n.Document(Event{State: conf.Snapshot(), Full: true})
	if err != nil {
		t.Fatal(err)
	}
	mustValidate(t, body)
	for _, u := range parse(t, body).Users {
		if u.Entity == "sip:carol@im.example" && u.Endpoints[0].Status != "muted-via-focus" {
			t.Errorf("RFC 4575 status of the muted p2: %q", u.Endpoints[0].Status)
		}
	}

	// Talking: from the mixer's report to the page showing it.
	leg := f.leg(t, c.ID, "p3")
	quick, cancelQuick := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelQuick()
	start := time.Now()
	if err := leg.Talking(true); err != nil {
		t.Fatal(err)
	}
	b.WaitFor(quick, "p3 talking within 300 ms", `return document.getElementById("p-p3").dataset.talking === "true"`)
	t.Logf("talking shown %v after the report", time.Since(start))

	shot := filepath.Join(t.ArtifactDir(), "conference-page.png")
	b.Screenshot(shot)
	t.Logf("screenshot: %s", shot)
}
