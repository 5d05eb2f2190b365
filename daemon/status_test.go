package daemon

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/statuspage"
)

// sipExchange sends req over UDP and returns the first final answer's
// status line.
func udpExchange(t *testing.T, d *Daemon, req string) string {
	t.Helper()
	u, err := net.Dial("udp", d.SIPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	req = strings.ReplaceAll(req, "LOCAL", u.LocalAddr().String())
	u.Write([]byte(strings.ReplaceAll(req, "\n", "\r\n")))
	u.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 8192)
	for {
		n, err := u.Read(buf)
		if err != nil {
			t.Fatalf("no final answer: %v", err)
		}
		line, _, _ := strings.Cut(string(buf[:n]), "\r\n")
		if !strings.HasPrefix(line, "SIP/2.0 1") {
			return line
		}
	}
}

// TestStatusPageServed: the daemon's status page is mounted at / behind
// the API token, and its snapshot holds a client that registered, the
// failed call to an unknown user with its answer, and the readiness
// checks.
func TestStatusPageServed(t *testing.T) {
	dir := t.TempDir()
	d, err := Start(context.Background(), Config{
		DBPath: filepath.Join(dir, "b2bua.db"), Domain: "127.0.0.1", APIToken: "tok-123",
		SIPListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", Media: MediaPassthrough, NoAuth: true,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	if _, err := d.Store().AddUser(ctx, registry.User{IMID: "alice", Creds: registry.NewCredentials("alice", "127.0.0.1", "pw")}); err != nil {
		t.Fatal(err)
	}
	if got := udpExchange(t, d, `REGISTER sip:127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP LOCAL;branch=z9hG4bK-reg1
From: <sip:alice@127.0.0.1>;tag=r1
To: <sip:alice@127.0.0.1>
Call-ID: reg-1
CSeq: 1 REGISTER
Contact: <sip:alice@LOCAL>
Expires: 600
Max-Forwards: 70
Content-Length: 0

`); !strings.HasPrefix(got, "SIP/2.0 200") {
		t.Fatalf("REGISTER: %s", got)
	}
	if got := udpExchange(t, d, `INVITE sip:nobody@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP LOCAL;branch=z9hG4bK-inv1
From: <sip:alice@127.0.0.1>;tag=i1
To: <sip:nobody@127.0.0.1>
Call-ID: inv-1
CSeq: 1 INVITE
Contact: <sip:alice@LOCAL>
Max-Forwards: 70
Content-Length: 0

`); !strings.HasPrefix(got, "SIP/2.0 404") {
		t.Fatalf("INVITE to nobody: %s", got)
	}
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := d.SIP().FlushRecords(fctx); err != nil {
		t.Fatal(err)
	}
	if res, err := http.Get("http://" + d.HTTPAddr() + "/status.json"); err != nil || res.StatusCode != 401 {
		t.Fatalf("status without the token: %v %v", res, err)
	}
	req, _ := http.NewRequest("GET", "http://"+d.HTTPAddr()+"/status.json", nil)
	req.Header.Set("Authorization", "Bearer tok-123")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var s statuspage.Snapshot
	if err := json.NewDecoder(res.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	if s.ClientsTotal != 1 || len(s.Clients) != 1 || s.Clients[0].IMID != "alice" {
		t.Errorf("clients %d %+v, want alice", s.ClientsTotal, s.Clients)
	}
	if len(s.Failures) != 1 || s.Failures[0].Callee != "nobody" || s.Failures[0].SIPStatus != 404 || s.Failures[0].Outcome != "unknown" {
		t.Errorf("failures %+v, want the 404 to nobody", s.Failures)
	}
	if len(s.Checks) != 4 || s.SCP.Backend != "sim" || s.SCP.Problem != "" || len(s.Calls) != 0 {
		t.Errorf("checks %+v scp %+v calls %v", s.Checks, s.SCP, s.Calls)
	}
	// The page itself is the login form without the cookie.
	res2, err := http.Get("http://" + d.HTTPAddr() + "/")
	if err != nil || res2.StatusCode != 200 || !strings.HasPrefix(res2.Header.Get("Content-Type"), "text/html") {
		t.Errorf("/: %v %v", res2, err)
	}
}
