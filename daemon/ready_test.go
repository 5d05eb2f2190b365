package daemon

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imcall/b2bua/scp"
)

// fakeBreaker is an SCP backend whose breaker the test opens.
type fakeBreaker struct {
	scp.Locator
	open atomic.Bool
}

func (f *fakeBreaker) BreakerOpen() bool { return f.open.Load() }

// optionsStatus sends one out-of-dialog OPTIONS over UDP and gives the
// answer's status line.
func optionsStatus(t *testing.T, d *Daemon) string {
	t.Helper()
	sip := d.SIPAddr().String()
	u, err := net.Dial("udp", sip)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	req := strings.Replace(options("UDP", sip, u.LocalAddr().String()), "Call-ID: probe-", "Call-ID: probe-"+time.Now().Format("150405.000000000")+"-", 1)
	req = strings.Replace(req, ";branch=z9hG4bK", ";branch=z9hG4bK"+time.Now().Format("150405000000000"), 1)
	u.Write([]byte(req))
	u.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 4096)
	n, err := u.Read(buf)
	if err != nil {
		t.Fatalf("OPTIONS: %v", err)
	}
	line, _, _ := strings.Cut(string(buf[:n]), "\r\n")
	return line
}

func readyz(t *testing.T, d *Daemon) (int, string) {
	t.Helper()
	res, err := http.Get("http://" + d.HTTPAddr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestReadiness: /readyz and the OPTIONS probe follow the checks (SCP
// breaker, store, draining), each re-read once the cached check is older
// than readyTTL; /healthz stays 200 throughout; --options-always-ok keeps
// OPTIONS at 200.
func TestReadiness(t *testing.T) {
	for _, always := range []bool{false, true} {
		t.Run(map[bool]string{false: "options follow", true: "options always ok"}[always], func(t *testing.T) {
			d, err := Start(context.Background(), Config{
				DBPath: filepath.Join(t.TempDir(), "b2bua.db"), Domain: "127.0.0.1",
				SIPListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", Media: MediaPassthrough,
				OptionsAlwaysOK: always, Logger: slog.New(slog.DiscardHandler),
			})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			// The clock and the backend are read by the readiness check on
			// SIP's goroutines: set them under its lock, move the clock
			// atomically.
			var clock atomic.Int64
			clock.Store(time.Now().UnixNano())
			fb := &fakeBreaker{Locator: d.loc}
			d.ready.mu.Lock()
			d.ready.now = func() time.Time { return time.Unix(0, clock.Load()) }
			d.loc = fb
			d.ready.mu.Unlock()
			wantOptions := func(ready bool) string {
				if ready || always {
					return "SIP/2.0 200"
				}
				return "SIP/2.0 503"
			}
			steps := []struct {
				name   string
				change func()
				status int
				body   string
			}{
				{"all well", func() {}, 200, "sip ok\nstore ok\nscp ok\nshutdown ok\n"},
				{"breaker open", func() { fb.open.Store(true) }, 503, "sip ok\nstore ok\nscp circuit breaker open\nshutdown ok\n"},
				{"breaker closed again", func() { fb.open.Store(false) }, 200, "sip ok\nstore ok\nscp ok\nshutdown ok\n"},
				{"store closed", func() { d.store.Close() }, 503, "store unreachable"},
			}
			for _, s := range steps {
				s.change()
				clock.Add(int64(readyTTL))
				status, body := readyz(t, d)
				if status != s.status || !strings.Contains(body, s.body) {
					t.Errorf("%s: /readyz %d %q, want %d with %q", s.name, status, body, s.status, s.body)
				}
				if got := optionsStatus(t, d); !strings.HasPrefix(got, wantOptions(s.status == 200)) {
					t.Errorf("%s: OPTIONS answered %q, want %s", s.name, got, wantOptions(s.status == 200))
				}
				if res, err := http.Get("http://" + d.HTTPAddr() + "/healthz"); err != nil || res.StatusCode != 200 {
					t.Errorf("%s: /healthz %v %v, want 200", s.name, res, err)
				}
			}
		})
	}
}

// TestReadyWhileDraining: once shutdown begins, /readyz says so.
func TestReadyWhileDraining(t *testing.T) {
	d, err := Start(context.Background(), Config{
		DBPath: filepath.Join(t.TempDir(), "b2bua.db"), Domain: "127.0.0.1",
		SIPListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", Media: MediaPassthrough,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.SIP().Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if status, body := readyz(t, d); status != 503 || !strings.Contains(body, "shutdown draining") {
		t.Errorf("/readyz while draining: %d %q", status, body)
	}
}
