package provision

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestStrictBody: a body that encoding/json would quietly take for
// something else is refused with 400 naming the field, and nothing is
// stored.
func TestStrictBody(t *testing.T) {
	e := newEnv(t, token, 0)
	e.must(t, 201, "POST", "/api/v1/users", `{"im_id":"kate","password":"pw"}`, nil)
	const users, terms = "/api/v1/users", "/api/v1/users/kate/terminals"
	for _, tc := range []struct {
		name, path, body, field, rule string
	}{
		{"duplicate name", users, `{"im_id":"dave","im_id":"kate","password":"pw"}`, "im_id", "is given twice"},
		{"duplicate name through an escape", users, `{"im_id":"dave","im\u005fid":"eve","password":"pw"}`, "im_id", "is given twice"},
		{"duplicate in a terminal", terms, `{"imsi":"001010000000001","imsi":"001010000000002"}`, "imsi", "is given twice"},
		{"name in another case", users, `{"IM_ID":"dave","password":"pw"}`, "IM_ID", "is not a known field"},
		{"name with LATIN SMALL LETTER LONG S", users, `{"im_id":"dave","pa\u017fsword":"pw"}`, "paſsword", "is not a known field"},
		{"name with KELVIN SIGN", terms, `{"imsi":"001010000000003","\u212aind":"smart"}`, "\u212aind", "is not a known field"},
		{"invalid UTF-8", users, "{\"im_id\":\"dave\",\"password\":\"pw\",\"display\":\"D\xffve\"}", "display", "must be UTF-8 text"},
		{"invalid UTF-8 in a password", users, "{\"im_id\":\"dave\",\"password\":\"p\xc3w\"}", "password", "must be UTF-8 text"},
		{"truncated UTF-8", users, "{\"im_id\":\"dave\",\"password\":\"pw\",\"display\":\"\xe2\x82\"}", "display", "must be UTF-8 text"},
		{"lone high surrogate", users, `{"im_id":"dave","password":"pw","display":"\ud800"}`, "display", `\ud800 is a lone surrogate`},
		{"lone low surrogate", users, `{"im_id":"dave","password":"pw","display":"a\udc00b"}`, "display", `\udc00 is a lone surrogate`},
		{"high surrogate then a letter", users, `{"im_id":"dave","password":"pw","display":"\ud800\u0041"}`, "display", "lone surrogate"},
		{"surrogates reversed", users, `{"im_id":"dave","password":"pw","display":"\udc00\ud800"}`, "display", "lone surrogate"},
		{"lone surrogate in an array", terms, `{"imsi":"001010000000003","caps":["audio","\ud800"]}`, "caps", "lone surrogate"},
		{"KELVIN SIGN in an IM ID", users, `{"im_id":"\u212aate","password":"pw"}`, "im_id", "character U+212A is not allowed"},
		{"KELVIN SIGN as UTF-8", users, "{\"im_id\":\"\u212aate\",\"password\":\"pw\"}", "im_id", "character U+212A is not allowed"},
		{"upper case", users, `{"im_id":"Kate","password":"pw"}`, "im_id", "upper-case 'K' is not allowed"},
		{"space around", users, `{"im_id":"kate ","password":"pw"}`, "im_id", "' ' at position 5 is not allowed"},
		{"fullwidth letters", users, `{"im_id":"\uff4bate","password":"pw"}`, "im_id", "character U+FF4B is not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, "POST", tc.path, tc.body)
			got := r.err()
			if r.status != 400 || got.Code != CodeInvalidArgument || got.Field != tc.field || !strings.Contains(got.Message, tc.rule) {
				t.Fatalf("%d %s, want 400 on field %q saying %q", r.status, r.body, tc.field, tc.rule)
			}
		})
	}
	us, err := e.store.Users(context.Background())
	if err != nil || len(us) != 1 || us[0].IMID != "kate" {
		t.Fatalf("users after refusals = %+v, %v; want kate alone", us, err)
	}
	if ts, err := e.store.Terminals(context.Background(), "kate"); err != nil || len(ts) != 0 {
		t.Fatalf("terminals after refusals = %+v, %v; want none", ts, err)
	}
}

// TestStoredAsGiven: text the client sent is stored exactly, escapes
// decoded: a surrogate pair is one character, and U+FFFD that the client
// itself sent is U+FFFD.
func TestStoredAsGiven(t *testing.T) {
	e := newEnv(t, token, 0)
	for _, tc := range []struct{ im, display, want string }{
		{"dave", `\ud83d\ude00 Dave`, "\U0001F600 Dave"},
		{"erin", `Erin \ufffd`, "Erin \ufffd"},
		{"fay", "F\u00e1y \\\"q\\\" \\\\u0041", `Fáy "q" \u0041`},
	} {
		var u UserView
		e.must(t, 201, "POST", "/api/v1/users", fmt.Sprintf(`{"im_id":%q,"password":"pw","display":"%s"}`, tc.im, tc.display), &u)
		stored, err := e.store.User(context.Background(), tc.im)
		if err != nil || stored.Display != tc.want || u.Display != tc.want {
			t.Errorf("%s: stored %q (answered %q), %v; want %q", tc.im, stored.Display, u.Display, err, tc.want)
		}
	}
}

// TestErrorsAreJSON sends raw requests, which no client library would
// normalise, and requires every error to be the API's JSON error object:
// no redirect, no plain text.
func TestErrorsAreJSON(t *testing.T) {
	e := newEnv(t, token, 0)
	addr := e.srv.Listener.Addr().String()
	for _, tc := range []struct {
		request string
		auth    bool
		status  int
	}{
		{"GET /api/v1 HTTP/1.1", true, 404},
		{"GET /api/v1/ HTTP/1.1", true, 404},
		{"GET /api HTTP/1.1", true, 404},
		{"GET / HTTP/1.1", true, 404},
		{"GET /api/v1//users HTTP/1.1", true, 404},
		{"GET //api/v1/users HTTP/1.1", true, 404},
		{"GET /api/v1/./users HTTP/1.1", true, 404},
		{"GET /api/v1/users/. HTTP/1.1", true, 404},
		{"GET /api/v1/users/../terminals HTTP/1.1", true, 404},
		{"GET /api/v1/users/%2e%2e/terminals HTTP/1.1", true, 404},
		{"GET /api/v1/users/ HTTP/1.1", true, 404},
		{"GET /api/v1/terminals/1/ HTTP/1.1", true, 404},
		{"GET /api/v1/users/a%2Fb HTTP/1.1", true, 400},
		{"PATCH /api/v1/users HTTP/1.1", true, 405},
		{"BREW /api/v1/users HTTP/1.1", true, 405},
		{"GET /api/v1/users HTTP/1.1", false, 401},
		{"GET /api/v1 HTTP/1.1", false, 401},
		{"GET /api/v1//users HTTP/1.1", false, 401},
		{"POST /api/v1/users HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 70000", true, 413},
	} {
		t.Run(tc.request, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			auth := ""
			if tc.auth {
				auth = "Authorization: Bearer " + token + "\r\n"
			}
			body := ""
			if strings.Contains(tc.request, "Content-Length: 70000") {
				body = `{"im_id":"` + strings.Repeat("a", 70000-12) + `"}`
			}
			fmt.Fprintf(c, "%s\r\nHost: api.example\r\n%sConnection: close\r\n\r\n%s", tc.request, auth, body)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var eb struct{ Error *Error }
			if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != "application/json" ||
				json.Unmarshal(b, &eb) != nil || eb.Error == nil || eb.Error.Code == "" || eb.Error.Message == "" {
				t.Fatalf("%d %q %q (Location %q), want %d with a JSON error", resp.StatusCode, resp.Header.Get("Content-Type"), b, resp.Header.Get("Location"), tc.status)
			}
		})
	}
}
