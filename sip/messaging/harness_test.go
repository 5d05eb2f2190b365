package messaging_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/registry/sqlite"
	"github.com/imcall/b2bua/scp"
	"github.com/imcall/b2bua/scp/sim"
	"github.com/imcall/b2bua/sip"
	"github.com/imcall/b2bua/sip/digest"
	"github.com/imcall/b2bua/sip/messaging"
)

// env is a B2BUA with the MESSAGE service on loopback, over a real SQLite
// registry and the real SCP simulator, the way the daemon wires them.
type env struct {
	t     *testing.T
	store *sqlite.Store
	sim   *sim.Simulator
	srv   *sip.Server
	addr  string // B2BUA's SIP address
	uri   func(user string) sipmsg.Uri
}

// b2bConfig is what a test may change before the server starts: the call
// core's config and the MESSAGE rules (nil: plain relay).
type b2bConfig struct {
	sip.Config
	Messaging *messaging.Rules
}

type envOpt func(*b2bConfig)

func testLogger() *slog.Logger {
	if os.Getenv("B2BUA_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// locatorFunc lets a test put a failing SCP in front of the simulator.
type locatorFunc func(ctx context.Context, id string) (scp.Location, error)

func (f locatorFunc) Locate(ctx context.Context, id string) (scp.Location, error) { return f(ctx, id) }

func newEnv(t *testing.T, opts ...envOpt) *env {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "b2bua.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	simulator, err := sim.New(sim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := b2bConfig{Config: sip.Config{
		Domain:      "im.test",
		Terminals:   store,
		Bindings:    store,
		Calls:       store,
		Locator:     simulator,
		Logger:      testLogger(),
		RingTimeout: 10 * time.Second,
	}}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := sip.NewServer(cfg.Config)
	if err != nil {
		t.Fatal(err)
	}
	msgr, err := messaging.New(messaging.Config{SIP: srv, Logger: cfg.Logger, Rules: cfg.Messaging})
	if err != nil {
		t.Fatal(err)
	}
	srv.HandleMessages(msgr)
	if err := srv.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	mctx, stopMsg := context.WithCancel(ctx)
	done := make(chan error, 1)
	msgDone := make(chan error, 1)
	go func() { done <- srv.Serve(sctx) }()
	t.Cleanup(func() {
		sd, c := context.WithTimeout(ctx, 50*time.Millisecond)
		_ = srv.Shutdown(sd)
		c()
		stopMsg()
		if err := <-msgDone; err != nil {
			t.Errorf("Run: %v", err)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	<-srv.Ready()
	go func() { msgDone <- msgr.Run(mctx) }()
	addr := srv.Addr().String()
	e := &env{t: t, store: store, sim: simulator, srv: srv, addr: addr}
	e.uri = func(user string) sipmsg.Uri {
		ap := netip.MustParseAddrPort(addr)
		return sipmsg.Uri{Scheme: "sip", User: user, Host: ap.Addr().String(), Port: int(ap.Port())}
	}
	return e
}

func withDigest() envOpt {
	return func(c *b2bConfig) {
		store := c.Terminals.(*sqlite.Store)
		v, err := digest.New(digest.Config{
			Realm: "im.test",
			Lookup: func(ctx context.Context, user string) (registry.Credentials, error) {
				u, err := store.User(ctx, user)
				return u.Creds, err
			},
		})
		if err != nil {
			panic(err)
		}
		c.Auth = v
		c.IsStale = func(err error) bool { return errors.Is(err, digest.ErrStale) }
	}
}

// addUser makes imID with password "secret-<imID>".
func (e *env) addUser(imID string) {
	e.t.Helper()
	_, err := e.store.AddUser(context.Background(), registry.User{IMID: imID, Creds: registry.NewCredentials(imID, "im.test", "secret-"+imID)})
	if err != nil {
		e.t.Fatal(err)
	}
}

// addLegacy gives imID an active legacy terminal with imsi, located by the
// simulator at addr with state st.
func (e *env) addLegacy(imID, imsi string, addr string, st scp.State) registry.Terminal {
	e.t.Helper()
	mid, err := registry.ParseIMSI(imsi)
	if err != nil {
		e.t.Fatal(err)
	}
	term, err := e.store.AddTerminal(context.Background(), registry.NewTerminal{IMID: imID, MobileID: mid, Kind: registry.Legacy, Caps: registry.CapAudio, Active: true})
	if err != nil {
		e.t.Fatal(err)
	}
	sub := sim.Subscriber{ID: mid.String(), State: st}
	if addr != "" {
		sub.Addr = netip.MustParseAddrPort(addr)
	}
	if _, err := e.sim.Attach(sub); err != nil {
		e.t.Fatal(err)
	}
	return term
}

// peer is a sipgo UA on a loopback UDP port: a sender or a terminal. It
// answers every MESSAGE with 200.
type peer struct {
	t        *testing.T
	name     string
	ua       *sipgo.UserAgent
	srv      *sipgo.Server
	cli      *sipgo.Client
	addr     string
	dc       *sipgo.DialogClientCache
	ds       *sipgo.DialogServerCache
	mu       sync.Mutex
	onInvite func(req *sipmsg.Request, tx sipmsg.ServerTransaction)
	requests chan *sipmsg.Request // every request handled (not ACK)
}

func newPeer(t *testing.T, name string) *peer {
	t.Helper()
	p := &peer{t: t, name: name, requests: make(chan *sipmsg.Request, 64)}
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = conn.LocalAddr().String()
	quiet := slog.New(slog.DiscardHandler)
	ua, err := sipgo.NewUA(sipgo.WithUserAgent(name), sipgo.WithUserAgentHostname("127.0.0.1"),
		sipgo.WithUserAgentTransactionLayerOptions(sipmsg.WithTransactionLayerLogger(quiet)),
		sipgo.WithUserAgentTransportLayerOptions(sipmsg.WithTransportLayerLogger(quiet)))
	if err != nil {
		t.Fatal(err)
	}
	p.ua = ua
	p.srv, _ = sipgo.NewServer(ua, sipgo.WithServerLogger(quiet))
	p.cli, _ = sipgo.NewClient(ua, sipgo.WithClientLogger(quiet), sipgo.WithClientConnectionAddr(p.addr))
	ap := netip.MustParseAddrPort(p.addr)
	contact := sipmsg.ContactHeader{Address: sipmsg.Uri{Scheme: "sip", User: name, Host: "127.0.0.1", Port: int(ap.Port())}}
	p.dc = sipgo.NewDialogClientCache(p.cli, contact)
	p.ds = sipgo.NewDialogServerCache(p.cli, contact)
	note := func(req *sipmsg.Request) {
		select {
		case p.requests <- req:
		default:
		}
	}
	p.srv.OnInvite(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		note(req)
		p.mu.Lock()
		h := p.onInvite
		p.mu.Unlock()
		if h == nil {
			tx.Respond(sipmsg.NewResponseFromRequest(req, 486, "Busy Here", nil))
			return
		}
		h(req, tx)
	})
	p.srv.OnAck(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) { _ = p.ds.ReadAck(req, tx) })
	p.srv.OnBye(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		note(req)
		if err := p.ds.ReadBye(req, tx); err == nil {
			return
		}
		if err := p.dc.ReadBye(req, tx); err != nil {
			tx.Respond(sipmsg.NewResponseFromRequest(req, 481, "No Dialog", nil))
		}
	})
	p.srv.OnMessage(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		note(req)
		tx.Respond(sipmsg.NewResponseFromRequest(req, 200, "OK", nil))
	})
	go p.srv.ServeUDP(conn)
	waitFor(t, func() bool { c, _ := ua.TransportLayer().GetConnection("udp", p.addr); return c != nil })
	t.Cleanup(func() {
		conn.Close()
		ua.Close()
	})
	return p
}

func (p *peer) setInvite(h func(req *sipmsg.Request, tx sipmsg.ServerTransaction)) {
	p.mu.Lock()
	p.onInvite = h
	p.mu.Unlock()
}

// waitRequest waits for a request of method.
func (p *peer) waitRequest(method sipmsg.RequestMethod, d time.Duration) *sipmsg.Request {
	p.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case r := <-p.requests:
			if r.Method == method {
				return r
			}
		case <-deadline:
			p.t.Fatalf("%s: no %s within %v", p.name, method, d)
			return nil
		}
	}
}

const testSDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"

// answerer makes a terminal ring (180) and answer (200 with SDP).
func answerer(p *peer) func(*sipmsg.Request, sipmsg.ServerTransaction) {
	return func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		dlg, err := p.ds.ReadInvite(req, tx)
		if err != nil {
			return
		}
		if err := dlg.Respond(180, "Ringing", nil); err != nil {
			return
		}
		_ = dlg.RespondSDP([]byte(strings.ReplaceAll(testSDP, "40000", "40002")))
	}
}

// invite places a call from p to uri; it returns the dialog (nil on
// failure) and the final response.
func (p *peer) invite(ctx context.Context, uri sipmsg.Uri, opts sipgo.AnswerOptions) (*sipgo.DialogClientSession, *sipmsg.Response, error) {
	from := &sipmsg.FromHeader{DisplayName: "Alice", Address: sipmsg.Uri{Scheme: "sip", User: p.name, Host: "127.0.0.1"}, Params: sipmsg.NewParams()}
	from.Params.Add("tag", sipmsg.GenerateTagN(10))
	dlg, err := p.dc.Invite(ctx, uri, []byte(testSDP), sipmsg.NewHeader("Content-Type", "application/sdp"), from)
	if err != nil {
		return nil, nil, err
	}
	err = dlg.WaitAnswer(ctx, opts)
	res := dlg.InviteResponse
	if err != nil {
		return nil, res, err
	}
	if err := dlg.Ack(ctx); err != nil {
		return nil, res, err
	}
	return dlg, res, nil
}

// register sends REGISTER for aor from p with the given Contact and
// Expires, answering a digest challenge with user/pass.
func (p *peer) register(ctx context.Context, e *env, aor, contact string, expires int, user, pass string) (*sipmsg.Response, error) {
	req := sipmsg.NewRequest(sipmsg.REGISTER, sipmsg.Uri{Scheme: "sip", Host: "im.test"})
	req.SetDestination(e.addr)
	to := &sipmsg.ToHeader{Address: sipmsg.Uri{Scheme: "sip", User: aor, Host: "im.test"}}
	from := &sipmsg.FromHeader{Address: to.Address, Params: sipmsg.NewParams()}
	from.Params.Add("tag", sipmsg.GenerateTagN(8))
	req.AppendHeader(to)
	req.AppendHeader(from)
	if contact != "" {
		req.AppendHeader(sipmsg.NewHeader("Contact", contact))
	}
	req.AppendHeader(sipmsg.NewHeader("Expires", strconv.Itoa(expires)))
	res, err := p.cli.Do(ctx, req)
	if err != nil || res.StatusCode != 401 || user == "" {
		return res, err
	}
	return p.cli.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: user, Password: pass})
}

// rawRequest is a request written by hand, as a broken UA would.
func rawRequest(method, ruri, local string, extra ...string) string {
	lines := []string{
		method + " " + ruri + " SIP/2.0",
		"Via: SIP/2.0/UDP " + local + ";branch=z9hG4bK" + sipmsg.GenerateTagN(10),
		"From: <sip:probe@127.0.0.1>;tag=" + sipmsg.GenerateTagN(6),
		"To: <" + ruri + ">",
		"Call-ID: " + sipmsg.GenerateTagN(16),
		"CSeq: 1 " + method,
		"Max-Forwards: 70",
	}
	lines = append(lines, extra...)
	return strings.Join(lines, "\r\n") + "\r\nContent-Length: 0\r\n\r\n"
}

// exchangeUDP sends msg from a fresh UDP socket and returns the first
// response that is not a 100.
func exchangeUDP(t *testing.T, to string, msg func(local string) string) *sipmsg.Response {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ua, _ := net.ResolveUDPAddr("udp", to)
	if _, err := c.WriteTo([]byte(msg(c.LocalAddr().String())), ua); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65535)
	for {
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no response: %v", err)
		}
		m, err := sipmsg.ParseMessage(buf[:n])
		if err != nil {
			t.Fatalf("unparsable response %q: %v", buf[:n], err)
		}
		if res, ok := m.(*sipmsg.Response); ok && res.StatusCode != 100 {
			return res
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitIdle waits until no call is live and every call record is stored.
func waitIdle(t *testing.T, e *env) {
	t.Helper()
	waitFor(t, func() bool { return e.srv.ActiveCalls() == 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.srv.FlushRecords(ctx); err != nil {
		t.Fatalf("call records not flushed: %v", err)
	}
}
