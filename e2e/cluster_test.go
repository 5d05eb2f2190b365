package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/imcall/b2bua/internal/pgtest"
	"github.com/imcall/b2bua/internal/testenv"
)

const (
	bob2IMSI       = "001010000000012"
	carolSmartIMSI = "001010000000013"
	daveIMSI       = "001010000000014"
	apiToken       = "cluster-test-token-0123456789"
)

// cluster is two b2bua nodes sharing one PostgreSQL registry behind a
// Kamailio dispatcher (testdata/kamailio/cluster.cfg).
type cluster struct {
	a, b        *node
	k           *kamailio
	kaddr       string
	dsn         string
	db          *pgtest.Server // the cluster's own, so a test can stop it
	port, port2 int            // bob's two legacy terminals
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	c := &cluster{port: pickPort(t), port2: pickPort(t)}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := pgtest.Start(ctx)
	if errors.Is(err, pgtest.ErrNoServer) {
		testenv.Missing(t, "%v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Errorf("stop PostgreSQL: %v", err)
		}
	})
	name, err := srv.CreateDB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.db, c.dsn = srv, srv.DSN(name)
	c.kaddr = "127.0.0.4:" + strconv.Itoa(pickPort(t))
	tok := filepath.Join(t.TempDir(), "api.token")
	if err := os.WriteFile(tok, []byte(apiToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.a, c.b = newNode(t), newNode(t)
	c.a.db, c.b.db = c.dsn, c.dsn
	// Provisioned once, through one node's CLI: the registry is shared.
	c.a.addUser("alice", "secret")
	c.a.addUser("bob", "secret")
	c.a.addTerminal("bob", bobIMSI, "legacy", true)
	c.a.addTerminal("bob", bob2IMSI, "legacy", false)
	for _, u := range []struct{ im, imsi string }{{"carol", carolSmartIMSI}, {"dave", daveIMSI}} {
		c.a.addUser(u.im, "secret")
		c.a.cli("", "terminal", "add", "--im", u.im, "--imsi", u.imsi, "--kind", "smart", "--caps", "audio,text", "--active")
	}
	subs := []subscriber{online(bobIMSI, c.port), online(bob2IMSI, c.port2)}
	for name, n := range map[string]*node{"a": c.a, "b": c.b} {
		n.serve(serveOpts{subscribers: subs, extra: []string{"--node-id", name, "--proxies", "127.0.0.4",
			"--api-token-file", tok, "--message-retry", "500ms"}})
	}
	c.k = kamailioFront(t, "cluster.cfg", []*node{c.a, c.b}, c.kaddr)
	return c
}

// TestCluster: two nodes on one PostgreSQL registry behind Kamailio's
// dispatcher serve as one: calls spread over both and all complete; what
// one node's API writes, the other uses at once; a client registered
// through Kamailio at one node is reached by calls at either; a kept
// message is delivered once; and when a node is killed under load the
// dispatcher moves new calls to the other.
func TestCluster(t *testing.T) {
	requireTool(t, "kamailio", "kamailio")
	c := startCluster(t)
	aLog, bLog := filepath.Join(c.a.dir, "b2bua.log"), filepath.Join(c.b.dir, "b2bua.log")

	t.Run("calls spread over both nodes", func(t *testing.T) {
		const calls = 20
		term := startSipp(t, sippRun{name: "term", scenario: "terminal_answer.xml", port: c.port, args: []string{"-m", strconv.Itoa(calls)}})
		if err := term.waitBound(); err != nil {
			t.Fatal(err)
		}
		kamailioCall(t, "alice", "kamailio_caller_bye.xml", c.kaddr, "-m", strconv.Itoa(calls), "-r", "10", "-l", "10").wait()
		term.wait()
		na, nb := strings.Count(readFile(aLog), "call answered"), strings.Count(readFile(bLog), "call answered")
		t.Logf("answered: node a %d, node b %d", na, nb)
		if na == 0 || nb == 0 || na+nb != calls {
			t.Errorf("answered calls: node a %d, node b %d; want both > 0 and %d in all", na, nb, calls)
		}
		// Each record names the node that handled it (--node-id).
		if ra, rb := c.count(t, `SELECT count(*) FROM call_records WHERE node = 'a'`), c.count(t, `SELECT count(*) FROM call_records WHERE node = 'b'`); ra != na || rb != nb {
			t.Errorf("call records: node a %d, node b %d; want %d and %d", ra, rb, na, nb)
		}
	})

	t.Run("terminal activated through node a is used through node b", func(t *testing.T) {
		id := c.terminalID(t, "bob", bob2IMSI)
		req, _ := http.NewRequest(http.MethodPost, "http://"+c.a.httpAddr+"/api/v1/terminals/"+strconv.FormatInt(id, 10)+"/activate", nil)
		req.Header.Set("Authorization", "Bearer "+apiToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("activate through node a: %s", res.Status)
		}
		// At once: node b's cache held bob's old terminal from the calls
		// before; the database's change notice drops it.
		term := terminalOn(t, "terminal_answer.xml", c.port2)
		c.b.call("caller_call_bye.xml", "alice", "secret", "bob").wait()
		term.wait()
	})

	t.Run("registered through kamailio, reached through either node", func(t *testing.T) {
		reg := startSipp(t, sippRun{name: "register", scenario: "register.xml", args: []string{
			"-key", "user", "carol", "-key", "domain", domain, "-au", "carol", "-ap", "secret", "-auth_uri", domain, c.kaddr}})
		reg.wait()
		for _, n := range []*node{c.a, c.b} {
			term := terminalOn(t, "terminal_answer.xml", reg.port)
			n.call("caller_call_bye.xml", "alice", "secret", "carol").wait()
			term.wait()
		}
	})

	t.Run("kept message delivered once", func(t *testing.T) {
		kamailioMessage := startSipp(t, sippRun{name: "message", scenario: "message_kept.xml", args: []string{
			"-i", "127.0.0.3", "-s", "dave", "-key", "caller", "alice", "-key", "domain", domain,
			"-au", "alice", "-ap", "secret", "-auth_uri", "dave@" + domain, c.kaddr}})
		kamailioMessage.wait()
		reg := startSipp(t, sippRun{name: "register-dave", scenario: "register.xml", args: []string{
			"-key", "user", "dave", "-key", "domain", domain, "-au", "dave", "-ap", "secret", "-auth_uri", domain, c.kaddr}})
		reg.wait()
		term := terminalOn(t, "terminal_message.xml", reg.port)
		term.wait()
		// Several sweeps of both nodes later, it went out once.
		time.Sleep(2 * time.Second)
		delivered := strings.Count(readFile(aLog), "kept message delivered") + strings.Count(readFile(bLog), "kept message delivered")
		if delivered != 1 {
			t.Errorf("kept message delivered %d times by the nodes, want once", delivered)
		}
		if n := c.count(t, `SELECT count(*) FROM pending_messages`); n != 0 {
			t.Errorf("%d messages still kept", n)
		}
	})

	t.Run("database down: 503 at once, then recovered", func(t *testing.T) {
		ctx := context.Background()
		if err := c.db.Halt(ctx); err != nil {
			t.Fatal(err)
		}
		resumed := false
		defer func() {
			if !resumed {
				_ = c.db.Resume(ctx)
			}
		}()
		for _, n := range []*node{c.a, c.b} {
			if status, code := apiGet(t, n, "/api/v1/users"); status != http.StatusServiceUnavailable || code != "unavailable" {
				t.Errorf("node %s API with the database down: %d %q, want 503 unavailable", n.sipAddr, status, code)
			}
			caller := startSipp(t, sippRun{name: "registry-down", scenario: "caller_registry_down.xml", args: []string{
				"-s", "bob", "-key", "caller", "alice", "-key", "domain", domain, "-au", "alice", "-ap", "secret", n.sipAddr}})
			caller.wait()
			m := registryDownTimes.FindStringSubmatch(caller.actions())
			if m == nil {
				t.Fatalf("no timing in the caller's log:\n%s", caller.actions())
			}
			took := elapsed(m[1], m[2], m[3], m[4])
			t.Logf("node %s: 503 %v after the authenticated INVITE", n.sipAddr, took.Round(time.Millisecond))
			if took > 3*time.Second {
				t.Errorf("503 came %v after the authenticated INVITE, want within the 2 s connect timeout", took)
			}
		}
		if err := c.db.Resume(ctx); err != nil {
			t.Fatal(err)
		}
		resumed = true
		// The pool drops its dead connections as it meets them: the API
		// answers again within seconds, and so do calls.
		for _, n := range []*node{c.a, c.b} {
			deadline := time.Now().Add(15 * time.Second)
			for status, _ := apiGet(t, n, "/api/v1/users"); status != http.StatusOK; status, _ = apiGet(t, n, "/api/v1/users") {
				if time.Now().After(deadline) {
					t.Fatalf("node %s API still %d 15s after the database came back", n.sipAddr, status)
				}
				time.Sleep(100 * time.Millisecond)
			}
			term := terminalOn(t, "terminal_answer.xml", c.port2)
			n.call("caller_call_bye.xml", "alice", "secret", "bob").wait()
			term.wait()
		}
	})

	t.Run("node killed under load", func(t *testing.T) {
		const calls = 40
		term := startSipp(t, sippRun{name: "term-load", scenario: "terminal_answer.xml", port: c.port2, args: []string{"-m", strconv.Itoa(calls)}})
		if err := term.waitBound(); err != nil {
			t.Fatal(err)
		}
		before := strings.Count(readFile(bLog), "call answered")
		caller := kamailioCall(t, "load", "kamailio_caller_bye.xml", c.kaddr, "-m", strconv.Itoa(calls), "-r", "10", "-l", "20", "-d", "500")
		waitLog(t, bLog, "call answered", before+3, 10*time.Second)
		if err := c.b.proc.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		c.k.waitNodeFlags(t, "sip:"+c.b.sipAddr, "IP", 10*time.Second)
		t.Logf("dispatcher marked node b down %v after SIGKILL", time.Since(killed).Round(10*time.Millisecond))
		<-caller.exited
		ok, failed := sippCounts(t, caller)
		t.Logf("during the switch: %d of %d calls failed, %d succeeded", failed, calls, ok)
		if ok+failed > calls || ok < calls/2 {
			t.Errorf("%d succeeded and %d failed of %d calls", ok, failed, calls)
		}
		// The terminal still waits for the BYEs of node b's calls.
		_ = term.cmd.Process.Kill()
		<-term.exited
		// With node b down, every new call succeeds on node a.
		const after = 10
		term = startSipp(t, sippRun{name: "term-after", scenario: "terminal_answer.xml", port: c.port2, args: []string{"-m", strconv.Itoa(after)}})
		if err := term.waitBound(); err != nil {
			t.Fatal(err)
		}
		kamailioCall(t, "after", "kamailio_caller_bye.xml", c.kaddr, "-m", strconv.Itoa(after), "-r", "10", "-l", "10").wait()
		term.wait()
	})
}

// terminalID is the ID of imID's terminal with imsi, from node a's API.
func (c *cluster) terminalID(t *testing.T, imID, imsi string) int64 {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+c.a.httpAddr+"/api/v1/users/"+imID+"/terminals", nil)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct {
		Terminals []struct {
			ID       int64 `json:"id"`
			MobileID struct {
				Value string `json:"value"`
			} `json:"mobile_id"`
		} `json:"terminals"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	for _, term := range body.Terminals {
		if term.MobileID.Value == imsi {
			return term.ID
		}
	}
	t.Fatalf("%s has no terminal %s: %+v", imID, imsi, body)
	return 0
}

// count runs a counting query on the cluster's database.
func (c *cluster) count(t *testing.T, q string) int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), c.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// apiGet GETs path from n's API and gives the status and the error code.
func apiGet(t *testing.T, n *node, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+n.httpAddr+path, nil)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.NewDecoder(res.Body).Decode(&body)
	return res.StatusCode, body.Error.Code
}

var registryDownTimes = regexp.MustCompile(`registry-down sent=([0-9.]+) ([0-9.]+) answered=([0-9.]+) ([0-9.]+)`)

// elapsed is the time between two gettimeofday readings of SIPp (seconds
// and microseconds, which SIPp logs as decimals).
func elapsed(s1, us1, s2, us2 string) time.Duration {
	n := func(s string) float64 { v, _ := strconv.ParseFloat(s, 64); return v }
	return time.Duration(((n(s2)-n(s1))*1e6 + (n(us2) - n(us1))) * float64(time.Microsecond))
}

var sippStat = regexp.MustCompile(`(Successful|Failed) call\s*\|\s*\d+\s*\|\s*(\d+)`)

// sippCounts reads the successful and failed calls of SIPp's final
// statistics screen.
func sippCounts(t *testing.T, s *sipp) (ok, failed int) {
	t.Helper()
	screen := s.screen()
	ms := sippStat.FindAllStringSubmatch(screen, -1)
	if len(ms) < 2 {
		t.Fatalf("no call counts in SIPp's screen:\n%s", tail([]byte(screen), 40))
	}
	for _, m := range ms {
		n, _ := strconv.Atoi(m[2])
		if m[1] == "Successful" {
			ok = n
		} else {
			failed = n
		}
	}
	return ok, failed
}
