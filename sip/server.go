// Package sip is the B2BUA: it answers calls to IM users
// (sip:<im-id>@<domain>), routes them through the registry and the SCP to
// the user's active terminal, and bridges the caller's dialog with a new
// dialog towards the terminal. It also takes SIP registrations of smart
// terminals and authenticates callers with digest.
//
// Each call is owned by one goroutine, its event loop: sipgo delivers every
// message on a goroutine of its own, so handlers only post work to the loop
// and the loop alone changes call state. Responses to the INVITE towards a
// terminal are taken from the transport in wire order (see onWire), so a 180
// that arrives before a 200 is relayed before it.
package sip

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
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
// transaction (registry/sqlite.Store does); the server uses it when offered.
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
	Domain    string           // the IM domain: users are sip:<im-id>@Domain
	Terminals TerminalFinder   // the registry's ActiveTerminal
	Bindings  BindingStore     // registrations of smart terminals; nil: REGISTER answered 501
	Calls     CallRecorder     // call records; nil: none written
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
	// AckTimeout is how long the B2BUA retransmits a 2xx waiting for the
	// caller's ACK before it ends the call (RFC 3261 §13.3.1.4: 64*T1).
	AckTimeout time.Duration
	// TxTimeout bounds every other wait of a call: its routing, the
	// answers to its CANCEL and BYEs once it is ending; 0: 64*T1, RFC
	// 3261's Timer B and F.
	TxTimeout time.Duration
	// RetryAfter is the Retry-After of 503 answers while draining; 0: 60s.
	RetryAfter time.Duration

	Limits Limits // per-source limits of untrusted sources (ratelimit.go); zero: none

	MinExpires     time.Duration // shorter registrations get 423; 0: 60s
	MaxExpires     time.Duration // longer ones are shortened; 0: 2h
	DefaultExpires time.Duration // when the UA gives none; 0: 1h
}

// Server is the B2BUA.
type Server struct {
	cfg    Config
	log    *slog.Logger
	router *Router
	media  MediaAnchor
	msgs   messageHooks // the MESSAGE service (messages.go)

	ua  *sipgo.UserAgent
	srv *sipgo.Server
	cli *sipgo.Client

	rec   *recorder // nil without Config.Calls
	lim   limiters  // per-source limits (ratelimit.go)
	token string    // marks our Via branches, to detect loops

	mu      sync.Mutex
	udp     net.PacketConn
	tcp     net.Listener
	tlsL    net.Listener
	host    string // advertised host of our Via and Contact
	port    int
	ready   chan struct{}
	calls   map[*call]struct{}
	dialogs map[string]*call // dialog key (Call-ID, our tag) → call
	binv    sync.Map         // callee-leg Call-ID → *call, read by onWire

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
	if cfg.Terminals == nil {
		return nil, errors.New("sip: Config.Terminals is required")
	}
	if cfg.Locator == nil {
		return nil, errors.New("sip: Config.Locator is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Media == nil {
		cfg.Media = Passthrough{}
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "b2bua"
	}
	if cfg.RingTimeout <= 0 {
		cfg.RingTimeout = 60 * time.Second
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = 64 * sipmsg.T1
	}
	if cfg.TxTimeout <= 0 {
		cfg.TxTimeout = 64 * sipmsg.T1
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
	if cfg.IsStale == nil {
		cfg.IsStale = func(error) bool { return false }
	}
	var tok [4]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return nil, fmt.Errorf("sip: random token: %w", err)
	}
	s := &Server{
		cfg: cfg,
		log: cfg.Logger,
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
		calls:   map[*call]struct{}{},
		dialogs: map[string]*call{},
		idle:    make(chan struct{}, 1),
	}
	if cfg.Calls != nil {
		s.rec = newRecorder(cfg.Calls, cfg.Logger)
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
	s.srv.OnInvite(s.guard(s.onInvite))
	s.srv.OnAck(s.guard(s.onAck))
	s.srv.OnBye(s.guard(s.inDialog))
	s.srv.OnInfo(s.guard(s.inDialog))
	s.srv.OnUpdate(s.guard(s.inDialog))
	s.srv.OnNotify(s.guard(s.inDialog))
	s.srv.OnCancel(s.guard(s.onCancel))
	s.srv.OnOptions(s.guard(s.onOptions))
	s.srv.OnMessage(s.guard(s.onMessage))
	s.srv.OnRegister(s.guard(s.onRegister))
	s.srv.OnNoRoute(s.guard(s.onUnsupported))
	return s, nil
}

// guard answers 400 to a request without the header fields every request
// must carry (RFC 3261 §8.1.1); sipgo itself only insists on Via and CSeq.
func (s *Server) guard(h sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
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
const allowed = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, MESSAGE, NOTIFY, REGISTER"

// Listen binds UDP and TCP on addr (the same port for both; port 0 picks
// one) and, when configured, TLS. Serve then answers on them.
func (s *Server) Listen(addr string) error {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("sip: listen address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("sip: listen port %q: %w", portStr, err)
	}
	var udp net.PacketConn
	var tcp net.Listener
	// With port 0 the kernel picks a UDP port that may be taken for TCP:
	// try a few times so both transports share one port.
	for attempt := 0; ; attempt++ {
		udp, err = net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return fmt.Errorf("sip: listen udp %s: %w", addr, err)
		}
		p := udp.LocalAddr().(*net.UDPAddr).Port
		tcp, err = net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err == nil {
			break
		}
		udp.Close()
		if port != 0 || attempt >= 10 {
			return fmt.Errorf("sip: listen tcp %s: %w", addr, err)
		}
	}
	if uc, ok := udp.(*net.UDPConn); ok {
		// One socket carries every call: a burst must not overflow the
		// kernel's default buffer (about 200 KB), or the lost 180s and
		// 200s come back as retransmissions. The kernel caps this at
		// net.core.rmem_max.
		_ = uc.SetReadBuffer(4 << 20)
		_ = uc.SetWriteBuffer(4 << 20)
	}
	var tlsL net.Listener
	if s.cfg.TLSConfig != nil && s.cfg.TLSAddr != "" {
		if tlsL, err = tls.Listen("tcp", s.cfg.TLSAddr, s.cfg.TLSConfig); err != nil {
			udp.Close()
			tcp.Close()
			return fmt.Errorf("sip: listen tls %s: %w", s.cfg.TLSAddr, err)
		}
	}
	ua := udp.LocalAddr().(*net.UDPAddr)
	adv := ua.IP.String()
	if ua.IP.IsUnspecified() {
		// A wildcard listener advertises the address that reaches the
		// outside; loopback is the safe default for a lab.
		adv = outboundIP()
	}
	s.mu.Lock()
	s.udp, s.tcp, s.tlsL = udp, tcp, tlsL
	s.host, s.port = adv, ua.Port
	s.mu.Unlock()
	return nil
}

func outboundIP() string {
	c, err := net.Dial("udp", "192.0.2.1:9")
	if err != nil {
		return "127.0.0.1"
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP.String()
}

// Addr is the UDP/TCP address the server listens on, valid after Listen.
func (s *Server) Addr() netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.udp == nil {
		return netip.AddrPort{}
	}
	return s.udp.LocalAddr().(*net.UDPAddr).AddrPort()
}

// TLSAddr is the SIP-over-TLS address, "" without TLS; valid after Listen.
func (s *Server) TLSAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tlsL == nil {
		return ""
	}
	return s.tlsL.Addr().String()
}

// Ready is closed once the server answers SIP.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Serve answers SIP on the listeners Listen opened until ctx is done. It
// closes the listeners and the transport when it returns; call Shutdown
// first for a graceful stop.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	udp, tcp, tlsL := s.udp, s.tcp, s.tlsL
	s.mu.Unlock()
	if udp == nil {
		return errors.New("sip: Serve before Listen")
	}
	errc := make(chan error, 3)
	n := 0
	serve := func(f func() error) {
		n++
		go func() { errc <- f() }()
	}
	serve(func() error { return s.srv.ServeUDP(udp) })
	serve(func() error { return s.srv.ServeTCP(tcp) })
	if tlsL != nil {
		serve(func() error { return s.srv.ServeTLS(tlsL) })
	}
	// Ready only once the UDP listener is in sipgo's pool: a request sent
	// from it before that would try to bind the port a second time.
	for i := 0; i < 1000; i++ {
		if c, _ := s.ua.TransportLayer().GetConnection("udp", udp.LocalAddr().String()); c != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	recCtx, stopRec := context.WithCancel(context.Background())
	recDone := make(chan struct{})
	go func() {
		defer close(recDone)
		if s.rec != nil {
			s.rec.run(recCtx)
		}
	}()
	defer func() { stopRec(); <-recDone }()
	close(s.ready)
	s.log.Info("SIP listening", "udp", udp.LocalAddr().String(), "tcp", tcp.Addr().String(), "domain", s.cfg.Domain)
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		n--
	}
	udp.Close()
	tcp.Close()
	if tlsL != nil {
		tlsL.Close()
	}
	for ; n > 0; n-- {
		<-errc
	}
	s.ua.Close()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("sip: serve: %w", err)
	}
	return nil
}

// ListenAndServe is Listen then Serve.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	if err := s.Listen(addr); err != nil {
		return err
	}
	return s.Serve(ctx)
}

// FlushRecords waits until every call record so far is in the store.
func (s *Server) FlushRecords(ctx context.Context) error { return s.rec.flush(ctx) }

// ActiveCalls is the number of calls in progress.
func (s *Server) ActiveCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

// Shutdown stops the server gracefully in two phases (the pattern of
// livekit/sip and Caddy): new INVITEs get 503 with Retry-After at once and
// live calls run on until they end; when ctx is done before that, every
// live call is ended with BYE (or CANCEL) and Shutdown waits for them to
// wind down before it returns ctx's error. Serve keeps running: cancel its
// context afterwards.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		n := s.ActiveCalls()
		if n == 0 {
			// No call is left to send anything: work that would start
			// from now on is refused, so the wait below ends.
			s.wg.Close()
			if err := s.wg.Wait(ctx); err != nil {
				return err
			}
			return s.rec.flush(ctx)
		}
		select {
		case <-s.idle:
		case <-tick.C:
			s.log.Info("draining: waiting for live calls", "calls", n)
		case <-ctx.Done():
			s.log.Warn("draining cut short: ending live calls", "calls", n)
			s.hangupAll()
			// The calls' BYEs and CANCELs are bounded by Timer B/F.
			wctx, cancel := context.WithTimeout(context.Background(), 64*sipmsg.T1)
			_ = s.wg.Wait(wctx)
			cancel()
			s.wg.Close()
			return ctx.Err()
		}
	}
}

func (s *Server) hangupAll() {
	s.mu.Lock()
	list := make([]*call, 0, len(s.calls))
	for c := range s.calls {
		list = append(list, c)
	}
	s.mu.Unlock()
	for _, c := range list {
		c.post(func() {
			c.hangup("shutdown", &Failure{Status: 503, Cause: CauseNormalClearing, Text: "service shutting down", RetryAfter: int(s.cfg.RetryAfter / time.Second)})
		})
	}
}

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
	s.mu.Lock()
	host, port := s.host, s.port
	if strings.EqualFold(transport, "TLS") && s.tlsL != nil {
		port = s.tlsL.Addr().(*net.TCPAddr).Port
	}
	s.mu.Unlock()
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
	s.mu.Lock()
	host, port := s.host, s.port
	s.mu.Unlock()
	if strings.EqualFold(transport, "TCP") || strings.EqualFold(transport, "TLS") {
		// The transport fills in the connection's own address.
		host, port = "", 0
	}
	v := &sipmsg.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: strings.ToUpper(transport), Host: host, Port: port, Params: sipmsg.NewParams()}
	v.Params.Add("branch", sipmsg.RFC3261BranchMagicCookie+"."+s.token+sipmsg.GenerateTagN(12))
	return v
}

// laddr is the local socket for requests we send over transport: our UDP
// listener, so that a terminal sees requests from the port it answers to.
func (s *Server) laddr(transport string) sipmsg.Addr {
	if !strings.EqualFold(transport, "UDP") {
		return sipmsg.Addr{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.udp == nil {
		return sipmsg.Addr{}
	}
	ua := s.udp.LocalAddr().(*net.UDPAddr)
	return sipmsg.Addr{IP: ua.IP, Port: ua.Port}
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
	return nil
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

func (s *Server) addCall(c *call) {
	s.mu.Lock()
	s.calls[c] = struct{}{}
	s.mu.Unlock()
}

func (s *Server) removeCall(c *call, keys []string) {
	s.mu.Lock()
	delete(s.calls, c)
	for _, k := range keys {
		if s.dialogs[k] == c {
			delete(s.dialogs, k)
		}
	}
	s.mu.Unlock()
	select {
	case s.idle <- struct{}{}:
	default:
	}
}

func (s *Server) setDialog(key string, c *call) {
	s.mu.Lock()
	s.dialogs[key] = c
	s.mu.Unlock()
}

func (s *Server) dialog(req *sipmsg.Request) *call {
	to := req.To()
	cid := req.CallID()
	if to == nil || cid == nil {
		return nil
	}
	tag, _ := to.Params.Get("tag")
	if tag == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dialogs[dialogKey(cid.Value(), tag)]
}

// onWire sees every message in the order the transport read it, before the
// transaction layer spreads them over goroutines (sipgo issue #306). It
// hands responses to our INVITEs towards terminals to their call's loop, so
// a 180 is relayed before the 200 that followed it on the wire.
func (s *Server) onWire(m sipmsg.Message) {
	res, ok := m.(*sipmsg.Response)
	if !ok {
		return
	}
	cseq, cid := res.CSeq(), res.CallID()
	if cseq == nil || cid == nil || cseq.MethodName != sipmsg.INVITE {
		return
	}
	v, ok := s.binv.Load(cid.Value())
	if !ok {
		return
	}
	c := v.(*call)
	c.post(func() { c.onCalleeResponse(res) })
}

// onInvite handles an INVITE: in a dialog it is a re-INVITE for the call;
// otherwise it starts a call, and this goroutine becomes the call's loop.
func (s *Server) onInvite(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	if tag, _ := req.To().Params.Get("tag"); tag != "" {
		s.inDialog(req, tx)
		return
	}
	// RFC 3261 §16.3 item 3 (we decrement it like a proxy, so a loop of
	// B2BUAs ends).
	if mf := req.MaxForwards(); mf != nil && mf.Val() <= 0 {
		s.respondFailure(tx, req, &Failure{Status: 483, Cause: CauseInterworking, Text: "Max-Forwards exhausted"})
		return
	}
	// RFC 3261 §8.2.2.2 / §16.3 item 4: our own branch in a Via means the
	// INVITE we sent came back.
	for _, h := range req.GetHeaders("Via") {
		if strings.Contains(h.Value(), s.token) {
			s.respondFailure(tx, req, &Failure{Status: 482, Cause: CauseInterworking, Text: "loop detected"})
			return
		}
	}
	if s.draining.Load() {
		s.respondFailure(tx, req, &Failure{Status: 503, Cause: CauseTemporaryFailure, Text: "service shutting down", RetryAfter: int(s.cfg.RetryAfter / time.Second)})
		return
	}
	if req.Contact() == nil {
		s.respond(tx, req, 400, "INVITE without Contact")
		return
	}
	// 100 at once, so the caller stops retransmitting while we route
	// (RFC 3261 §17.2.1).
	if err := tx.Respond(sipmsg.NewResponseFromRequest(req, 100, "Trying", nil)); err != nil {
		return
	}
	caller, ok := s.authenticate(req, tx, "Proxy-Authorization", 407)
	if !ok {
		return
	}
	callee, err := registry.ParseIMID(req.Recipient.User)
	if err != nil {
		s.respondFailure(tx, req, &Failure{Status: 404, Cause: CauseUnallocated, Text: "not an IM user: " + req.Recipient.User})
		return
	}
	// Counted before the call exists, so that Shutdown, once it has seen
	// no live call, either waits for this one or refuses it here.
	if !s.wg.TryAdd() {
		s.respondFailure(tx, req, &Failure{Status: 503, Cause: CauseTemporaryFailure, Text: "service shutting down", RetryAfter: int(s.cfg.RetryAfter / time.Second)})
		return
	}
	defer s.wg.Done()
	c := newCall(s, req, tx, caller, callee)
	if c == nil {
		return
	}
	c.run()
}

// authenticate challenges a request from an untrusted source. It returns
// the identity the request speaks for: the authenticated user, or for a
// trusted peer the From user. ok is false when it has answered already.
func (s *Server) authenticate(req *sipmsg.Request, tx sipmsg.ServerTransaction, header string, status int) (string, bool) {
	from := req.From()
	fromUser := ""
	if from != nil {
		fromUser = from.Address.User
	}
	if s.cfg.Auth == nil || s.trusted(req.Source()) {
		return fromUser, true
	}
	stale := false
	if h := req.GetHeader(header); h != nil {
		if s.authLockedOut(req, tx, h.Value()) {
			return "", false
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		user, err := s.cfg.Auth.VerifyRequest(ctx, string(req.Method), req.Recipient.String(), h.Value())
		cancel()
		if err == nil {
			s.authResult(req, h.Value(), true)
			return user, true
		}
		stale = s.cfg.IsStale(err)
		if !stale {
			s.authResult(req, h.Value(), false)
		}
		// The same challenge for an unknown user and a wrong password, so
		// the answer does not tell which IM IDs exist.
		s.log.Info("authentication failed", "method", req.Method, "source", req.Source(), "err", err)
	}
	name := "Proxy-Authenticate"
	if status == 401 {
		name = "WWW-Authenticate"
	}
	var hdrs []sipmsg.Header
	for _, ch := range s.cfg.Auth.Challenges(stale) {
		hdrs = append(hdrs, sipmsg.NewHeader(name, ch))
	}
	s.respond(tx, req, status, "", hdrs...)
	return "", false
}

func (s *Server) onAck(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	if c := s.dialog(req); c != nil {
		c.post(func() { c.onRequest(req, nil) })
	}
}

// inDialog hands a request within a dialog to its call and waits until the
// call has answered it: sipgo ends a transaction whose handler returned.
func (s *Server) inDialog(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	c := s.dialog(req)
	if c == nil {
		s.respond(tx, req, 481, "no such dialog")
		return
	}
	sr := &serverReq{req: req, tx: tx, done: make(chan struct{})}
	if !c.post(func() { c.onRequest(req, sr) }) {
		s.respond(tx, req, 481, "call ended")
		return
	}
	select {
	case <-sr.done:
	case <-c.ended:
		sr.mu.Lock()
		answered := sr.answered
		sr.answered = true
		sr.mu.Unlock()
		if !answered {
			s.respond(tx, req, 481, "call ended")
		}
	}
}

func (s *Server) onCancel(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	// A CANCEL that matched an INVITE transaction never reaches here:
	// sipgo answers it and 487s the INVITE (RFC 3261 §9.2).
	s.respond(tx, req, 481, "no matching transaction")
}

func (s *Server) onOptions(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	if tag, _ := req.To().Params.Get("tag"); tag != "" {
		s.inDialog(req, tx)
		return
	}
	if s.draining.Load() {
		// Load balancers probe with OPTIONS: a draining node says so.
		s.respondFailure(tx, req, &Failure{Status: 503, Cause: CauseTemporaryFailure, Text: "service shutting down", RetryAfter: int(s.cfg.RetryAfter / time.Second)})
		return
	}
	// RFC 3261 §11.2: Accept lists the bodies we take, those of the
	// MESSAGE service included.
	s.respond(tx, req, 200, "",
		sipmsg.NewHeader("Allow", allowed),
		sipmsg.NewHeader("Accept", s.messageAccept()),
		sipmsg.NewHeader("Accept-Encoding", "identity"),
		sipmsg.NewHeader("Accept-Language", "en"),
	)
}

func (s *Server) onUnsupported(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	// RFC 3261 §8.2.1: 405 lists what we do accept.
	s.respond(tx, req, 405, "", sipmsg.NewHeader("Allow", allowed))
}

// post, serverReq and call live in call.go.

// newCallID makes a Call-ID that says nothing about the caller.
func newCallID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
