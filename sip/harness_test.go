package sip_test

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
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
	b2b "github.com/imcall/b2bua/sip"
	"github.com/imcall/b2bua/sip/messaging"
)

// env is a B2BUA on loopback with a real SQLite registry and the real SCP
// simulator, plus helpers to make users and terminals.
type env struct {
	t     *testing.T
	store *sqlite.Store
	sim   *sim.Simulator
	srv   *b2b.Server
	addr  string // B2BUA's SIP address
	uri   func(user string) sipmsg.Uri
}

type envOpt func(*b2bConfig)

type b2bConfig = b2b.Config

func testLogger(t *testing.T) *slog.Logger {
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
	return newEnvWith(t, nil, opts...)
}

// newEnvWith is newEnv with setup run on the server before it listens
// (the handlers a Server takes before Serve).
func newEnvWith(t *testing.T, setup func(*b2b.Server), opts ...envOpt) *env {
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
	cfg := b2b.Config{
		Domain:      "im.test",
		Terminals:   store,
		Bindings:    store,
		Calls:       store,
		Locator:     simulator,
		Logger:      testLogger(t),
		RingTimeout: 10 * time.Second,
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := b2b.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The MESSAGE service wired as the daemon wires it, without the media
	// rules (plain relay): the IM notices of failed calls come from it.
	msgr, err := messaging.New(messaging.Config{SIP: srv, Logger: cfg.Logger})
	if err != nil {
		t.Fatal(err)
	}
	srv.HandleMessages(msgr)
	if setup != nil {
		setup(srv)
	}
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
			t.Errorf("messaging Run: %v", err)
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

// peer is a sipgo UA on a loopback UDP port: a caller or a terminal.
type peer struct {
	t       *testing.T
	name    string
	ua      *sipgo.UserAgent
	srv     *sipgo.Server
	cli     *sipgo.Client
	addr    string
	contact sipmsg.ContactHeader
	dc      *sipgo.DialogClientCache
	ds      *sipgo.DialogServerCache

	mu       sync.Mutex
	wire     []sipmsg.Message // every message received, in wire order
	onInvite func(req *sipmsg.Request, tx sipmsg.ServerTransaction)
	// optionsStatus answers OPTIONS: 0 is 200, -1 no answer at all.
	optionsStatus int
	requests      chan *sipmsg.Request // every request handled (not ACK)
}

func newPeer(t *testing.T, name string) *peer {
	t.Helper()
	return newPeerAt(t, name, "127.0.0.1")
}

// newPeerAt is newPeer on another loopback address (a trunk's).
func newPeerAt(t *testing.T, name, host string) *peer {
	t.Helper()
	p := &peer{t: t, name: name, requests: make(chan *sipmsg.Request, 64)}
	conn, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	p.addr = conn.LocalAddr().String()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent(name), sipgo.WithUserAgentHostname(host),
		sipgo.WithUserAgentTransactionLayerOptions(sipmsg.WithTransactionLayerLogger(slog.New(slog.DiscardHandler))),
		sipgo.WithUserAgentTransportLayerOptions(sipmsg.WithTransportLayerLogger(slog.New(slog.DiscardHandler))))
	if err != nil {
		t.Fatal(err)
	}
	p.ua = ua
	ua.TransportLayer().OnMessage(func(m sipmsg.Message) {
		p.mu.Lock()
		p.wire = append(p.wire, m)
		p.mu.Unlock()
	})
	p.srv, _ = sipgo.NewServer(ua, sipgo.WithServerLogger(slog.New(slog.DiscardHandler)))
	p.cli, _ = sipgo.NewClient(ua, sipgo.WithClientLogger(slog.New(slog.DiscardHandler)), sipgo.WithClientConnectionAddr(p.addr))
	ap := netip.MustParseAddrPort(p.addr)
	p.contact = sipmsg.ContactHeader{Address: sipmsg.Uri{Scheme: "sip", User: name, Host: host, Port: int(ap.Port())}}
	p.dc = sipgo.NewDialogClientCache(p.cli, p.contact)
	p.ds = sipgo.NewDialogServerCache(p.cli, p.contact)
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
	ok := func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		note(req)
		tx.Respond(sipmsg.NewResponseFromRequest(req, 200, "OK", nil))
	}
	p.srv.OnMessage(ok)
	p.srv.OnInfo(ok)
	p.srv.OnOptions(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		note(req)
		p.mu.Lock()
		st := p.optionsStatus
		p.mu.Unlock()
		switch st {
		case -1:
		case 0:
			tx.Respond(sipmsg.NewResponseFromRequest(req, 200, "OK", nil))
		default:
			tx.Respond(sipmsg.NewResponseFromRequest(req, st, "", nil))
		}
	})
	p.srv.OnCancel(ok)
	ctx, cancel := context.WithCancel(context.Background())
	go p.srv.ServeUDP(conn)
	waitFor(t, func() bool { c, _ := ua.TransportLayer().GetConnection("udp", p.addr); return c != nil })
	t.Cleanup(func() {
		cancel()
		conn.Close()
		ua.Close()
	})
	_ = ctx
	return p
}

func (p *peer) setInvite(h func(req *sipmsg.Request, tx sipmsg.ServerTransaction)) {
	p.mu.Lock()
	p.onInvite = h
	p.mu.Unlock()
}

// wireResponses lists the status codes received for Call-ID callID, in wire
// order.
func (p *peer) wireResponses(callID string) []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []int
	for _, m := range p.wire {
		if r, ok := m.(*sipmsg.Response); ok && r.CallID().Value() == callID && r.CSeq().MethodName == sipmsg.INVITE {
			out = append(out, r.StatusCode)
		}
	}
	return out
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

// answerer makes a terminal ring (180) and answer (200 with SDP) after
// ringFor; it keeps the server session in *last for the test.
func answerer(p *peer, ringFor time.Duration, last chan<- *sipgo.DialogServerSession) func(*sipmsg.Request, sipmsg.ServerTransaction) {
	return func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		dlg, err := p.ds.ReadInvite(req, tx)
		if err != nil {
			return
		}
		if err := dlg.Respond(180, "Ringing", nil); err != nil {
			return
		}
		if ringFor > 0 {
			select {
			case <-time.After(ringFor):
			case <-dlg.Context().Done():
				return
			}
		}
		if last != nil {
			select {
			case last <- dlg:
			default:
			}
		}
		_ = dlg.RespondSDP([]byte(strings.ReplaceAll(testSDP, "40000", "40002")))
	}
}

// invite places a call from caller to uri; it returns the dialog (nil on
// failure) and the final response.
func (p *peer) invite(ctx context.Context, uri sipmsg.Uri, opts sipgo.AnswerOptions, hdrs ...sipmsg.Header) (*sipgo.DialogClientSession, *sipmsg.Response, error) {
	hdrs = append(hdrs, sipmsg.NewHeader("Content-Type", "application/sdp"))
	from := &sipmsg.FromHeader{DisplayName: "Alice", Address: sipmsg.Uri{Scheme: "sip", User: p.name, Host: "127.0.0.1"}, Params: sipmsg.NewParams()}
	from.Params.Add("tag", sipmsg.GenerateTagN(10))
	hdrs = append(hdrs, from)
	dlg, err := p.dc.Invite(ctx, uri, []byte(testSDP), hdrs...)
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
