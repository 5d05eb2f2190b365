package provision

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/registry/sqlite"
)

const token = "test-token-7d1f"

type env struct {
	srv   *httptest.Server
	store *sqlite.Store
	logs  *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newEnv starts the API over a real loopback listener on a real SQLite file.
func newEnv(t *testing.T, tok string, maxBody int64) *env {
	t.Helper()
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "reg.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	logs := &syncBuffer{}
	h := NewHandler(Config{Store: st, Token: tok, MaxBodyBytes: maxBody, Realm: "im.example",
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	return &env{srv: newServer(t, h), store: st, logs: logs}
}

// newServer serves h on a loopback listener until the test ends.
func newServer(t *testing.T, h http.Handler) *httptest.Server {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) err() Error {
	var b struct{ Error Error }
	_ = json.Unmarshal(r.body, &b)
	return b.Error
}

// do sends a request with the token and a JSON content type unless told
// otherwise through hdr ("-" as a value deletes the header).
func (e *env) do(t *testing.T, method, path, body string, hdr ...string) reply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "-" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header, b}
}

func (e *env) must(t *testing.T, status int, method, path, body string, out any) {
	t.Helper()
	r := e.do(t, method, path, body)
	if r.status != status {
		t.Fatalf("%s %s: status %d (%s), want %d", method, path, r.status, r.body, status)
	}
	if out != nil {
		if err := json.Unmarshal(r.body, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, r.body)
		}
	}
}

func TestTerminalLifecycle(t *testing.T) {
	e := newEnv(t, token, 0)
	var u UserView
	e.must(t, 201, "POST", "/api/v1/users", `{"im_id":"alice","display":"Alice Smith","password":"pw"}`, &u)
	if u.IMID != "alice" || u.Display != "Alice Smith" || u.Realm != "im.example" {
		t.Fatalf("created user = %+v", u)
	}
	stored, err := e.store.User(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if stored.Creds != registry.NewCredentials("alice", "im.example", "pw") {
		t.Fatalf("stored credentials %+v are not the digest of the password", stored.Creds)
	}

	var t1, t2 TerminalView
	r := e.do(t, "POST", "/api/v1/users/alice/terminals", `{"imsi":"001010000000001","active":true}`)
	if r.status != 201 || r.header.Get("Location") != "/api/v1/terminals/1" {
		t.Fatalf("create: %d %s, Location %q", r.status, r.body, r.header.Get("Location"))
	}
	_ = json.Unmarshal(r.body, &t1)
	if t1.ID != 1 || t1.IMID != "alice" || t1.MobileID.String() != "imsi:001010000000001" || t1.Kind != "legacy" ||
		!slices.Equal(t1.Caps, []string{"audio"}) || !t1.Active {
		t.Fatalf("created terminal = %+v", t1)
	}
	e.must(t, 201, "POST", "/api/v1/users/alice/terminals", `{"mac":"AABB.CCDD.EEFF","kind":"smart","caps":["text","audio"]}`, &t2)
	if t2.MobileID.Value != "aa:bb:cc:dd:ee:ff" || !slices.Equal(t2.Caps, []string{"audio", "text"}) || t2.Active {
		t.Fatalf("second terminal = %+v", t2)
	}

	active := func() []int64 {
		var l TerminalList
		e.must(t, 200, "GET", "/api/v1/users/alice/terminals", "", &l)
		var ids []int64
		for _, x := range l.Terminals {
			if x.Active {
				ids = append(ids, x.ID)
			}
		}
		return ids
	}
	if got := active(); !slices.Equal(got, []int64{1}) {
		t.Fatalf("active = %v, want [1]", got)
	}
	var got TerminalView
	e.must(t, 200, "POST", "/api/v1/terminals/2/activate", "", &got)
	if !got.Active || got.ID != 2 {
		t.Fatalf("activate answered %+v", got)
	}
	if got := active(); !slices.Equal(got, []int64{2}) {
		t.Fatalf("after activating 2: active = %v, want [2]", got)
	}
	// A new active terminal takes over in the same way.
	var t3 TerminalView
	e.must(t, 201, "POST", "/api/v1/users/alice/terminals", `{"msisdn":"+441632960001","active":true}`, &t3)
	if got := active(); !slices.Equal(got, []int64{t3.ID}) {
		t.Fatalf("after creating an active terminal: active = %v, want [%d]", got, t3.ID)
	}
	e.must(t, 200, "POST", "/api/v1/terminals/3/deactivate", "", &got)
	if got.Active || len(active()) != 0 {
		t.Fatalf("after deactivate: %+v, active %v", got, active())
	}
	e.must(t, 200, "GET", "/api/v1/terminals/2", "", &got)
	if got.ID != 2 || got.Kind != "smart" {
		t.Fatalf("get = %+v", got)
	}
	var all TerminalList
	e.must(t, 200, "GET", "/api/v1/terminals", "", &all)
	if len(all.Terminals) != 3 {
		t.Fatalf("all terminals = %+v", all)
	}
	e.must(t, 204, "DELETE", "/api/v1/terminals/2", "", nil)
	e.must(t, 404, "GET", "/api/v1/terminals/2", "", nil)
	e.must(t, 404, "DELETE", "/api/v1/terminals/2", "", nil)

	// Users, passwords and contacts.
	e.must(t, 201, "POST", "/api/v1/users", `{"im_id":"bob","password":"x"}`, nil)
	var ul UserList
	e.must(t, 200, "GET", "/api/v1/users", "", &ul)
	if len(ul.Users) != 2 || ul.Users[1].IMID != "bob" {
		t.Fatalf("users = %+v", ul)
	}
	e.must(t, 204, "PUT", "/api/v1/users/bob/password", `{"password":"new"}`, nil)
	if b, _ := e.store.User(context.Background(), "bob"); b.Creds != registry.NewCredentials("bob", "im.example", "new") {
		t.Fatalf("password not changed: %+v", b.Creds)
	}
	var c ContactView
	e.must(t, 201, "POST", "/api/v1/users/bob/contacts", `{"uri":"imcall:terminal?v=1&im=alice&domain=im.example&imsi=001010000000001&display=Alice"}`, &c)
	if c.Owner != "bob" || c.IMID != "alice" || c.MobileID == nil || c.MobileID.Value != "001010000000001" || c.Display != "Alice" {
		t.Fatalf("contact = %+v", c)
	}
	var cl ContactList
	e.must(t, 200, "GET", "/api/v1/users/bob/contacts", "", &cl)
	if len(cl.Contacts) != 1 || cl.Contacts[0].ID != c.ID {
		t.Fatalf("contacts = %+v", cl)
	}
	e.must(t, 204, "DELETE", "/api/v1/users/alice", "", nil)
	e.must(t, 404, "GET", "/api/v1/users/alice", "", nil)
	e.must(t, 404, "GET", "/api/v1/terminals/1", "", nil)
}

// TestErrors: every failure has its status, stable code, field and words.
func TestErrors(t *testing.T) {
	e := newEnv(t, token, 512)
	e.must(t, 201, "POST", "/api/v1/users", `{"im_id":"alice","password":"pw"}`, nil)
	e.must(t, 201, "POST", "/api/v1/users/alice/terminals", `{"imsi":"001010000000001"}`, nil)
	const terms = "/api/v1/users/alice/terminals"

	tests := []struct {
		name, method, path, body string
		hdr                      []string
		status                   int
		code, field, message     string
	}{
		{"bad imsi", "POST", terms, `{"imsi":"12"}`, nil, 400, "invalid_argument", "imsi", "imsi: must be 6 to 15 digits"},
		{"bad mac", "POST", terms, `{"mac":"zz"}`, nil, 400, "invalid_argument", "mac", "mac: must be an EUI-48 address such as 00:1a:2b:3c:4d:5e"},
		{"bad msisdn", "POST", terms, `{"msisdn":"123"}`, nil, 400, "invalid_argument", "msisdn", ""},
		{"no mobile id", "POST", terms, `{"kind":"legacy"}`, nil, 400, "invalid_argument", "mobile_id", "mobile_id: exactly one of imsi, mac or msisdn is required"},
		{"two mobile ids", "POST", terms, `{"imsi":"001010000000002","mac":"aabbccddeeff"}`, nil, 400, "invalid_argument", "mobile_id", ""},
		{"bad kind", "POST", terms, `{"imsi":"001010000000002","kind":"robot"}`, nil, 400, "invalid_argument", "kind", "kind: must be legacy or smart"},
		{"bad cap", "POST", terms, `{"imsi":"001010000000002","caps":["audio","smell"]}`, nil, 400, "invalid_argument", "caps", `caps: unknown capability "smell": must be a list of audio, text, image, video`},
		{"caps in one string", "POST", terms, `{"imsi":"001010000000002","caps":["audio,text"]}`, nil, 400, "invalid_argument", "caps", ""},
		{"caps not an array", "POST", terms, `{"imsi":"001010000000002","caps":"audio"}`, nil, 400, "invalid_argument", "caps", "caps: must be an array of strings"},
		{"active not a bool", "POST", terms, `{"imsi":"001010000000002","active":"yes"}`, nil, 400, "invalid_argument", "active", "active: must be true or false"},
		{"unknown field", "POST", terms, `{"imsi":"001010000000002","colour":"red"}`, nil, 400, "invalid_argument", "colour", "colour: is not a known field"},
		{"two objects", "POST", terms, `{"imsi":"001010000000002"}{"imsi":"001010000000003"}`, nil, 400, "invalid_argument", "body", "body: must hold exactly one JSON object"},
		{"trailing garbage", "POST", terms, `{"imsi":"001010000000002"} x`, nil, 400, "invalid_argument", "body", ""},
		{"bad JSON", "POST", terms, `{"imsi":`, nil, 400, "invalid_argument", "body", "body: must be one valid JSON object"},
		{"not an object", "POST", terms, `["imsi"]`, nil, 400, "invalid_argument", "body", "body: must be a JSON object"},
		{"empty body", "POST", terms, ``, []string{"Content-Type", "application/json"}, 400, "invalid_argument", "body", ""},
		{"too large", "POST", terms, `{"imsi":"001010000000002","kind":"` + strings.Repeat("x", 600) + `"}`, nil, 413, "payload_too_large", "", "body: must be at most 512 bytes"},
		{"no content type", "POST", terms, `{"imsi":"001010000000002"}`, []string{"Content-Type", "-"}, 415, "unsupported_media_type", "", ""},
		{"text content type", "POST", terms, `{"imsi":"001010000000002"}`, []string{"Content-Type", "text/plain"}, 415, "unsupported_media_type", "", ""},
		{"json with charset", "POST", terms, `{"imsi":"001010000000002","caps":[]}`, []string{"Content-Type", "application/json; charset=utf-8"}, 201, "", "", ""},
		{"duplicate imsi", "POST", terms, `{"imsi":"001010000000001"}`, nil, 409, "already_exists", "", "terminal imsi:001010000000001: already exists"},
		{"unknown user terminals", "POST", "/api/v1/users/nobody/terminals", `{"imsi":"001010000000009"}`, nil, 404, "not_found", "", "user nobody: not found"},
		{"invalid user in path", "GET", "/api/v1/users/no%20body/terminals", "", nil, 400, "invalid_argument", "im_id", ""},
		{"list unknown user", "GET", "/api/v1/users/nobody/terminals", "", nil, 404, "not_found", "", ""},
		{"bad id", "GET", "/api/v1/terminals/abc", "", nil, 400, "invalid_argument", "id", "id: must be a positive integer"},
		{"zero id", "POST", "/api/v1/terminals/0/activate", "", nil, 400, "invalid_argument", "id", ""},
		{"unknown terminal", "POST", "/api/v1/terminals/99/activate", "", nil, 404, "not_found", "", "terminal 99: not found"},
		{"unknown terminal deactivate", "POST", "/api/v1/terminals/99/deactivate", "", nil, 404, "not_found", "", ""},
		{"duplicate user", "POST", "/api/v1/users", `{"im_id":"alice","password":"pw"}`, nil, 409, "already_exists", "", "user alice: already exists"},
		{"user without password", "POST", "/api/v1/users", `{"im_id":"carol"}`, nil, 400, "invalid_argument", "password", "password: must not be empty"},
		{"user with bad display", "POST", "/api/v1/users", `{"im_id":"carol","password":"x","display":"a\u0007"}`, nil, 400, "invalid_argument", "display", ""},
		{"password for nobody", "PUT", "/api/v1/users/nobody/password", `{"password":"x"}`, nil, 404, "not_found", "", ""},
		{"bad contact uri", "POST", "/api/v1/users/alice/contacts", `{"uri":"imcall:terminal?v=1&im=bob&imsi=1"}`, nil, 400, "invalid_argument", "imsi", "imsi: must be 6 to 15 digits"},
		{"contact uri of another version", "POST", "/api/v1/users/alice/contacts", `{"uri":"imcall:terminal?v=2&im=bob"}`, nil, 400, "invalid_argument", "uri", "uri: version must be 1"},
		{"method not allowed", "PATCH", "/api/v1/terminals/1", "", nil, 405, "method_not_allowed", "", ""},
		{"no such endpoint", "GET", "/api/v1/phones", "", nil, 404, "not_found", "", "no such endpoint: /api/v1/phones"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(t, tt.method, tt.path, tt.body, tt.hdr...)
			if r.status != tt.status {
				t.Fatalf("status %d (%s), want %d", r.status, r.body, tt.status)
			}
			if tt.code == "" {
				return
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			got := r.err()
			if got.Code != tt.code || got.Field != tt.field || (tt.message != "" && got.Message != tt.message) || got.Message == "" {
				t.Fatalf("error %+v (%s), want code %s field %q message %q", got, r.body, tt.code, tt.field, tt.message)
			}
		})
	}
	if r := e.do(t, "PATCH", "/api/v1/terminals/1", ""); r.header.Get("Allow") != "DELETE, GET, HEAD" {
		t.Fatalf("Allow = %q", r.header.Get("Allow"))
	}
	// Nothing above changed what was there but the one valid request.
	ts, err := e.store.Terminals(context.Background(), "alice")
	if err != nil || len(ts) != 2 {
		t.Fatalf("alice's terminals = %+v, %v; want the seeded one and the one valid create", ts, err)
	}
}

// TestSameWordsAsCLI: the API reports a mistake with the words the shared
// validation path gives, which is what the CLI prints.
func TestSameWordsAsCLI(t *testing.T) {
	e := newEnv(t, token, 0)
	e.must(t, 201, "POST", "/api/v1/users", `{"im_id":"alice","password":"pw"}`, nil)
	for _, req := range []TerminalRequest{
		{IMSI: "12"}, {MAC: "01:02"}, {MSISDN: "0044"}, {}, {IMSI: "123456", MAC: "aabbccddeeff"},
		{IMSI: "123456", Kind: "x"}, {IMSI: "123456", Caps: []string{"smell"}},
	} {
		_, want := req.NewTerminal("alice")
		body, _ := json.Marshal(req)
		r := e.do(t, "POST", "/api/v1/users/alice/terminals", string(body))
		if want == nil || r.err().Message != want.Error() {
			t.Fatalf("%s: API says %q, shared validation says %v", body, r.err().Message, want)
		}
	}
}

func TestAuth(t *testing.T) {
	e := newEnv(t, token, 0)
	tests := []struct {
		name, auth string
		status     int
		challenge  string
	}{
		{"missing", "-", 401, `Bearer realm="b2bua"`},
		{"wrong token", "Bearer nope", 401, `Bearer realm="b2bua", error="invalid_token"`},
		{"token prefix", "Bearer " + token[:5], 401, `Bearer realm="b2bua", error="invalid_token"`},
		{"token with suffix", "Bearer " + token + "x", 401, `Bearer realm="b2bua", error="invalid_token"`},
		{"basic scheme", "Basic " + token, 401, `Bearer realm="b2bua"`},
		{"empty bearer", "Bearer ", 401, `Bearer realm="b2bua"`},
		{"right token", "Bearer " + token, 200, ""},
		{"scheme is case-insensitive", "bearer " + token, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, path := range []string{"/api/v1/users", "/api/v1/no-such-thing"} {
				r := e.do(t, "GET", path, "", "Authorization", tt.auth)
				if tt.status == 200 {
					if r.status == 401 {
						t.Fatalf("%s: 401 with the right token", path)
					}
					continue
				}
				if r.status != tt.status || r.err().Code != "unauthorized" || r.header.Get("WWW-Authenticate") != tt.challenge {
					t.Fatalf("%s: %d %s, WWW-Authenticate %q", path, r.status, r.body, r.header.Get("WWW-Authenticate"))
				}
			}
		})
	}
	if strings.Contains(e.logs.String(), token) {
		t.Fatalf("the log holds the token:\n%s", e.logs.String())
	}
	if !strings.Contains(e.logs.String(), "status=401") {
		t.Fatalf("the log lacks the refused requests:\n%s", e.logs.String())
	}

	// Without a configured token the API refuses everything.
	closed := newEnv(t, "", 0)
	for _, auth := range []string{"-", "Bearer ", "Bearer x"} {
		if r := closed.do(t, "GET", "/api/v1/users", "", "Authorization", auth); r.status != 401 {
			t.Fatalf("no token configured, Authorization %q: status %d", auth, r.status)
		}
	}
}

// TestActivateRace: clients racing to activate different terminals of one
// user through the API leave exactly one active.
func TestActivateRace(t *testing.T) {
	e := newEnv(t, token, 0)
	e.must(t, 201, "POST", "/api/v1/users", `{"im_id":"alice","password":"pw"}`, nil)
	const n = 4
	for i := range n {
		e.must(t, 201, "POST", "/api/v1/users/alice/terminals", fmt.Sprintf(`{"imsi":"00101000000000%d"}`, i), nil)
	}
	var wg sync.WaitGroup
	errs := make(chan string, n*10)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				req, _ := http.NewRequest("POST", fmt.Sprintf("%s/api/v1/terminals/%d/activate", e.srv.URL, i+1), nil)
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := e.srv.Client().Do(req)
				if err != nil {
					errs <- err.Error()
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- resp.Status
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var l TerminalList
	e.must(t, 200, "GET", "/api/v1/users/alice/terminals", "", &l)
	active := 0
	for _, x := range l.Terminals {
		if x.Active {
			active++
		}
	}
	if active != 1 {
		t.Fatalf("%d active terminals after the race, want 1: %+v", active, l)
	}
}

// openAPIRoutes reads "METHOD path" pairs from the paths section of
// openapi.yaml: a path is a two-space-indented key, an operation a
// four-space-indented HTTP method key beneath it.
func openAPIRoutes(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pathRE := regexp.MustCompile(`^  (/\S*):\s*$`)
	opRE := regexp.MustCompile(`^    (get|put|post|delete|patch|head|options):\s*$`)
	var (
		routes []string
		in     bool
		path   string
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, " ") && line != "" {
			in = line == "paths:"
			continue
		}
		if !in {
			continue
		}
		if m := pathRE.FindStringSubmatch(line); m != nil {
			path = m[1]
		} else if m := opRE.FindStringSubmatch(line); m != nil {
			routes = append(routes, strings.ToUpper(m[1])+" "+path)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return routes
}

// TestOpenAPIMatchesMux: every route the mux serves is in openapi.yaml and
// every operation there is served by exactly that route.
func TestOpenAPIMatchesMux(t *testing.T) {
	a := &api{}
	mux, patterns := a.mux()
	doc := openAPIRoutes(t)
	slices.Sort(patterns)
	slices.Sort(doc)
	if !slices.Equal(patterns, doc) {
		t.Fatalf("mux routes and openapi.yaml differ:\nmux: %v\ndoc: %v", patterns, doc)
	}
	fill := strings.NewReplacer("{im}", "alice", "{id}", "7", "{name}", "carrier-a", "{number}", "+15550001111")
	for _, r := range doc {
		method, path, _ := strings.Cut(r, " ")
		req := httptest.NewRequest(method, fill.Replace(path), nil)
		if _, pattern := mux.Handler(req); pattern != r {
			t.Errorf("%s %s is served by %q, want %q", method, fill.Replace(path), pattern, r)
		}
	}
}
