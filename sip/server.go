package sip

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/scp"
)

// BindingStore keeps SIP registrations (registry.SignalStore's part).
type BindingStore interface {
	PutBinding(ctx context.Context, b registry.Binding) error
	RemoveBinding(ctx context.Context, imID, contact string) error
	Bindings(ctx context.Context, imID string, now time.Time) ([]registry.Binding, error)
}

// CallRecorder writes a record of every call attempt.
type CallRecorder interface {
	StartCall(ctx context.Context, r registry.CallRecord) (int64, error)
	UpdateCall(ctx context.Context, r registry.CallRecord) error
}

// CallBatchRecorder is a CallRecorder that also writes many records in one
// transaction (*registry.SQLite does); the server uses it when offered.
// WriteCalls inserts the records with ID 0, setting their IDs, and updates
// the others; errs[i] is record i's own error, err a failed transaction.
type CallBatchRecorder interface {
	CallRecorder
	WriteCalls(ctx context.Context, recs []registry.CallRecord) (errs []error, err error)
}

// Authenticator checks digest credentials; *digest.Verifier implements it.
type Authenticator interface {
	// Challenges gives the WWW-Authenticate/Proxy-Authenticate values to
	// send, strongest algorithm first; stale marks an expired nonce.
	Challenges(stale bool) []string
	// VerifyRequest checks an Authorization/Proxy-Authorization value for
	// method and returns the authenticated username; the value's uri must
	// name requestURI, so credentials captured for one target cannot be
	// replayed against another (RFC 7616 §3.4.6).
	VerifyRequest(ctx context.Context, method, requestURI, headerValue string) (string, error)
}

// Config is what a Server needs. Domain, Terminals and Locator are
// required; the rest have defaults.
type Config struct {
	Domain    string         // the IM domain: users are sip:<im-id>@Domain
	Terminals TerminalFinder // the registry's ActiveTerminal
	Bindings  BindingStore   // registrations of smart terminals; nil: REGISTER answered 501
	Calls     CallRecorder   // call records; nil: none written
	// Dialogs keeps a snapshot of every confirmed call, so that the node
	// restarted after a crash ends them (EndLeftovers); nil: none kept.
	Dialogs DialogStore
	// Node names this node in Dialogs, which nodes may share: a restarted
	// node ends only the calls it held itself. Required with Dialogs, and
	// the same across restarts.
	Node      string
	Locator   scp.Locator      // the SCP
	Auth      Authenticator    // nil: nobody is challenged
	Trusted   []netip.Prefix   // sources that are not challenged (a Kamailio in front)
	Proxies   []netip.Prefix   // proxies in front that are challenged; limits apply to the sender they report (ratelimit.go)
	Media     MediaAnchor      // nil: Passthrough
	Logger    *slog.Logger     // nil: slog.Default()
	TLSConfig *tls.Config      // non-nil with TLSAddr: also listen on TLS
	TLSAddr   string           // e.g. 127.0.0.1:5061
	UserAgent string           // Server/User-Agent header; "" : "b2bua"
	IsStale   func(error) bool // reports a stale-nonce error of Auth; nil: never

	RingTimeout time.Duration // terminal rings this long before the call fails with 480; 0: 60s
	SCPTimeout  time.Duration // deadline of one SCP query; 0: 2s
	// T1 is RFC 3261's round-trip estimate (§17.1.1.1), the first
	// interval of our 2xx retransmissions; 0: 500ms. The defaults of
	// AckTimeout and TxTimeout are 64*T1.
	T1 time.Duration
	// AckTimeout is how long the B2BUA retransmits a 2xx waiting for the
	// caller's ACK before it ends the call (RFC 3261 §13.3.1.4: 64*T1).
	AckTimeout time.Duration
	// TxTimeout bounds every other wait of a call: its routing, the
	// answers to its CANCEL and BYEs once it is ending; 0: 64*T1, RFC
	// 3261's Timer B and F.
	TxTimeout time.Duration
	// RetryAfter is the Retry-After of 503 answers while draining; 0: 60s.
	RetryAfter time.Duration

	// Route, when set, decides where a call goes instead of the Router
	// over Terminals, Bindings and Locator: every target it gives is rung
	// at once, the first 2xx takes the call and the other targets are
	// CANCELed (parallel forking, RFC 3261 §16.7). Its errors are answered
	// like the Router's (a *Failure knows its answer).
	Route func(ctx context.Context, imID string) ([]Target, error)

	// Numbers, when set, routes calls to phone numbers (route_did.go):
	// INVITEs from a trunk's addresses are taken unchallenged and name a
	// DID; others naming a number are challenged first. nil: every
	// Request-URI names an IM user.
	Numbers NumberDirectory
	// TrunkTTL is how long the trunk list is used before it is read
	// again; 0: 2s.
	TrunkTTL time.Duration

	Limits Limits     // per-source limits of untrusted sources (ratelimit.go); zero: none
	Conns  ConnLimits // SIP TCP/TLS connections: counts and timeouts (listen_guard.go)
	// UDPReaders is the number of UDP sockets on the SIP port, each read
	// by a loop of its own (udp_readers.go); 0: one per CPU.
	UDPReaders int
	// Overload refuses new calls early past capacity (overload.go); zero:
	// never.
	Overload Overload

	DualPath DualPathConfig // dual-path calls (dualpath.go); zero: off

	// SessionExpires is the session interval we ask for and grant on
	// each leg (RFC 4028); 0: 30 minutes; negative: no session timers.
	SessionExpires time.Duration
	// MinSE is the shortest interval we accept (Min-SE; 422 below it);
	// 0: 90s, RFC 4028 §4's floor. Shorter values break that rule and
	// are for tests only.
	MinSE time.Duration
	// MaxCallDuration ends an answered call this long after its answer
	// with BYE on every leg; 0: no limit.
	MaxCallDuration time.Duration
	// Clock makes the session timers and the duration limit; nil: the
	// real clock.
	Clock Clock

	// Observer is told of ended calls, registrations and limits, for
	// metrics (observe.go); nil: nobody.
	Observer Observer
	// Tracer is given every SIP message sent and received (trace.go);
	// nil: none, at no cost.
	Tracer Tracer
	// Ready, when set, says whether the node can take calls; an
	// out-of-dialog OPTIONS is answered 503 while it returns an error. It
	// must answer quickly (cache what it checks). nil: always ready.
	Ready func() error

	MinExpires     time.Duration // shorter registrations get 423; 0: 60s
	MaxExpires     time.Duration // longer ones are shortened; 0: 2h
	DefaultExpires time.Duration // when the UA gives none; 0: 1h
}

// Server is the B2BUA.
type Server struct {
	cfg    Config
	clock  Clock
	log    *slog.Logger
	router *Router
	media  MediaAnchor
	msgs   messageHooks      // the MESSAGE service (messages.go)
	subs   SubscribeHandler  // event subscriptions (subscribe.go); nil: 405
	confs  ConferenceHandler // calls to conference URIs (conference.go)

	ua  *sipgo.UserAgent
	srv *sipgo.Server
	cli *sipgo.Client

	rec    *recorder    // nil without Config.Calls
	snaps  *snapshotter // nil without Config.Dialogs
	trunks *trunkCache  // nil without Config.Numbers
	lim    limiters     // per-source limits (ratelimit.go)
	over   *overload    // nil: never refuses for overload (overload.go)
	token  string       // marks our Via branches, to detect loops

	ln    atomic.Pointer[listeners] // set once by Listen (udp_readers.go)
	ready chan struct{}

	mu      sync.Mutex // guards calls; never taken per message
	calls   map[*session]struct{}
	live    atomic.Int64 // len(calls), read without the lock
	dialogs *dialogTable // (Call-ID, our tag) → session (dialogtable.go)
	binv    sync.Map     // Call-ID of a placed leg → *session, read by onWire

	flows       flowTable   // open TCP/TLS flows and what lives on them (flow.go)
	joins       joinIndex   // sessions a second path may join (dualpath.go)
	pathMetrics pathMetrics // their source switches

	draining atomic.Bool
	wg       workGroup     // call loops and background senders (workgroup.go)
	idle     chan struct{} // signalled when a call ends
}

// NewServer validates cfg and builds a Server; call Listen and Serve, or
// ListenAndServe, to run it.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Domain == "" {
		return nil, errors.New("sip: Config.Domain is required")
	}
	cfg.DualPath.setDefaults()
	if cfg.Terminals == nil {
		return nil, errors.New("sip: Config.Terminals is required")
	}
	if cfg.Locator == nil {
		return nil, errors.New("sip: Config.Locator is required")
	}
	if cfg.Dialogs != nil && cfg.Node == "" {
		return nil, errors.New("sip: Config.Node is required with Config.Dialogs")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Media == nil {
		cfg.Media = Passthrough{}
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "b2bua"
	}
	if cfg.RingTimeout <= 0 {
		cfg.RingTimeout = 60 * time.Second
	}
	if cfg.T1 <= 0 {
		cfg.T1 = sipmsg.T1
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = 64 * cfg.T1
	}
	if cfg.TxTimeout <= 0 {
		cfg.TxTimeout = 64 * cfg.T1
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = 60 * time.Second
	}
	if cfg.MinExpires <= 0 {
		cfg.MinExpires = 60 * time.Second
	}
	if cfg.MaxExpires <= 0 {
		cfg.MaxExpires = 2 * time.Hour
	}
	if cfg.DefaultExpires <= 0 {
		cfg.DefaultExpires = time.Hour
	}
	if cfg.SessionExpires == 0 {
		cfg.SessionExpires = 30 * time.Minute
	}
	if cfg.MinSE <= 0 {
		cfg.MinSE = 90 * time.Second
	}
	if cfg.SessionExpires > 0 && cfg.SessionExpires < cfg.MinSE {
		return nil, fmt.Errorf("sip: Config.SessionExpires %v below MinSE %v", cfg.SessionExpires, cfg.MinSE)
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.UDPReaders <= 0 {
		cfg.UDPReaders = runtime.NumCPU()
	}
	if cfg.IsStale == nil {
		cfg.IsStale = func(error) bool { return false }
	}
	var tok [4]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return nil, fmt.Errorf("sip: random token: %w", err)
	}
	s := &Server{
		cfg:   cfg,
		clock: cfg.Clock,
		log:   cfg.Logger,
		router: &Router{
			Terminals:  cfg.Terminals,
			Bindings:   cfg.Bindings,
			Locator:    cfg.Locator,
			SCPTimeout: cfg.SCPTimeout,
		},
		media:   cfg.Media,
		lim:     newLimiters(cfg.Limits),
		token:   "b2b" + hex.EncodeToString(tok[:]),
		ready:   make(chan struct{}),
		calls:   map[*session]struct{}{},
		dialogs: newDialogTable(),
		idle:    make(chan struct{}, 1),
	}
	s.over = newOverload(cfg.Overload, s.token)
	if cfg.Calls != nil {
		s.rec = newRecorder(cfg.Calls, cfg.Logger)
	}
	if cfg.Dialogs != nil {
		s.snaps = newSnapshotter(cfg.Dialogs, cfg.Node, cfg.Logger)
	}
	if cfg.Numbers != nil {
		s.trunks = newTrunkCache(cfg.Numbers, cfg.TrunkTTL, nil, cfg.Logger)
	}
	quiet := sipgoLogger(cfg.Logger) // no credentials in its log (logredact.go)
	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent(cfg.UserAgent),
		sipgo.WithUserAgentHostname(cfg.Domain),
		sipgo.WithUserAgenTLSConfig(cfg.TLSConfig),
		sipgo.WithUserAgentTransactionLayerOptions(
			sipmsg.WithTransactionLayerLogger(quiet),
			// Stray responses (retransmitted 2xx after the transaction
			// ended) are handled by onWire; nothing to log.
			sipmsg.WithTransactionLayerUnhandledResponseHandler(func(*sipmsg.Response) {}),
		),
		sipgo.WithUserAgentTransportLayerOptions(
			sipmsg.WithTransportLayerLogger(quiet),
			sipmsg.WithTransportLayerReadFilter(s.badRequestFilter),
		),
	)
	if err != nil {
		return nil, fmt.Errorf("sip: user agent: %w", err)
	}
	s.ua = ua
	if s.srv, err = sipgo.NewServer(ua, sipgo.WithServerLogger(quiet)); err != nil {
		return nil, fmt.Errorf("sip: server: %w", err)
	}
	if s.cli, err = sipgo.NewClient(ua, sipgo.WithClientLogger(quiet)); err != nil {
		return nil, fmt.Errorf("sip: client: %w", err)
	}
	ua.TransportLayer().OnMessage(s.onWire)
	if cfg.Tracer != nil {
		ua.TransportLayer().OnMessage(s.traceStreamIn)
	}
	s.srv.OnInvite(s.guard(s.onInvite))
	s.srv.OnAck(s.guard(s.onAck))
	s.srv.OnBye(s.guard(s.inDialog))
	s.srv.OnInfo(s.guard(s.inDialog))
	s.srv.OnUpdate(s.guard(s.inDialog))
	s.srv.OnPrack(s.guard(s.inDialog))
	s.srv.OnNotify(s.guard(s.inDialog))
	s.srv.OnCancel(s.guard(s.onCancel))
	s.srv.OnOptions(s.guard(s.onOptions))
	s.srv.OnMessage(s.guard(s.onMessage))
	s.srv.OnSubscribe(s.guard(s.onSubscribe))
	s.srv.OnRefer(s.guard(s.onRefer)) // conference.go
	s.srv.OnRegister(s.guard(s.onRegister))
	s.srv.OnNoRoute(s.guard(s.onUnsupported))
	return s, nil
}

// guard answers 400 to a request without the header fields every request
// must carry (RFC 3261 §8.1.1); sipgo itself only insists on Via and CSeq.
func (s *Server) guard(h sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		if s.refuseParsed(req, tx) { // malformed_parsed.go
			return
		}
		var missing string
		switch {
		case req.CallID() == nil:
			missing = "Call-ID"
		case req.From() == nil:
			missing = "From"
		case req.To() == nil:
			missing = "To"
		}
		if missing == "" {
			if s.admit(req, tx) {
				h(req, tx)
			}
			return
		}
		if !req.IsAck() {
			s.respond(tx, req, 400, "missing "+missing)
		}
	}
}

// allowed is the Allow header of the B2BUA (RFC 3261 §20.5).
const allowed = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK, MESSAGE, NOTIFY, REGISTER"

func (s *Server) trusted(src string) bool {
	ap, err := netip.ParseAddrPort(src)
	if err != nil {
		return false
	}
	a := ap.Addr().Unmap()
	for _, p := range s.cfg.Trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// contact is our Contact for a transport.
func (s *Server) contact(transport string) *sipmsg.ContactHeader {
	var host string
	var port int
	if ln := s.ln.Load(); ln != nil {
		host, port = ln.host, ln.port
		if strings.EqualFold(transport, "TLS") {
			port = ln.tlsPort
		}
	}
	c := &sipmsg.ContactHeader{Address: sipmsg.Uri{Scheme: "sip", Host: host, Port: port}}
	if !strings.EqualFold(transport, "UDP") && transport != "" {
		c.Address.UriParams = sipmsg.NewParams()
		c.Address.UriParams.Add("transport", strings.ToLower(transport))
	}
	return c
}

// via is our Via for a new client transaction; the branch carries our token
// so that a request coming back to us is recognised as a loop.
func (s *Server) via(transport string) *sipmsg.ViaHeader {
	var host string
	var port int
	if ln := s.ln.Load(); ln != nil && !strings.EqualFold(transport, "TCP") && !strings.EqualFold(transport, "TLS") {
		// Over a stream the transport fills in the connection's own
		// address.
		host, port = ln.host, ln.port
	}
	v := &sipmsg.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: strings.ToUpper(transport), Host: host, Port: port, Params: sipmsg.NewParams()}
	v.Params.Add("branch", sipmsg.RFC3261BranchMagicCookie+"."+s.token+sipmsg.GenerateTagN(12))
	return v
}

// laddr is the local socket for requests we send over transport: our UDP
// listener, so that a terminal sees requests from the port it answers to.
func (s *Server) laddr(transport string) sipmsg.Addr {
	ln := s.ln.Load()
	if ln == nil || !strings.EqualFold(transport, "UDP") {
		return sipmsg.Addr{}
	}
	return ln.laddr
}

// addVia is the client option for our requests: our own Via, nothing else
// added by sipgo.
func (s *Server) addVia(_ *sipgo.Client, r *sipmsg.Request) error {
	if r.Via() == nil {
		r.PrependHeader(s.via(r.Transport()))
	}
	if r.Body() == nil {
		r.SetBody(nil)
	}
	return fitsUDP(r) // udp_large.go
}

// request sends req in a client transaction and waits for its final
// response on a goroutine the server owns; done runs with the result.
func (s *Server) request(ctx context.Context, req *sipmsg.Request, onResp func(*sipmsg.Response), done func(*sipmsg.Response, error)) {
	if !s.wg.TryAdd() {
		done(nil, errShuttingDown)
		return
	}
	tx, err := s.cli.TransactionRequest(ctx, req, s.addVia)
	if err != nil {
		s.wg.Done()
		done(nil, err)
		return
	}
	go func() {
		defer s.wg.Done()
		defer tx.Terminate()
		for {
			select {
			case res := <-tx.Responses():
				if res.IsProvisional() {
					if onResp != nil {
						onResp(res)
					}
					continue
				}
				done(res, nil)
				return
			case <-tx.Done():
				err := tx.Err()
				if err == nil {
					err = sipmsg.ErrTransactionTerminated
				}
				done(nil, err)
				return
			case <-ctx.Done():
				done(nil, ctx.Err())
				return
			}
		}
	}()
}

// respond answers a request outside any call.
func (s *Server) respond(tx sipmsg.ServerTransaction, req *sipmsg.Request, status int, text string, hdrs ...sipmsg.Header) {
	res := sipmsg.NewResponseFromRequest(req, status, reasonPhrase(status), nil)
	res.AppendHeader(sipmsg.NewHeader("Server", s.cfg.UserAgent))
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	if text != "" && status >= 300 {
		res.AppendHeader(sipmsg.NewHeader("Warning", `399 b2bua "`+strings.ReplaceAll(text, `"`, `'`)+`"`))
	}
	if err := tx.Respond(res); err != nil {
		s.log.Debug("respond failed", "status", status, "err", err)
	}
}

// respondFailure answers with a Failure: status, Reason, Retry-After.
func (s *Server) respondFailure(tx sipmsg.ServerTransaction, req *sipmsg.Request, f *Failure) {
	hdrs := []sipmsg.Header{sipmsg.NewHeader("Reason", f.Reason())}
	if f.RetryAfter > 0 {
		hdrs = append(hdrs, sipmsg.NewHeader("Retry-After", strconv.Itoa(f.RetryAfter)))
	}
	s.respond(tx, req, f.Status, f.Text, hdrs...)
}

// newCallID makes a Call-ID that says nothing about the caller.
func newCallID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
