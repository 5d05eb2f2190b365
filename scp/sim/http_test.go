package sim

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/scp"
)

func newServer(t *testing.T, subs ...Subscriber) (*Simulator, *httptest.Server) {
	t.Helper()
	s := newSim(t, subs...)
	srv := httptest.NewServer(NewHandler(s, nil))
	t.Cleanup(srv.Close)
	return s, srv
}

func TestHandler(t *testing.T) {
	_, srv := newServer(t,
		Subscriber{ID: "imsi:001010000000001", Addr: addrA, State: scp.Online},
		Subscriber{ID: "mac:00:1a:2b:3c:4d:5e", State: scp.Absent},
		Subscriber{ID: "msisdn:+441632960001", Addr: addrB, State: scp.Busy},
	)
	tests := []struct {
		name, method, path, ctype, body string
		wantStatus                      int
		wantBody                        string // substring
	}{
		{"locate online", "GET", "/scp/v1/locate?id=imsi:001010000000001", "", "", 200, `{"state":"online","addr":"127.0.0.1:5062"}`},
		{"locate absent", "GET", "/scp/v1/locate?id=mac:00:1a:2b:3c:4d:5e", "", "", 200, `{"state":"absent"}`},
		{"locate msisdn", "GET", "/scp/v1/locate?id=msisdn:+441632960001", "", "", 200, `{"state":"busy","addr":"[::1]:5070"}`},
		{"locate msisdn escaped", "GET", "/scp/v1/locate?x=1&id=msisdn%3A%2B441632960001", "", "", 200, `{"state":"busy","addr":"[::1]:5070"}`},
		{"locate unknown msisdn", "GET", "/scp/v1/locate?id=msisdn:+441632960002", "", "", 404, `"message":"msisdn:+441632960002: scp: unknown subscriber"`},
		{"locate unknown", "GET", "/scp/v1/locate?id=imsi:001010000000009", "", "", 404, `"code":"unknown_subscriber"`},
		{"locate malformed", "GET", "/scp/v1/locate?id=nonsense", "", "", 400, `"code":"invalid_argument"`},
		{"locate malformed imsi", "GET", "/scp/v1/locate?id=imsi:12", "", "", 400, `"field":"imsi"`},
		{"locate without id", "GET", "/scp/v1/locate", "", "", 400, `"field":"id"`},
		{"locate wrong method", "POST", "/scp/v1/locate?id=imsi:001010000000001", "", "", 405, "not allowed"},
		{"unknown route", "GET", "/scp/v1/nope", "", "", 404, `"code":"not_found"`},
		{"list", "GET", "/scp/v1/subscribers", "", "", 200, `[{"imsi":"001010000000001","addr":"127.0.0.1:5062","state":"online"},{"mac":"00:1a:2b:3c:4d:5e","state":"absent"},{"msisdn":"+441632960001","addr":"[::1]:5070","state":"busy"}]`},
		{"get msisdn", "GET", "/scp/v1/subscribers/msisdn:+441632960001", "", "", 200, `{"msisdn":"+441632960001","addr":"[::1]:5070","state":"busy"}`},
		{"attach msisdn", "PUT", "/scp/v1/subscribers/msisdn:%2B441632960003", "application/json", `{"addr":"127.0.0.1:5070"}`, 201, `{"msisdn":"+441632960003","addr":"127.0.0.1:5070","state":"online"}`},
		{"attach bad msisdn", "PUT", "/scp/v1/subscribers/msisdn:441632960003", "application/json", `{"addr":"127.0.0.1:5070"}`, 400, `"field":"msisdn"`},
		{"get", "GET", "/scp/v1/subscribers/mac:00:1A:2B:3C:4D:5E", "", "", 200, `{"mac":"00:1a:2b:3c:4d:5e","state":"absent"}`},
		{"get unknown", "GET", "/scp/v1/subscribers/imsi:001010000000009", "", "", 404, "unknown_subscriber"},
		{"attach new", "PUT", "/scp/v1/subscribers/imsi:001010000000002", "application/json", `{"addr":"127.0.0.1:5070","state":"busy"}`, 201, `"state":"busy"`},
		{"attach again", "PUT", "/scp/v1/subscribers/imsi:001010000000002", "application/json; charset=utf-8", `{"addr":"127.0.0.1:5070"}`, 200, `"state":"online"`},
		{"attach bad imsi", "PUT", "/scp/v1/subscribers/imsi:12", "application/json", `{"addr":"127.0.0.1:5070"}`, 400, `"field":"imsi"`},
		{"attach bad addr", "PUT", "/scp/v1/subscribers/imsi:001010000000003", "application/json", `{"addr":"nowhere"}`, 400, `"field":"addr"`},
		{"attach bad state", "PUT", "/scp/v1/subscribers/imsi:001010000000003", "application/json", `{"addr":"127.0.0.1:5070","state":"gone"}`, 400, `"field":"state"`},
		{"attach unknown field", "PUT", "/scp/v1/subscribers/imsi:001010000000003", "application/json", `{"addr":"127.0.0.1:5070","x":1}`, 400, `unknown field`},
		{"attach not json", "PUT", "/scp/v1/subscribers/imsi:001010000000003", "application/json", `addr=1`, 400, `invalid JSON`},
		{"attach empty body", "PUT", "/scp/v1/subscribers/imsi:001010000000003", "application/json", ``, 400, `body: is required`},
		{"attach truncated", "PUT", "/scp/v1/subscribers/imsi:001010000000003", "application/json", `{"addr":`, 400, `truncated JSON`},
		{"attach trailing", "PUT", "/scp/v1/subscribers/imsi:001010000000003", "application/json", `{"addr":"127.0.0.1:5070"} {}`, 400, `unexpected data`},
		{"attach wrong type", "PUT", "/scp/v1/subscribers/imsi:001010000000003", "application/json", `{"addr":5070}`, 400, `addr: must be a JSON string`},
		{"attach wrong content type", "PUT", "/scp/v1/subscribers/imsi:001010000000003", "text/plain", `{"addr":"127.0.0.1:5070"}`, 415, `Content-Type`},
		{"attach oversize", "PUT", "/scp/v1/subscribers/imsi:001010000000003", "application/json", `{"addr":"` + strings.Repeat("1", maxRequestBytes) + `"}`, 413, `larger than`},
		{"move", "PATCH", "/scp/v1/subscribers/imsi:001010000000001", "application/json", `{"addr":"[::1]:5070"}`, 200, `"addr":"[::1]:5070","state":"online"`},
		{"state", "PATCH", "/scp/v1/subscribers/imsi:001010000000001", "application/json", `{"state":"busy"}`, 200, `"state":"busy"`},
		{"patch nothing", "PATCH", "/scp/v1/subscribers/imsi:001010000000001", "application/json", `{}`, 400, `give addr, state or both`},
		{"move unknown", "PATCH", "/scp/v1/subscribers/imsi:001010000000009", "application/json", `{"addr":"127.0.0.1:5070"}`, 404, `unknown_subscriber`},
		{"detach", "DELETE", "/scp/v1/subscribers/imsi:001010000000001", "", "", 204, ""},
		{"detach again", "DELETE", "/scp/v1/subscribers/imsi:001010000000001", "", "", 404, `unknown_subscriber`},
		{"locate detached", "GET", "/scp/v1/locate?id=imsi:001010000000001", "", "", 404, `unknown_subscriber`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader(tt.body))
			if tt.ctype != "" {
				req.Header.Set("Content-Type", tt.ctype)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus || !strings.Contains(string(body), tt.wantBody) {
				t.Fatalf("%d %s, want %d containing %s", resp.StatusCode, body, tt.wantStatus, tt.wantBody)
			}
			if tt.wantBody != "" && resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("Content-Type = %q", resp.Header.Get("Content-Type"))
			}
			if resp.StatusCode >= 400 {
				var eb ErrorBody
				if err := json.Unmarshal(body, &eb); err != nil || eb.Error.Code == "" || eb.Error.Message == "" {
					t.Fatalf("error body %s is not an error object", body)
				}
			}
		})
	}
}

func TestClient(t *testing.T) {
	_, srv := newServer(t)
	c, err := NewClient(srv.URL+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const id = "mac:00:1a:2b:3c:4d:5e"
	if _, err := c.Attach(ctx, Subscriber{ID: id, Addr: addrA, State: scp.Online}); err != nil {
		t.Fatal(err)
	}
	if sub, err := c.Move(ctx, id, addrB); err != nil || sub.Addr != addrB {
		t.Fatalf("move: %+v, %v", sub, err)
	}
	if sub, err := c.SetState(ctx, id, scp.Busy); err != nil || sub.State != scp.Busy {
		t.Fatalf("state: %+v, %v", sub, err)
	}
	subs, err := c.List(ctx)
	if err != nil || len(subs) != 1 || subs[0] != (Subscriber{ID: id, Addr: addrB, State: scp.Busy}) {
		t.Fatalf("list: %+v, %v", subs, err)
	}
	if _, err := c.SetState(ctx, id, "sleepy"); err == nil {
		t.Fatal("bad state accepted")
	} else if ve := (*registry.ValidationError)(nil); !errors.As(err, &ve) || ve.Error() != "state: must be online, busy or absent" {
		t.Fatalf("bad state: %v", err)
	}
	if err := c.Detach(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := c.Detach(ctx, id); !errors.Is(err, scp.ErrUnknownSubscriber) {
		t.Fatalf("detach twice: %v", err)
	}
	if _, err := c.Move(ctx, id, netip.MustParseAddrPort("127.0.0.1:1")); !errors.Is(err, scp.ErrUnknownSubscriber) {
		t.Fatalf("move detached: %v", err)
	}
	if _, err := NewClient("127.0.0.1:8070", nil); err == nil {
		t.Fatal("a URL without scheme must be refused")
	}
}

// TestOpenAPIMatchesRoutes keeps scp/openapi.yaml honest: every operation it
// documents is served, and every route served is documented.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc, err := docOperations(filepath.Join("..", "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var served []string
	for _, rt := range (&handler{}).routes() {
		served = append(served, rt.method+" "+rt.path)
	}
	sort.Strings(doc)
	sort.Strings(served)
	if strings.Join(doc, "\n") != strings.Join(served, "\n") {
		t.Fatalf("openapi.yaml documents\n  %s\nthe handler serves\n  %s", strings.Join(doc, "\n  "), strings.Join(served, "\n  "))
	}
	// The documented paths reach a real handler, not the catch-all.
	_, srv := newServer(t, Subscriber{ID: "imsi:001010000000001", Addr: addrA, State: scp.Online})
	for _, op := range doc {
		method, path, _ := strings.Cut(op, " ")
		path = strings.ReplaceAll(path, "{id}", "imsi:001010000000001")
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(`{"state":"busy"}`))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 405 || strings.Contains(string(body), CodeNotFound) {
			t.Errorf("%s: %d %s", op, resp.StatusCode, body)
		}
	}
}

// docOperations reads "METHOD /path" pairs from the paths section of an
// OpenAPI YAML file. It knows only the layout our document uses (two-space
// indents), which keeps the project free of a YAML dependency.
func docOperations(file string) ([]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	methods := map[string]bool{"get": true, "put": true, "post": true, "patch": true, "delete": true, "head": true, "options": true}
	var ops []string
	var inPaths bool
	var path string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		indent := len(line) - len(strings.TrimLeft(line, " "))
		switch {
		case trimmed == "" || strings.HasPrefix(trimmed, "#"):
		case indent == 0:
			inPaths = trimmed == "paths:"
		case !inPaths:
		case indent == 2 && strings.HasSuffix(trimmed, ":"):
			path = strings.TrimSuffix(trimmed, ":")
		case indent == 4 && methods[strings.TrimSuffix(trimmed, ":")]:
			ops = append(ops, strings.ToUpper(strings.TrimSuffix(trimmed, ":"))+" "+path)
		}
	}
	return ops, sc.Err()
}

// TestClientNoSimulator: an HTTP server without the admin routes (a b2bua
// whose SCP is not the simulator) gives an error that says so.
func TestClientNoSimulator(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	c, err := NewClient(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.List(context.Background())
	if err == nil || !strings.Contains(err.Error(), "404 Not Found: no SCP simulator serves this address") {
		t.Fatalf("List: %v", err)
	}
}
