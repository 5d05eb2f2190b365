// Package webdriver is a minimal W3C WebDriver client
// (https://www.w3.org/TR/webdriver2/) over net/http to chromedriver, enough
// for tests to drive the product's web pages (the conference page, the
// status page) in a real headless Chromium without a browser-automation
// dependency.
package webdriver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"testing"
	"time"

	"github.com/imcall/b2bua/internal/testenv"
)

// webElementKey is the W3C web element identifier (WebDriver §12.1).
const webElementKey = "element-6066-11e4-a52e-4f735466cecf"

// Browser is one headless Chromium session.
type Browser struct {
	t       *testing.T
	base    string // chromedriver's URL
	session string
}

// chromiumTools finds chromedriver and chromium (Debian chromium-driver and
// chromium); .ci/run installs them, so under CI they must be there.
func chromiumTools(t *testing.T) (driver, chromium string) {
	t.Helper()
	return testenv.NeedTool(t, "chromedriver"), testenv.NeedTool(t, "chromium")
}

var driverPort = regexp.MustCompile(`started successfully on port (\d+)`)

// Start starts chromedriver on a port of its own choosing and a headless
// Chromium session with a fresh profile and a window of width x height;
// both end with the test.
func Start(t *testing.T, width, height int) *Browser {
	t.Helper()
	driver, chromium := chromiumTools(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, driver, "--port=0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	port := make(chan string, 1)
	go func() { // ends when chromedriver's output closes, at its exit
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := driverPort.FindStringSubmatch(sc.Text()); m != nil {
				port <- m[1]
			}
		}
	}()
	b := &Browser{t: t}
	select {
	case p := <-port:
		b.base = "http://127.0.0.1:" + p
	case <-time.After(20 * time.Second):
		t.Fatal("chromedriver did not start")
	}
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName": "chrome",
		"goog:chromeOptions": map[string]any{
			"binary": chromium,
			"args": []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
				"--disable-background-networking", "--disable-component-update", "--disable-sync",
				"--user-data-dir=" + t.TempDir(), fmt.Sprintf("--window-size=%d,%d", width, height)},
		},
	}}}
	var s struct {
		SessionID string `json:"sessionId"`
	}
	b.call(http.MethodPost, "/session", caps, &s)
	b.session = s.SessionID
	t.Cleanup(func() { b.call(http.MethodDelete, "/session/"+b.session, nil, nil) })
	return b
}

// call does one WebDriver command and decodes its "value" into v.
func (b *Browser) call(method, path string, body, v any) {
	b.t.Helper()
	var rd io.Reader
	if body != nil {
		j, err := json.Marshal(body)
		if err != nil {
			b.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, b.base+path, rd)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatalf("webdriver %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		b.t.Fatalf("webdriver %s %s: %s: %s", method, path, resp.Status, raw)
	}
	if v != nil {
		var env struct {
			Value json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(raw, &env); err != nil {
			b.t.Fatalf("webdriver %s: %v", path, err)
		}
		if err := json.Unmarshal(env.Value, v); err != nil {
			b.t.Fatalf("webdriver %s value: %v: %s", path, err, env.Value)
		}
	}
}

func (b *Browser) s(path string) string { return "/session/" + b.session + path }

// Open loads url.
func (b *Browser) Open(url string) {
	b.call(http.MethodPost, b.s("/url"), map[string]string{"url": url}, nil)
}

// Eval runs script (a function body; arguments in `arguments`) in the page.
func (b *Browser) Eval(v any, script string, args ...any) {
	b.t.Helper()
	if args == nil {
		args = []any{}
	}
	b.call(http.MethodPost, b.s("/execute/sync"), map[string]any{"script": script, "args": args}, v)
}

// Click clicks the first element css selects.
func (b *Browser) Click(css string) {
	b.t.Helper()
	var el map[string]string
	b.call(http.MethodPost, b.s("/element"), map[string]string{"using": "css selector", "value": css}, &el)
	if el[webElementKey] == "" {
		b.t.Fatalf("no element id for %s in %v", css, el)
	}
	b.call(http.MethodPost, b.s("/element/"+el[webElementKey]+"/click"), map[string]any{}, nil)
}

// WaitFor evaluates script until it returns true or ctx is done.
func (b *Browser) WaitFor(ctx context.Context, what, script string, args ...any) {
	b.t.Helper()
	for {
		var ok bool
		b.Eval(&ok, script, args...)
		if ok {
			return
		}
		if ctx.Err() != nil {
			b.t.Fatalf("page never showed %s", what)
		}
	}
}

// Screenshot saves the window as a PNG at path.
func (b *Browser) Screenshot(path string) {
	b.t.Helper()
	var png string
	b.call(http.MethodGet, b.s("/screenshot"), nil, &png)
	raw, err := base64.StdEncoding.DecodeString(png)
	if err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// element finds the first element css selects.
func (b *Browser) element(css string) string {
	b.t.Helper()
	var el map[string]string
	b.call(http.MethodPost, b.s("/element"), map[string]string{"using": "css selector", "value": css}, &el)
	if el[webElementKey] == "" {
		b.t.Fatalf("no element id for %s in %v", css, el)
	}
	return el[webElementKey]
}

// Type types text into the first element css selects (WebDriver §12.5.3).
func (b *Browser) Type(css, text string) {
	b.t.Helper()
	b.call(http.MethodPost, b.s("/element/"+b.element(css)+"/value"), map[string]string{"text": text}, nil)
}
