package statuspage

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imcall/b2bua/internal/webdriver"
	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/sip"
)

const token = "0123456789abcdef"

type fixedSource Snapshot

func (f fixedSource) Status(context.Context) (Snapshot, error) { return Snapshot(f), nil }

var now = time.Date(2030, 1, 2, 15, 0, 0, 0, time.UTC)

func sample() Snapshot {
	return Snapshot{
		Node: "node-a", Version: "b2bua v1.2.3",
		Calls: []sip.LiveCall{{CallID: "c1@h", Caller: "sip:alice@im.example", Callee: "bob", StartedAt: now.Add(-95 * time.Second),
			AnsweredAt: now.Add(-90 * time.Second), Legs: []sip.LiveLeg{
				{ID: "uas-1", Remote: "sip:alice@im.example", State: "up"},
				{ID: "uac-1", Remote: "sip:bob@im.example", Dest: "127.0.0.1:5062", State: "up"}}},
			{CallID: "c2@h", Caller: "sip:carol@im.example", Callee: "dave", StartedAt: now.Add(-3 * time.Second), Legs: []sip.LiveLeg{
				{ID: "uas-1", Remote: "sip:carol@im.example", State: "trying"},
				{ID: "uac-1", Remote: "sip:dave@im.example", State: "ringing"}}}},
		Clients: []registry.Binding{{IMID: "alice", Contact: "sip:alice@192.0.2.1:5060", Transport: "udp", Source: "192.0.2.1:5060",
			Expires: now.Add(30 * time.Minute)}},
		ClientsTotal: 1,
		SCP:          SCP{Backend: "http", Problem: "circuit breaker open"},
		Checks:       []Check{{Name: "sip"}, {Name: "store"}, {Name: "scp", Problem: "circuit breaker open"}, {Name: "shutdown"}},
		Failures: []registry.CallSummary{{CallID: "f1@h", Caller: "sip:carol@im.example", Callee: "bob", Outcome: "busy",
			SIPStatus: 486, Q850Cause: 17, EndCause: "486 user busy", StartedAt: now.Add(-time.Hour)}},
	}
}

func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	p, err := New(Config{Token: token, Source: fixedSource(sample()), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	p.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// TestLoginAndAccess: without the cookie or the token, / is the login
// form and /status.json 401; a wrong token is 401 with the form again; the
// right one sets an HttpOnly, SameSite=Strict cookie that is not the token
// and opens the page; the bearer token opens /status.json; log out ends it.
func TestLoginAndAccess(t *testing.T) {
	srv := newServer(t)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	get := func(path string, hdr ...string) (int, string) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := get("/"); code != 200 || !strings.Contains(body, `id="login"`) || strings.Contains(body, "sip:alice") {
		t.Errorf("/ before login: %d, login form %v", code, strings.Contains(body, `id="login"`))
	}
	if code, _ := get("/status.json"); code != 401 {
		t.Errorf("/status.json before login: %d", code)
	}
	res, err := c.PostForm(srv.URL+"/login", url.Values{"token": {"wrong"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 401 || !strings.Contains(string(b), "not the API token") {
		t.Errorf("wrong token: %d %s", res.StatusCode, b)
	}
	noRedirect := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err = noRedirect.PostForm(srv.URL+"/login", url.Values{"token": {token}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	ck := res.Cookies()
	if res.StatusCode != 303 || len(ck) != 1 || ck[0].Name != CookieName || !ck[0].HttpOnly || ck[0].SameSite != http.SameSiteStrictMode || strings.Contains(ck[0].Value, token) {
		t.Fatalf("login: %d cookies %+v", res.StatusCode, ck)
	}
	if code, body := get("/"); code != 200 || !strings.Contains(body, "sip:alice@im.example") {
		t.Errorf("/ after login: %d", code)
	}
	c.Jar, _ = cookiejar.New(nil) // a script, with the bearer token only
	code, body := get("/status.json", "Authorization", "Bearer "+token)
	var s Snapshot
	if err := json.Unmarshal([]byte(body), &s); code != 200 || err != nil || len(s.Calls) != 2 || s.SCP.Problem == "" {
		t.Errorf("/status.json with the token: %d %v %s", code, err, body)
	}
	c.Jar = jar
	if res, err := c.PostForm(srv.URL+"/logout", nil); err != nil || res.StatusCode != 200 {
		t.Fatalf("logout: %v %v", res, err)
	}
	if _, body := get("/"); !strings.Contains(body, `id="login"`) {
		t.Error("/ after logout is not the login form")
	}
}

// TestBrowserStatusPage: in headless Chromium, the login form takes the
// token; the page then shows both calls with their legs' states, a
// duration that ticks, the client, the SCP's breaker and the failure with
// its cause; a screenshot goes to the test's artifacts.
func TestBrowserStatusPage(t *testing.T) {
	srv := newServer(t)
	b := webdriver.Start(t, 1200, 900)
	b.Open(srv.URL + "/")
	b.Type("#token", token)
	b.Click(`#login button[type="submit"]`)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	b.WaitFor(ctx, "the live calls", `return document.querySelectorAll("#calls tr[data-call]").length === 2`)
	var got struct {
		Legs     []string `json:"legs"`
		Client   string   `json:"client"`
		SCP      string   `json:"scp"`
		Failure  string   `json:"failure"`
		External int      `json:"external"`
	}
	b.Eval(&got, `return {
		legs: [...document.querySelectorAll("#calls li[data-leg]")].map(li => li.closest("tr").dataset.call + " " + li.dataset.leg + " " + li.querySelector(".badge").textContent),
		client: document.querySelector("#clients tr[data-client]").textContent,
		scp: document.getElementById("scp-state").textContent,
		failure: document.querySelector("#failures tr[data-failure]").textContent,
		external: performance.getEntriesByType("resource").filter(e => !e.name.startsWith(location.origin)).length,
	}`)
	wantLegs := []string{"c1@h uas-1 up", "c1@h uac-1 up", "c2@h uas-1 trying", "c2@h uac-1 ringing"}
	if strings.Join(got.Legs, ",") != strings.Join(wantLegs, ",") {
		t.Errorf("legs %v, want %v", got.Legs, wantLegs)
	}
	if !strings.Contains(got.Client, "alice") || !strings.Contains(got.Client, "sip:alice@192.0.2.1:5060") {
		t.Errorf("client row %q", got.Client)
	}
	if got.SCP != "circuit breaker open" {
		t.Errorf("SCP state %q", got.SCP)
	}
	for _, w := range []string{"busy", "486", "17", "486 user busy"} {
		if !strings.Contains(got.Failure, w) {
			t.Errorf("failure row %q lacks %q", got.Failure, w)
		}
	}
	if got.External != 0 {
		t.Errorf("the page loaded %d resources from elsewhere", got.External)
	}
	// The first call's duration ticks: it reads 1:35 at the page's "now"
	// and the clock of the browser moves it on.
	var first string
	b.Eval(&first, `return document.querySelector("#calls tr[data-call] td.duration").textContent`)
	b.WaitFor(ctx, "the duration to tick", `return document.querySelector("#calls tr[data-call] td.duration").textContent !== arguments[0]`, first)
	shot := filepath.Join(t.ArtifactDir(), "status-page.png")
	b.Screenshot(shot)
	t.Logf("screenshot: %s", shot)
}

func TestDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "0:00", 95 * time.Second: "1:35", time.Hour + 61*time.Second: "1:01:01", -time.Second: "0:00"} {
		if got := duration(d); got != want {
			t.Errorf("duration(%v) = %q, want %q", d, got, want)
		}
	}
}
