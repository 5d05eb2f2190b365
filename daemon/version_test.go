package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/imcall/b2bua/provision"
	"github.com/imcall/b2bua/scp"
)

// TestVersionAndOpenAPIServed: /version and both OpenAPI documents answer
// without a token; the documents are the files in the repository.
func TestVersionAndOpenAPIServed(t *testing.T) {
	d, err := Start(context.Background(), Config{
		DBPath: filepath.Join(t.TempDir(), "b2bua.db"), Domain: "127.0.0.1",
		SIPListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", Media: MediaPassthrough,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	get := func(path string) (*http.Response, []byte) {
		res, err := http.Get("http://" + d.HTTPAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, b
	}
	res, b := get("/version")
	var v Version
	if err := json.Unmarshal(b, &v); err != nil || res.StatusCode != 200 || v.Go != runtime.Version() || v.Version == "" {
		t.Errorf("/version %d %s: %+v %v", res.StatusCode, b, v, err)
	}
	for path, want := range map[string][]byte{provision.OpenAPIPath: provision.OpenAPI(), scp.OpenAPIPath: scp.OpenAPI()} {
		res, b := get(path)
		if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/yaml" || !bytes.Equal(b, want) || !bytes.HasPrefix(b, []byte("openapi: 3")) {
			t.Errorf("%s: %d %q, %d bytes (want %d)", path, res.StatusCode, res.Header.Get("Content-Type"), len(b), len(want))
		}
	}
	// The API itself still wants its token.
	if res, _ := get("/api/v1/users"); res.StatusCode != 401 {
		t.Errorf("/api/v1/users without a token: %d", res.StatusCode)
	}
}
