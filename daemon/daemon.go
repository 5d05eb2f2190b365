// Package daemon wires the product together: the registry store, the SCP
// backend, the B2BUA and the HTTP side (provisioning API, SCP simulator
// admin, health). `b2bua serve` is a thin shell around Start, so a test can
// run exactly what the binary runs.
package daemon

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/imcall/b2bua/conference"
	"github.com/imcall/b2bua/httpserver"
	"github.com/imcall/b2bua/mediastore"
	"github.com/imcall/b2bua/metrics"
	"github.com/imcall/b2bua/provision"
	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/registry/stores"
	"github.com/imcall/b2bua/rtpproxy"
	"github.com/imcall/b2bua/scp"
	"github.com/imcall/b2bua/scp/locators"
	"github.com/imcall/b2bua/scp/sim"
	"github.com/imcall/b2bua/sip"
	"github.com/imcall/b2bua/sip/digest"
	"github.com/imcall/b2bua/sip/messaging"
	"github.com/imcall/b2bua/statuspage"
)

// Config is everything an operator sets. The zero value of every optional
// field means the embedded default.
type Config struct {
	DBPath         string         // registry store: a SQLite file or a registry/stores spec; required
	Domain         string         // IM domain and digest realm; required
	SIPListen      string         // UDP and TCP; "" : 127.0.0.1:5060
	TLSListen      string         // SIP over TLS; "" : none
	TLSCert        string         // PEM certificate chain for TLSListen
	TLSKey         string         // PEM private key for TLSListen
	HTTPListen     string         // provisioning API, SCP admin, health; "" : 127.0.0.1:8080
	SCP            string         // "sim" (default) or a backend spec for scp/locators
	SCPSubscribers string         // JSON file seeding the in-process simulator; "" : empty
	SCPToken       string         // bearer token of the http SCP backend; "" : none; never logged
	Trusted        []netip.Prefix // peers not challenged
	Proxies        []netip.Prefix // proxies in front, challenged; limits apply to the senders they report
	RingTimeout    time.Duration  // 0: 60s
	// ConferenceTrunk is host:port where conference dial-outs to +E.164
	// numbers go; "" : none (such a participant fails).
	ConferenceTrunk string
	DualPath        DualPath      // dual-path calls; zero Window: off
	SCPTimeout      time.Duration // 0: scp.DefaultTimeout (2s), for every backend
	APIToken        string        // "" : read or create TokenFile
	TokenFile       string        // "" : b2bua.token beside the SQLite file
	NoAuth          bool          // challenge nobody (lab use)

	// SessionExpires is the RFC 4028 session interval of each leg; 0:
	// 30 minutes; negative: no session timers. MinSE is the shortest
	// accepted (0: 90s). MaxCallDuration ends answered calls; 0: no limit.
	SessionExpires  time.Duration
	MinSE           time.Duration
	MaxCallDuration time.Duration

	// DigestAlgorithms are the digest algorithms offered, in order; nil:
	// MD5 alone (see digest.Config.Algorithms).
	DigestAlgorithms []string
	// MediaBaseURL starts the links of store-and-link media; "" : http://
	// and the HTTP listen address.
	MediaBaseURL   string
	MediaDir       string        // files of large media; "" : kept in the registry
	MediaTTL       time.Duration // how long a link works; 0: 7 days
	MaxMessageSize int           // largest MESSAGE body; 0: messaging.DefaultMaxMessageSize
	MessageRetry   time.Duration // first retry of a kept message; 0: 10s
	// Media is how call media flows: MediaAnchor ("" too) relays it
	// through the built-in RTP proxy, MediaPassthrough leaves SDP untouched.
	Media string
	// RTPBind is the IPv4 address the RTP proxy binds; invalid: the host of
	// SIPListen.
	RTPBind netip.Addr
	// RTPAdvertise is the address written into SDP (the public address
	// behind NAT); invalid: RTPBind.
	RTPAdvertise netip.Addr
	// RTPBindV6 is the IPv6 address the RTP proxy binds for offers with
	// c=IN IP6; invalid: none, and such offers get 488.
	RTPBindV6 netip.Addr
	// RTPAdvertiseV6 is the IPv6 address written into SDP; invalid:
	// RTPBindV6.
	RTPAdvertiseV6 netip.Addr
	// RTPPortMin and RTPPortMax bound the media ports; 0: 20000-29999.
	RTPPortMin, RTPPortMax int
	// MediaTimeout ends an answered call whose media stopped; 0: 60s.
	MediaTimeout time.Duration
	// RTPKernel forwards the RTP of latched two-party streams in the
	// kernel (rtpproxy.Config.Kernel); zero: off.
	RTPKernel rtpproxy.KernelMode
	Logger    *slog.Logger
	// NodeID names this node in the dialog snapshots of the store, the
	// same across restarts and distinct per node sharing a store; "" :
	// the host name.
	NodeID string

	// HEP sends a copy of every SIP message to a HEP v3 collector,
	// "udp:HOST:PORT"; "" : none. HEPCaptureID names this node to it.
	HEP          string
	HEPCaptureID uint32
	// SIPPcap writes every SIP message to this pcap file; "" : none.
	SIPPcap string
	// OptionsAlwaysOK answers out-of-dialog OPTIONS 200 even when not
	// ready; false: 503 while /readyz fails.
	OptionsAlwaysOK bool

	// SIPLimits are the per-source limits of untrusted SIP sources
	// (request rate, failed authentications); zero: none.
	SIPLimits sip.Limits
	// SIPConns bounds SIP's TCP and TLS connections (counts, idle and
	// message timeouts); zero fields: sip's defaults.
	SIPConns sip.ConnLimits
	// SIPUDPReaders is the number of UDP sockets (and readers) on the SIP
	// port; 0: one per CPU.
	SIPUDPReaders int
	// SIPOverload refuses new calls early past capacity; zero: never.
	SIPOverload sip.Overload
	// HTTP bounds the HTTP listener (timeouts, sizes, open connections);
	// zero fields: httpserver's defaults.
	HTTP httpserver.Config
}

// DualPath configures dual-path calls (sip.DualPathConfig).
type DualPath struct {
	Window          time.Duration // --dual-path-window; 0: off
	LegMediaTimeout time.Duration // --leg-media-timeout; 0: 2s
	LegTimeout      time.Duration // --leg-timeout; 0: 30s
	ProbeInterval   time.Duration // --leg-probe-interval; 0: 10s
}

// Media modes of Config.Media.
const (
	MediaAnchor      = "anchor"      // media relayed by the built-in RTP proxy
	MediaPassthrough = "passthrough" // signalling only; media flows end to end
)

// Daemon is a running product.
type Daemon struct {
	log     *slog.Logger
	store   stores.Store
	media   *mediastore.Store
	sip     *sip.Server
	msg     *messaging.Messenger
	http    *httpserver.Server
	httpL   net.Listener // until http owns it
	loc     scp.Locator
	rtp     *rtpproxy.Proxy // nil in passthrough mode
	conf    *conferences
	metrics *metrics.Metrics
	ready   *readiness
	traces  []io.Closer // HEP and pcap writers, closed after SIP stops

	TokenFile string // where the API token was written; "" when given

	cancel   context.CancelFunc
	sipDone  chan error    // Serve's result, taken by Close
	sipDown  chan struct{} // closed when Serve has returned
	sipErr   error         // Serve's result, once sipDown is closed
	httpDone chan struct{} // closed when the HTTP server has stopped
	stopMsg  context.CancelFunc
	msgDone  chan error

	leases     []*leaseGuard // delivery, media expiry; released by Close
	stopLeases func()        // ends keepLeases' goroutines and waits for them

	stopRecover context.CancelFunc // ends endLeftovers
	recoverDone chan struct{}
	once        sync.Once
}

// Start opens the registry, builds the SCP backend and the B2BUA, and
// starts serving SIP and HTTP. It returns once both listen.
func Start(ctx context.Context, cfg Config) (*Daemon, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.DBPath == "" || cfg.Domain == "" {
		return nil, errors.New("daemon: DBPath and Domain are required")
	}
	if cfg.SIPListen == "" {
		cfg.SIPListen = "127.0.0.1:5060"
	}
	if cfg.HTTPListen == "" {
		cfg.HTTPListen = "127.0.0.1:8080"
	}
	if cfg.SCP == "" {
		cfg.SCP = "sim"
	}
	if cfg.SCPTimeout <= 0 {
		// Resolved here so the backend and the call path share one
		// deadline.
		cfg.SCPTimeout = scp.DefaultTimeout
	}
	if cfg.Media == "" {
		cfg.Media = MediaAnchor
	}
	log := cfg.Logger
	d := &Daemon{log: log, sipDone: make(chan error, 1), sipDown: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			d.closeResources()
		}
	}()

	store, err := stores.Open(ctx, cfg.DBPath, stores.Options{Logger: log})
	if err != nil {
		return nil, err // it begins "registry:" and names the spec
	}
	d.store = store

	token := cfg.APIToken
	if token == "" {
		if token, d.TokenFile, err = loadOrCreateToken(cfg.TokenFile, store); err != nil {
			return nil, err
		}
		log.Info("provisioning API token", "file", d.TokenFile)
	}

	mux := http.NewServeMux()
	if d.loc, err = locators.Open(ctx, cfg.SCP, locators.Options{
		SubscribersFile: cfg.SCPSubscribers,
		Timeout:         cfg.SCPTimeout,
		Token:           cfg.SCPToken,
		Logger:          log.With("component", "scp"),
	}); err != nil {
		return nil, err // locators names the spec, with any credentials masked
	}
	var scpAdmin http.Handler
	if simulator, ok := locators.Simulator(d.loc); ok {
		// The in-process simulator's admin API, so that scpsim's commands
		// change it while calls run; moving a subscriber redirects its
		// calls, so it takes the provisioning API's token.
		scpAdmin = sim.RequireToken(token, sim.NewHandler(simulator, log.With("component", "scpsim")))
	}
	node, err := nodeID(cfg.NodeID)
	if err != nil {
		return nil, err
	}
	// The node's name goes on every line it logs, so that the logs of
	// nodes sharing a store can be told apart when gathered.
	log = log.With("node", node)
	d.log = log
	d.leases = []*leaseGuard{
		newLeaseGuard(store, leaseDeliver, node, log.With("component", "lease")),
		newLeaseGuard(store, leasePurge, node, log.With("component", "lease")),
	}
	d.keepLeases()
	if d.media, err = mediastore.New(mediastore.Config{DB: leasedMedia{store, d.leases[1]}, Dir: cfg.MediaDir, TTL: cfg.MediaTTL, Logger: log.With("component", "media")}); err != nil {
		return nil, err
	}
	mux.Handle(mediastore.PathPrefix, d.media)
	if d.conf, err = newConferences(cfg.Domain, log.With("component", "conference")); err != nil {
		return nil, err
	}
	mux.Handle(conference.PagePrefix, d.conf.pages)
	api := provision.NewHandler(provision.Config{Store: store, Token: token, Realm: cfg.Domain, Logger: log.With("component", "provision"),
		Routes: d.conf.routes()})

	var auth sip.Authenticator
	if !cfg.NoAuth {
		v, err := digest.New(digest.Config{
			Realm:       cfg.Domain,
			Algorithms:  cfg.DigestAlgorithms,
			ServerHosts: serverHosts(cfg.SIPListen, cfg.TLSListen),
			Lookup: func(ctx context.Context, user string) (registry.Credentials, error) {
				// The digest username is an IM ID under the one rule
				// (registry.ParseIMID); any other is no user, checked with
				// the same work as an unknown one.
				if _, err := registry.ParseIMID(user); err != nil {
					return registry.Credentials{}, fmt.Errorf("digest username: %w: %w", registry.ErrNotFound, err)
				}
				u, err := store.User(ctx, user)
				return u.Creds, err
			},
		})
		if err != nil {
			return nil, fmt.Errorf("digest: %w", err)
		}
		auth = v
	}
	anchor, err := d.startMedia(cfg)
	if err != nil {
		return nil, err
	}

	var tlsConf *tls.Config
	if cfg.TLSListen != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("tls certificate: %w", err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	d.metrics = newMetrics(d, cfg.SCP)
	d.ready = &readiness{d: d, now: time.Now}
	readyFn := d.ready.err
	if cfg.OptionsAlwaysOK {
		readyFn = nil
	}
	tracer, err := d.openTracers(cfg)
	if err != nil {
		return nil, err
	}
	d.sip, err = sip.NewServer(sip.Config{
		TLSConfig:   tlsConf,
		TLSAddr:     cfg.TLSListen,
		Domain:      cfg.Domain,
		Terminals:   store,
		Bindings:    store,
		Calls:       store,
		Dialogs:     dialogStore(store),
		Node:        node,
		Locator:     d.metrics.Locator(d.loc),
		Numbers:     store,
		Auth:        auth,
		IsStale:     func(err error) bool { return errors.Is(err, digest.ErrStale) },
		Trusted:     cfg.Trusted,
		Proxies:     cfg.Proxies,
		Limits:      cfg.SIPLimits,
		Conns:       cfg.SIPConns,
		UDPReaders:  cfg.SIPUDPReaders,
		Overload:    cfg.SIPOverload,
		RingTimeout: cfg.RingTimeout,
		SCPTimeout:  cfg.SCPTimeout,

		SessionExpires:  cfg.SessionExpires,
		MinSE:           cfg.MinSE,
		MaxCallDuration: cfg.MaxCallDuration,

		DualPath: sip.DualPathConfig{
			Window: cfg.DualPath.Window, Trunks: store.Trunks, Terminals: store,
			LegMediaTimeout: cfg.DualPath.LegMediaTimeout, LegTimeout: cfg.DualPath.LegTimeout,
			ProbeInterval: cfg.DualPath.ProbeInterval,
		},
		Media:    anchor,
		Observer: d.metrics,
		Tracer:   tracer,
		Ready:    readyFn,
		Logger:   log.With("component", "sip"),
	})
	if err != nil {
		return nil, err
	}
	mux.Handle("GET /metrics", d.metrics.Handler())
	if d.msg, err = messaging.New(messaging.Config{SIP: d.sip, Logger: log.With("component", "messaging"), Observer: d.metrics, Rules: &messaging.Rules{
		Media: d.media, Pending: leasedPending{store, d.leases[0]}, Terminals: store, Bindings: store,
		BaseURL: cfg.MediaBaseURL, MaxSize: cfg.MaxMessageSize, RetryMin: cfg.MessageRetry,
		LinkBase: func() string { return "http://" + d.HTTPAddr() },
	}}); err != nil {
		return nil, err
	}
	d.sip.HandleMessages(d.msg)
	if err := d.conf.serveEvents(d.sip, log.With("component", "confevent")); err != nil {
		return nil, err
	}
	if err := d.conf.serveCalls(d.sip, d.rtp, store, callConfig{Trunk: cfg.ConferenceTrunk, RingTimeout: cfg.RingTimeout, MediaTimeout: cfg.MediaTimeout}, log.With("component", "confcall")); err != nil {
		return nil, err
	}
	if err := d.sip.Listen(cfg.SIPListen); err != nil {
		return nil, err
	}
	mux.HandleFunc("GET /healthz", d.serveLive)
	mux.HandleFunc("GET /readyz", d.ready.serveReady)
	if d.httpL, err = net.Listen("tcp", cfg.HTTPListen); err != nil {
		return nil, fmt.Errorf("http: %w", err) // net names the operation and the address
	}
	if cfg.HTTP.Logger == nil {
		cfg.HTTP.Logger = log.With("component", "http")
	}
	if scpAdmin != nil {
		scpAdmin = httpserver.ServeDocument(scp.OpenAPIPath, scp.OpenAPI(), scpAdmin)
	}
	api = httpserver.ServeDocument(provision.OpenAPIPath, provision.OpenAPI(), api)
	mux.HandleFunc("GET /version", serveVersion)
	backend, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(cfg.SCP)), ":")
	page, err := statuspage.New(statuspage.Config{Token: token, Source: statusSource{d: d, node: node, backend: backend},
		Logger: log.With("component", "status")})
	if err != nil {
		return nil, err
	}
	page.Register(mux)
	d.http = httpserver.New(d.httpL, apisFirst(mux, map[string]http.Handler{"/api": api, "/scp": scpAdmin}), cfg.HTTP)
	// Event streams of the pages last until the client leaves: end them so
	// that Shutdown need not wait for them.
	d.http.RegisterOnShutdown(func() { _ = d.conf.pages.Close() })
	pageBase := cfg.MediaBaseURL
	if pageBase == "" {
		pageBase = "http://" + d.HTTPAddr()
	}
	d.conf.serveAPI(pageBase, log.With("component", "conference"))

	sctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	go func() {
		err := d.sip.Serve(sctx)
		d.sipErr = err
		close(d.sipDown)
		d.sipDone <- err
	}()
	d.httpDone = make(chan struct{})
	go func() {
		defer close(d.httpDone)
		if err := d.http.Serve(); err != nil {
			log.Error("http server", "err", err)
		}
	}()
	select {
	case <-d.sip.Ready():
	case err := <-d.sipDone:
		return nil, err
	}
	// The delivery loop sends through the SIP server, so it runs once the
	// server is ready and stops before it (Close).
	mctx, stopMsg := context.WithCancel(context.Background())
	d.stopMsg, d.msgDone = stopMsg, make(chan error, 1)
	go func() { d.msgDone <- d.msg.Run(mctx) }()
	d.endLeftovers()
	// The ready line starts with its addresses, which supervisors and
	// tests read; the node's name comes last on it.
	cfg.Logger.Info("b2bua ready", "sip", d.sip.Addr().String(), "http", d.httpL.Addr().String(), "domain", cfg.Domain, "scp", cfg.SCP, "media", cfg.Media, "node", node)
	ok = true
	return d, nil
}

// apisFirst sends every path under one of apis' prefixes (a first segment
// such as "/api") to that API as it came, before ServeMux would clean it
// and answer with a redirect or plain text: the APIs answer every error as
// JSON. A nil handler is an API not served.
func apisFirst(mux http.Handler, apis map[string]http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := path.Clean(r.URL.Path)
		first, _, _ := strings.Cut(strings.TrimPrefix(p, "/"), "/")
		if h := apis["/"+first]; h != nil {
			h.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// SIPDown is closed when SIP has stopped serving: after Close, or on its
// own when a listener died; SIPErr then says why.
func (d *Daemon) SIPDown() <-chan struct{} { return d.sipDown }

// SIPErr is why SIP stopped, valid once SIPDown is closed; nil after a
// clean stop.
func (d *Daemon) SIPErr() error {
	select {
	case <-d.sipDown:
		return d.sipErr
	default:
		return nil
	}
}

// SIPAddr is where SIP listens (UDP and TCP).
func (d *Daemon) SIPAddr() netip.AddrPort { return d.sip.Addr() }

// HTTPAddr is where the HTTP side listens.
func (d *Daemon) HTTPAddr() string { return d.httpL.Addr().String() }

// Store is the registry the daemon uses.
func (d *Daemon) Store() stores.Store { return d.store }

// SIP is the B2BUA.
func (d *Daemon) SIP() *sip.Server { return d.sip }

// Shutdown drains (new calls get 503, live calls run on) until ctx is done,
// then ends live calls with BYE; then it stops serving and closes the
// registry.
func (d *Daemon) Shutdown(ctx context.Context) error {
	err := d.sip.Shutdown(ctx)
	d.Close()
	return err
}

// Close stops serving at once and releases everything.
func (d *Daemon) Close() error {
	d.once.Do(func() {
		hctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = d.http.Shutdown(hctx)
		cancel()
		d.stopMsg()
		<-d.msgDone
		d.stopLeases()
		lctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		for _, l := range d.leases {
			l.release(lctx)
		}
		cancel()
		d.conf.closeCalls() // their BYEs and final NOTIFYs go out while SIP still runs
		d.waitLeftovers()
		d.cancel()
		<-d.sipDone
		d.closeResources()
	})
	return nil
}

func (d *Daemon) closeResources() {
	if d.stopLeases != nil {
		d.stopLeases() // before the store closes
	}
	if d.httpL != nil && d.http == nil {
		d.httpL.Close()
	}
	if d.conf != nil {
		_ = d.conf.pages.Close()
		_ = d.conf.bridge.Close()
	}
	if d.httpDone != nil {
		d.http.Close()
		<-d.httpDone
	}
	// The proxy closes after the SIP server has stopped, so no call loses
	// its media while it is still being hung up.
	if d.rtp != nil {
		_ = d.rtp.Close()
	}
	if d.loc != nil {
		_ = locators.Close(d.loc)
	}
	for _, t := range d.traces {
		_ = t.Close()
	}
	if d.media != nil {
		_ = d.media.Close()
	}
	if d.store != nil {
		_ = d.store.Close()
	}
}

// loadOrCreateToken reads the API token from path (default: b2bua.token
// beside the database file) or, when the file does not exist, creates it
// with a random token, readable only by its owner.
func loadOrCreateToken(path string, store stores.Store) (token, file string, err error) {
	if path == "" {
		// The spec may carry a scheme ("sqlite:PATH"), so the file's
		// directory comes from the store, not from the spec.
		f, ok := store.(interface{ Path() string })
		if !ok {
			return "", "", errors.New("api token: the registry is not a file: give the token or a token file")
		}
		path = filepath.Join(filepath.Dir(f.Path()), "b2bua.token")
	}
	b, err := os.ReadFile(path)
	if err == nil {
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, path, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", "", fmt.Errorf("api token: %w", err)
	}
	var raw [24]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", "", fmt.Errorf("api token: %w", err)
	}
	token = hex.EncodeToString(raw[:])
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", "", fmt.Errorf("api token: %w", err)
	}
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		return "", "", fmt.Errorf("api token: %w", err)
	}
	return token, path, nil
}
