package daemon

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/imcall/b2bua/conference"
	"github.com/imcall/b2bua/httpserver"
)

func apiDo(t *testing.T, d *Daemon, method, path, token, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+d.HTTPAddr()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// TestConferenceAPIMounted: the conference API answers only with the
// provisioning token, and a created conference's link opens its page.
func TestConferenceAPIMounted(t *testing.T) {
	d := startHTTP(t, httpserver.Config{})
	for _, tc := range []struct {
		method, path, token, body string
		want                      int
	}{
		{"POST", "/api/v1/conferences", "", `{"owner":"alice"}`, 401},
		{"POST", "/api/v1/conferences", "wrong", `{"owner":"alice"}`, 401},
		{"GET", "/api/v1/conferences", "", "", 401},
		{"GET", "/api/v1/conferences/0123456789abcdef", httpTestToken, "", 404},
	} {
		if got, b := apiDo(t, d, tc.method, tc.path, tc.token, tc.body); got != tc.want {
			t.Errorf("%s %s token %q: %d %s, want %d", tc.method, tc.path, tc.token, got, b, tc.want)
		}
	}
	code, b := apiDo(t, d, "POST", "/api/v1/conferences", httpTestToken, `{"owner":"alice"}`)
	if code != 201 {
		t.Fatalf("create: %d %s", code, b)
	}
	var c conference.CreatedResponse
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if want := "http://" + d.HTTPAddr() + "/conf/" + c.Token; c.Link != want || c.Owner != "alice" {
		t.Fatalf("created %+v, want link %s", c, want)
	}
	res, err := http.Get(c.Link)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(page), "<html") {
		t.Fatalf("page: %d %.200s", res.StatusCode, page)
	}
	if code, b := apiDo(t, d, "GET", "/api/v1/conferences/"+c.ID, httpTestToken, ""); code != 200 || !strings.Contains(string(b), `"owner":"alice"`) {
		t.Fatalf("show: %d %s", code, b)
	}
}

// TestConferenceEventsOutliveWriteTimeout: the page's event stream is not
// cut by the server's WriteTimeout, and the daemon's shutdown ends it
// rather than waiting for the client.
func TestConferenceEventsOutliveWriteTimeout(t *testing.T) {
	const writeTimeout = 300 * time.Millisecond
	d := startHTTP(t, httpserver.Config{WriteTimeout: writeTimeout})
	code, b := apiDo(t, d, "POST", "/api/v1/conferences", httpTestToken, `{"owner":"alice"}`)
	if code != 201 {
		t.Fatalf("create: %d %s", code, b)
	}
	var c conference.CreatedResponse
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	res, err := http.Get(c.Link + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	next := func(want string) {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("stream ended before %q", want)
				}
				if strings.Contains(l, want) {
					return
				}
			case <-deadline:
				t.Fatalf("no %q on the stream", want)
			}
		}
	}
	next(`"owner":"alice"`)
	// The server's clock, not one a test can move: wait past its bound.
	time.Sleep(2 * writeTimeout)
	if code, b := apiDo(t, d, "POST", "/api/v1/conferences/"+c.ID+"/participants", httpTestToken, `{"target":"bob"}`); code != 200 && code != 201 {
		t.Fatalf("add: %d %s", code, b)
	}
	next(`"target":"bob"`)

	done := make(chan struct{})
	go func() { d.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("shutdown waited for the event stream")
	}
	for range lines {
	}
}
