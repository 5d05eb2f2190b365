package conference

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func apiServer(t *testing.T, f *fakeDialer) (*Manager, *httptest.Server) {
	t.Helper()
	m := newManager(t, f)
	mux := http.NewServeMux()
	api := NewAPI(m, "https://b2bua.example", nil)
	mux.Handle(APIPrefix, api)
	mux.Handle(APIPrefix+"/", api)
	pages := NewPages(m, nil)
	mux.Handle(PagePrefix, pages)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { pages.Close(); srv.Close() })
	return m, srv
}

func do(t *testing.T, method, url, contentType, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAPI walks a conference's life through the JSON API; each step
// answers with the participant's (or the conference's) state.
func TestAPI(t *testing.T) {
	f := &fakeDialer{dial: func(p Participant, leg Leg) error {
		if p.Target == "busy.one" {
			return leg.Ended(Ending{Method: Busy, SIPCode: 486, Q850: 17, Reason: "Busy Here"})
		}
		_ = leg.Alerting()
		return leg.Connected()
	}}
	_, srv := apiServer(t, f)
	u := srv.URL + APIPrefix
	const js = "application/json"

	code, body := do(t, "POST", u, js, `{"owner":"alice","dial":["bob"]}`)
	var created CreatedResponse
	if err := json.Unmarshal([]byte(body), &created); code != 201 || err != nil {
		t.Fatalf("create: %d %s", code, body)
	}
	if created.Link != "https://b2bua.example/conf/"+created.Token || created.Participants[0].Status != StatusConnected {
		t.Errorf("create: %s", body)
	}
	id := created.ID
	steps := []struct {
		name, method, path, ctype, body string
		code                            int
		want                            []string // substrings of the answer
	}{
		{"list", "GET", "", "", "", 200, []string{`"id":"` + id + `"`, `"owner":"alice"`}},
		{"show", "GET", "/" + id, "", "", 200, []string{`"uri":"sip:conf-` + id + `@im.example"`}},
		{"show unknown", "GET", "/nope", "", "", 404, []string{`"code":"not_found"`}},
		{"add", "POST", "/" + id + "/participants", js, `{"target":"+1 555 000 1111","display":"Carol"}`, 201, []string{`"id":"p2"`, `"target":"+15550001111"`, `"status":"connected"`, `"joining_method":"dialed-out"`}},
		{"add busy", "POST", "/" + id + "/participants", js, `{"target":"busy.one"}`, 201, []string{`"status":"disconnected"`, `"method":"busy"`, `"sip_code":486`, `"q850_cause":17`}},
		{"add bad target", "POST", "/" + id + "/participants", js, `{"target":"a b"}`, 400, []string{`"field":"target"`}},
		{"add not json", "POST", "/" + id + "/participants", "text/plain", `target=bob`, 415, []string{`"code":"unsupported_media_type"`}},
		{"add unknown field", "POST", "/" + id + "/participants", js, `{"target":"bob","x":1}`, 400, []string{`unknown field`}},
		{"mute", "POST", "/" + id + "/participants/p1/mute", "", "", 200, []string{`"muted":true`}},
		{"unmute", "POST", "/" + id + "/participants/p1/unmute", "", "", 200, []string{`"muted":false`}},
		{"mute ended call", "POST", "/" + id + "/participants/p3/mute", "", "", 409, []string{`"code":"failed_precondition"`}},
		{"bad action", "POST", "/" + id + "/participants/p1/dance", "", "", 404, []string{`no such action`}},
		{"kick", "POST", "/" + id + "/participants/p2/kick", "", "", 200, []string{`"status":"disconnected"`, `"method":"booted"`}},
		{"remove", "DELETE", "/" + id + "/participants/p3", "", "", 204, nil},
		{"remove again", "DELETE", "/" + id + "/participants/p3", "", "", 404, nil},
		{"end", "DELETE", "/" + id, "", "", 200, []string{`"ended":true`, `"reason":"conference ended"`}},
		{"show ended", "GET", "/" + id, "", "", 404, nil},
		{"create bad owner", "POST", "", js, `{"owner":"Not An ID!"}`, 400, []string{`"field":"im_id"`}},
	}
	for _, s := range steps {
		code, body := do(t, s.method, u+s.path, s.ctype, s.body)
		if code != s.code {
			t.Errorf("%s: %d %s, want %d", s.name, code, body, s.code)
			continue
		}
		for _, w := range s.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s: %s lacks %s", s.name, body, w)
			}
		}
	}
}

// TestPageAccess: only the token opens a page; every answer carries the
// headers that keep the token from leaking; actions need JSON.
func TestPageAccess(t *testing.T) {
	f := &fakeDialer{dial: func(p Participant, leg Leg) error { return leg.Connected() }}
	m, srv := apiServer(t, f)
	c, err := m.Create(t.Context(), "alice", []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	page := srv.URL + PagePrefix + c.Token
	wrong := srv.URL + PagePrefix + strings.Repeat("A", len(c.Token))
	tests := []struct {
		name, method, url, ctype, body string
		code                           int
		want                           string
	}{
		{"page", "GET", page, "", "", 200, `<meta name="viewport"`},
		{"wrong token", "GET", wrong, "", "", 404, "not found"},
		{"no token", "GET", srv.URL + PagePrefix, "", "", 404, ""},
		{"state", "GET", page + "/state", "", "", 200, `"target":"bob"`},
		{"state wrong token", "GET", wrong + "/state", "", "", 404, ""},
		{"mute", "POST", page + "/participants/p1/mute", "application/json", "{}", 200, `"muted":true`},
		{"mute as a form", "POST", page + "/participants/p1/unmute", "application/x-www-form-urlencoded", "", 415, "unsupported_media_type"},
		{"mute wrong token", "POST", wrong + "/participants/p1/mute", "application/json", "{}", 404, ""},
		{"add", "POST", page + "/participants", "application/json", `{"target":"carol"}`, 201, `"id":"p2"`},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, tt.url, strings.NewReader(tt.body))
		if tt.ctype != "" {
			req.Header.Set("Content-Type", tt.ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.code || !strings.Contains(string(b), tt.want) {
			t.Errorf("%s: %d %.200s, want %d with %q", tt.name, resp.StatusCode, b, tt.code, tt.want)
		}
		if h := resp.Header; h.Get("Referrer-Policy") != "no-referrer" || !strings.Contains(h.Get("Cache-Control"), "no-store") ||
			!strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Errorf("%s: headers %v", tt.name, h)
		}
	}
	// The page references nothing outside itself: no src= or href= at all.
	_, body := do(t, "GET", page, "", "")
	for _, ref := range []string{"src=", "href=", "http://", "https://", "@import"} {
		if strings.Contains(body, ref) {
			t.Errorf("page refers to %q", ref)
		}
	}
}

// TestOpenAPIMatchesRoutes: openapi.yaml lists exactly the routes served.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	raw, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pathRE := regexp.MustCompile(`^  (/\S*):\s*$`)
	opRE := regexp.MustCompile(`^    (get|put|post|delete|patch):\s*$`)
	var doc []string
	in, path := false, ""
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, " ") && line != "" {
			in = line == "paths:"
			continue
		}
		if m := pathRE.FindStringSubmatch(line); in && m != nil {
			path = m[1]
		} else if m := opRE.FindStringSubmatch(line); in && m != nil {
			doc = append(doc, strings.ToUpper(m[1])+" "+path)
		}
	}
	var served []string
	for p := range (&api{}).routes() {
		served = append(served, p)
	}
	slices.Sort(doc)
	slices.Sort(served)
	if !slices.Equal(doc, served) {
		t.Errorf("openapi.yaml %v\nserved %v", doc, served)
	}
}
