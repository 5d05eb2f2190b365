package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/imcall/b2bua/daemon"
	"github.com/imcall/b2bua/rtpproxy"
	"github.com/imcall/b2bua/scp"
)

// serveOptions are the flags of `b2bua serve`.
type serveOptions struct {
	sipListen    string
	tlsListen    string
	tlsCert      string
	tlsKey       string
	httpListen   string
	scp          string
	subscribers  string
	trusted      string
	proxies      string
	ringTimeout  time.Duration
	sessTimers   sessionTimerOptions
	confTrunk    string // --conference-trunk
	drainTimeout time.Duration
	dualPath     daemon.DualPath
	scpTimeout   time.Duration
	scpTokenFile string // serve_scp.go
	tokenFile    string
	noAuth       bool
	digestAlgs   string
	logLevel     string
	media        mediaOptions
	rtp          rtpOptions
	limits       limitOptions // serve_limits.go
	conns        connOptions  // serve_conns.go
	load         loadOptions  // serve_load.go
	pprof        string       // serve_pprof.go
	ops          opsOptions   // serve_ops.go
	nodeID       string       // names the node in the store's call snapshots
}

// rtpOptions are the flags of call media (the RTP proxy).
type rtpOptions struct {
	mode      string
	bind      string
	advertise string
	bindV6    string
	adv6      string
	ports     string
	timeout   string
	kernel    string
}

// mediaOptions are the flags of MESSAGE media handling.
type mediaOptions struct {
	baseURL string
	dir     string
	ttl     time.Duration
	maxSize int
	retry   time.Duration
}

func newServeCmd(root *rootOptions) *cobra.Command {
	o := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the B2BUA: SIP on UDP and TCP, the provisioning API and health on HTTP",
		Long: `Run the B2BUA on embedded defaults: the SQLite registry (--db), the
in-process SCP simulator, loopback addresses.

The provisioning API token is taken from B2BUA_API_TOKEN, else from
--api-token-file, else generated into b2bua.token beside the database (the
path is logged, the token never is).

The first SIGINT or SIGTERM stops taking calls (new INVITEs get 503 with
Retry-After) and waits for live calls to end; a second one ends them with BYE.
Calls that a crash (or a second signal cut short) left behind are ended at
the next start: BYE on both legs with Reason Q.850 cause 41 "node restarted".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServe(cmd, root, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.sipListen, "sip-listen", envOr("B2BUA_SIP_LISTEN", "127.0.0.1:5060"), "SIP address, UDP and TCP (env B2BUA_SIP_LISTEN)")
	f.StringVar(&o.tlsListen, "tls-listen", envOr("B2BUA_TLS_LISTEN", ""), "SIP over TLS on this address, with --tls-cert and --tls-key (env B2BUA_TLS_LISTEN)")
	f.StringVar(&o.tlsCert, "tls-cert", envOr("B2BUA_TLS_CERT", ""), "PEM certificate chain for --tls-listen (env B2BUA_TLS_CERT)")
	f.StringVar(&o.tlsKey, "tls-key", envOr("B2BUA_TLS_KEY", ""), "PEM private key for --tls-listen (env B2BUA_TLS_KEY)")
	f.StringVar(&o.httpListen, "http-listen", envOr("B2BUA_HTTP_LISTEN", "127.0.0.1:8080"), "HTTP address: provisioning API, SCP simulator admin, /healthz (env B2BUA_HTTP_LISTEN)")
	f.StringVar(&o.scp, "scp", envOr("B2BUA_SCP", "sim"), "SCP backend: sim (in process), http://HOST:PORT, ... (env B2BUA_SCP)")
	f.StringVar(&o.subscribers, "scp-subscribers", envOr("B2BUA_SCP_SUBSCRIBERS", ""), "JSON file seeding the in-process SCP simulator, e.g. testdata/scp/subscribers.json (env B2BUA_SCP_SUBSCRIBERS)")
	f.StringVar(&o.trusted, "trusted", envOr("B2BUA_TRUSTED", ""), "comma-separated CIDRs of peers that are not challenged for authentication (env B2BUA_TRUSTED)")
	f.StringVar(&o.proxies, "proxies", envOr("B2BUA_PROXIES", ""), "comma-separated CIDRs of proxies in front that are challenged like anyone: limits apply to the sender each reports in the bottom Via (received, else sent-by), never to the proxy as one source (env B2BUA_PROXIES)")
	f.DurationVar(&o.ringTimeout, "ring-timeout", 60*time.Second, "how long a terminal rings before the caller gets 480")
	f.DurationVar(&o.sessTimers.expires, "session-expires", 30*time.Minute, "RFC 4028 session interval asked for and granted on each leg; a leg not refreshed within it ends the call with BYE; 0: no session timers")
	f.DurationVar(&o.sessTimers.minSE, "min-se", 90*time.Second, "shortest session interval accepted (Min-SE; shorter requests get 422); RFC 4028 §4 makes 90s the floor, lower values are for tests only")
	f.DurationVar(&o.sessTimers.maxCall, "max-call-duration", 0, "end an answered call with BYE on both legs this long after its answer; 0: no limit")
	f.StringVar(&o.confTrunk, "conference-trunk", envOr("B2BUA_CONFERENCE_TRUNK", ""), "HOST:PORT of the trunk that conference dial-outs to +E.164 numbers go to (default none: such participants fail) (env B2BUA_CONFERENCE_TRUNK)")
	f.DurationVar(&o.dualPath.Window, "dual-path-window", 10*time.Second, "a device's second path (carrier or data) joins its call within this long of the first; 0: dual-path calls off")
	f.DurationVar(&o.dualPath.LegMediaTimeout, "leg-media-timeout", 2*time.Second, "a path of a dual-path call silent this long stops being a media source")
	f.DurationVar(&o.dualPath.LegTimeout, "leg-timeout", 30*time.Second, "a path of a dual-path call silent this long is ended with BYE")
	f.DurationVar(&o.dualPath.ProbeInterval, "leg-probe-interval", 10*time.Second, "each path of a dual-path call is sent an in-dialog OPTIONS this often; one unanswered within 4s, or answered 481 or 408, ends that path")
	f.DurationVar(&o.drainTimeout, "drain-timeout", 0, "after the first SIGINT/SIGTERM, end the live calls after this long (0: wait for them, or for a second signal)")
	f.DurationVar(&o.scpTimeout, "scp-timeout", scp.DefaultTimeout, "deadline of one SCP query, for every backend; past it the caller gets 503")
	f.StringVar(&o.scpTokenFile, "scp-token-file", envOr("B2BUA_SCP_TOKEN_FILE", ""), "file holding the bearer token sent to an http(s) SCP; B2BUA_SCP_TOKEN gives it directly (env B2BUA_SCP_TOKEN_FILE)")
	f.StringVar(&o.tokenFile, "api-token-file", envOr("B2BUA_API_TOKEN_FILE", ""), "file holding the provisioning API token; created with a random token if missing (env B2BUA_API_TOKEN_FILE)")
	f.BoolVar(&o.noAuth, "no-auth", false, "challenge nobody (a lab without credentials)")
	f.StringVar(&o.digestAlgs, "digest-algorithms", envOr("B2BUA_DIGEST_ALGORITHMS", "MD5"), "digest algorithms offered, in order of preference: MD5 works with every client; SHA-256,MD5 suits clients that take the first they support, such as linphone, but SIPp 3.6 and baresip 1.0 fail on it (env B2BUA_DIGEST_ALGORITHMS)")
	f.StringVar(&o.logLevel, "log-level", envOr("B2BUA_LOG_LEVEL", "info"), "debug, info, warn or error (env B2BUA_LOG_LEVEL)")
	f.StringVar(&o.media.baseURL, "media-base-url", envOr("B2BUA_MEDIA_BASE_URL", ""), "start of the media links sent to terminals, e.g. https://media.example.com (default http:// and the HTTP listen address) (env B2BUA_MEDIA_BASE_URL)")
	f.StringVar(&o.media.dir, "media-dir", envOr("B2BUA_MEDIA_DIR", ""), "directory for stored media over 64 KiB (default: kept in the registry) (env B2BUA_MEDIA_DIR)")
	f.DurationVar(&o.media.ttl, "media-ttl", 7*24*time.Hour, "how long a media link works; then it answers 410")
	f.IntVar(&o.media.maxSize, "max-message-size", 60<<10, "largest MESSAGE body in bytes; larger ones get 413")
	f.DurationVar(&o.media.retry, "message-retry", 10*time.Second, "first retry of a message kept for an absent terminal (doubling up to 10 minutes)")
	f.StringVar(&o.rtp.mode, "media", envOr("B2BUA_MEDIA", daemon.MediaAnchor), "call media: anchor (relayed by the built-in RTP proxy) or passthrough (SDP untouched) (env B2BUA_MEDIA)")
	f.StringVar(&o.rtp.bind, "rtp-bind", envOr("B2BUA_RTP_BIND", ""), "IPv4 address the RTP proxy binds (default the --sip-listen host) (env B2BUA_RTP_BIND)")
	f.StringVar(&o.rtp.advertise, "rtp-advertise", envOr("B2BUA_RTP_ADVERTISE", ""), "media address written into SDP, the public address behind NAT (default the bind address) (env B2BUA_RTP_ADVERTISE)")
	f.StringVar(&o.rtp.bindV6, "rtp-bind-v6", envOr("B2BUA_RTP_BIND_V6", ""), "IPv6 address the RTP proxy binds for offers with c=IN IP6 (default none: such offers get 488) (env B2BUA_RTP_BIND_V6)")
	f.StringVar(&o.rtp.adv6, "rtp-advertise-v6", envOr("B2BUA_RTP_ADVERTISE_V6", ""), "IPv6 media address written into SDP (default the IPv6 bind address) (env B2BUA_RTP_ADVERTISE_V6)")
	f.StringVar(&o.rtp.ports, "rtp-ports", envOr("B2BUA_RTP_PORTS", "20000-29999"), "UDP port range of the RTP proxy, MIN-MAX (env B2BUA_RTP_PORTS)")
	f.StringVar(&o.rtp.kernel, "rtp-kernel", envOr("B2BUA_RTP_KERNEL", "off"), "forward the RTP of latched two-party calls in the kernel (eBPF, needs root or CAP_BPF+CAP_NET_ADMIN and Linux 6.6): on (fail without it), auto (fall back to userspace) or off (env B2BUA_RTP_KERNEL)")
	f.StringVar(&o.rtp.timeout, "media-timeout", envOr("B2BUA_MEDIA_TIMEOUT", "60s"), "an answered call whose RTP stopped this long ends with BYE to both sides (env B2BUA_MEDIA_TIMEOUT)")
	o.limits.register(f)
	f.StringVar(&o.nodeID, "node-id", envOr("B2BUA_NODE_ID", ""), "this node's name in the store's call snapshots, kept across restarts so that a restarted node ends the calls it held; distinct per node sharing a store (default the host name) (env B2BUA_NODE_ID)")
	o.conns.register(f)
	o.ops.register(f)
	o.load.register(f)
	f.StringVar(&o.pprof, "pprof", "", "debug: serve Go's profiler (/debug/pprof/) on this address, e.g. 127.0.0.1:6060 (off by default)")
	return cmd
}

func runServe(cmd *cobra.Command, root *rootOptions, o *serveOptions) error {
	domain, err := root.realm()
	if err != nil {
		return err
	}
	trusted, err := parseCIDRs("--trusted", o.trusted)
	if err != nil {
		return usageError(cmd, err.Error())
	}
	proxies, err := parseCIDRs("--proxies", o.proxies)
	if err != nil {
		return usageError(cmd, err.Error())
	}
	limits, err := o.limits.limits()
	if err != nil {
		return usageError(cmd, err.Error())
	}
	conns, err := o.conns.limits()
	if err != nil {
		return usageError(cmd, err.Error())
	}
	readers, overload, err := o.load.config()
	if err != nil {
		return usageError(cmd, err.Error())
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return usageError(cmd, "--log-level: must be debug, info, warn or error")
	}
	rtp, err := o.rtp.parse()
	if err != nil {
		return usageError(cmd, err.Error())
	}
	if err := o.checkAddrs(); err != nil {
		return usageError(cmd, err.Error())
	}
	if err := checkRTPBind(o.sipListen, rtp); err != nil {
		return usageError(cmd, err.Error())
	}
	o.dualPath = fitDualPath(o.dualPath, rtp.MediaTimeout, cmd.Flags().Changed("leg-timeout"), cmd.Flags().Changed("leg-media-timeout"))
	if err := checkDualPath(o.dualPath, rtp.MediaTimeout); err != nil {
		return usageError(cmd, err.Error())
	}
	algs, err := parseDigestAlgorithms(o.digestAlgs)
	if err != nil {
		return usageError(cmd, err.Error())
	}
	scpToken, err := readSCPToken(o.scpTokenFile, os.Getenv("B2BUA_SCP_TOKEN"))
	if err != nil {
		return usageError(cmd, err.Error())
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	logNofile := raiseNofile()
	if o.pprof != "" {
		stop, err := servePprof(o.pprof, log)
		if err != nil {
			return usageError(cmd, err.Error())
		}
		defer stop()
	}

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	cfg := daemon.Config{
		DBPath:           root.DBPath,
		Domain:           domain,
		SIPListen:        o.sipListen,
		TLSListen:        o.tlsListen,
		TLSCert:          o.tlsCert,
		TLSKey:           o.tlsKey,
		HTTPListen:       o.httpListen,
		SCP:              o.scp,
		SCPSubscribers:   o.subscribers,
		Trusted:          trusted,
		Proxies:          proxies,
		RingTimeout:      o.ringTimeout,
		SessionExpires:   o.sessTimers.sipExpires(),
		MinSE:            o.sessTimers.minSE,
		MaxCallDuration:  o.sessTimers.maxCall,
		ConferenceTrunk:  o.confTrunk,
		DualPath:         o.dualPath,
		SCPTimeout:       o.scpTimeout,
		SCPToken:         scpToken,
		APIToken:         os.Getenv("B2BUA_API_TOKEN"),
		TokenFile:        o.tokenFile,
		NoAuth:           o.noAuth,
		DigestAlgorithms: algs,
		MediaBaseURL:     o.media.baseURL,
		MediaDir:         o.media.dir,
		MediaTTL:         o.media.ttl,
		MaxMessageSize:   o.media.maxSize,
		MessageRetry:     o.media.retry,
		Media:            rtp.Media,
		RTPBind:          rtp.RTPBind,
		RTPAdvertise:     rtp.RTPAdvertise,
		RTPBindV6:        rtp.RTPBindV6,
		RTPAdvertiseV6:   rtp.RTPAdvertiseV6,
		RTPPortMin:       rtp.RTPPortMin,
		RTPPortMax:       rtp.RTPPortMax,
		MediaTimeout:     rtp.MediaTimeout,
		RTPKernel:        rtp.RTPKernel,
		Logger:           log,
		NodeID:           o.nodeID,
		SIPLimits:        limits,
		SIPConns:         conns,
		SIPUDPReaders:    readers,
		SIPOverload:      overload,
	}
	o.ops.apply(&cfg)
	d, err := daemon.Start(cmd.Context(), cfg)
	if err != nil {
		return err
	}
	logNofile(log)
	select {
	case <-sigs:
	case <-d.SIPDown():
		// A dead listener: exit non-zero so that a supervisor restarts us.
		err := d.SIPErr()
		d.Close()
		return fmt.Errorf("sip stopped: %w", err)
	}
	// Besides live calls, relayed requests in progress are waited for: at
	// most Timer F, 32 s (RFC 3261 §17.1.2.2); unanswered IM notices are not.
	log.Info("shutting down: refusing new calls, waiting for live calls and relayed requests in progress; signal again to end them now")
	drain, cut := context.WithCancel(context.Background())
	defer cut()
	if o.drainTimeout > 0 {
		var stop context.CancelFunc
		drain, stop = context.WithTimeout(drain, o.drainTimeout)
		defer stop()
	}
	go func() {
		<-sigs
		log.Info("ending live calls")
		cut()
	}()
	if err := d.Shutdown(drain); err != nil {
		log.Info("live calls ended", "err", err)
	}
	log.Info("b2bua stopped")
	return nil
}

// checkAddrs checks the listen flags before anything starts, so that a
// typo names its flag rather than failing deep inside a listener.
func (o *serveOptions) checkAddrs() error {
	for _, f := range []struct{ name, v, example string }{
		{"sip-listen", o.sipListen, "127.0.0.1:5060"},
		{"http-listen", o.httpListen, "127.0.0.1:8080"},
		{"tls-listen", o.tlsListen, "127.0.0.1:5061"},
	} {
		if f.v == "" && f.name == "tls-listen" {
			continue
		}
		_, port, err := net.SplitHostPort(f.v)
		if err == nil {
			_, err = strconv.ParseUint(port, 10, 16)
		}
		if err != nil {
			return fmt.Errorf("--%s: %q: must be HOST:PORT such as %s", f.name, f.v, f.example)
		}
	}
	return nil
}

// checkRTPBind names the flags to set when the RTP proxy would bind the
// --sip-listen host (its default) and that host cannot serve: a name, or
// the wildcard address without --rtp-advertise.
func checkRTPBind(sipListen string, c daemon.Config) error {
	if c.Media != daemon.MediaAnchor || c.RTPBind.IsValid() {
		return nil
	}
	host, _, err := net.SplitHostPort(sipListen)
	if err != nil {
		return nil // checkAddrs reports it
	}
	a, err := netip.ParseAddr(host)
	switch {
	case err != nil || !a.Unmap().Is4():
		return fmt.Errorf("--sip-listen: host %q is not an IPv4 address, which the RTP proxy binds by default: give --rtp-bind IP (or --media passthrough)", host)
	case a.IsUnspecified() && !c.RTPAdvertise.IsValid():
		return fmt.Errorf("--sip-listen: host %s makes the RTP proxy bind %s, which needs --rtp-advertise IP (the address written into SDP) or --rtp-bind IP", host, host)
	}
	return nil
}

// parseDigestAlgorithms checks --digest-algorithms: SHA-256 and MD5 (RFC
// 8760), each at most once, in order of preference.
func parseDigestAlgorithms(s string) ([]string, error) {
	algs := splitList(s)
	if len(algs) == 0 {
		return nil, fmt.Errorf("--digest-algorithms: %q: must list SHA-256, MD5 or both", s)
	}
	seen := map[string]bool{}
	for _, a := range algs {
		u := strings.ToUpper(a)
		if u != "SHA-256" && u != "MD5" {
			return nil, fmt.Errorf("--digest-algorithms: %q: must be SHA-256 or MD5", a)
		}
		if seen[u] {
			return nil, fmt.Errorf("--digest-algorithms: %q: listed twice", a)
		}
		seen[u] = true
	}
	return algs, nil
}

// parse checks the media flags; only the media fields of the result are set.
func (o rtpOptions) parse() (daemon.Config, error) {
	var c daemon.Config
	switch o.mode {
	case daemon.MediaAnchor, daemon.MediaPassthrough:
		c.Media = o.mode
	default:
		return c, fmt.Errorf("--media: %q: must be anchor or passthrough", o.mode)
	}
	addrOf := func(v6 bool) func(flag, v string) (netip.Addr, error) {
		return func(flag, v string) (netip.Addr, error) {
			if v == "" {
				return netip.Addr{}, nil
			}
			a, err := netip.ParseAddr(v)
			switch {
			case v6 && (err != nil || !a.Is6() || a.Is4In6() || a.Zone() != ""):
				return netip.Addr{}, fmt.Errorf("--%s: %q: must be an IPv6 address", flag, v)
			case !v6 && (err != nil || !a.Is4()):
				return netip.Addr{}, fmt.Errorf("--%s: %q: must be an IPv4 address", flag, v)
			}
			return a, nil
		}
	}
	addr, addr6 := addrOf(false), addrOf(true)
	var err error
	if c.RTPBind, err = addr("rtp-bind", o.bind); err != nil {
		return c, err
	}
	if c.RTPAdvertise, err = addr("rtp-advertise", o.advertise); err != nil {
		return c, err
	}
	if c.RTPAdvertise.IsValid() && c.RTPAdvertise.IsUnspecified() {
		return c, fmt.Errorf("--rtp-advertise: %q: must be a unicast address", o.advertise)
	}
	if c.RTPBind.IsValid() && c.RTPBind.IsUnspecified() && !c.RTPAdvertise.IsValid() {
		return c, errors.New("--rtp-bind: 0.0.0.0 needs --rtp-advertise")
	}
	if c.RTPBindV6, err = addr6("rtp-bind-v6", o.bindV6); err != nil {
		return c, err
	}
	if c.RTPAdvertiseV6, err = addr6("rtp-advertise-v6", o.adv6); err != nil {
		return c, err
	}
	switch {
	case c.RTPAdvertiseV6.IsValid() && !c.RTPBindV6.IsValid():
		return c, errors.New("--rtp-advertise-v6 needs --rtp-bind-v6")
	case c.RTPAdvertiseV6.IsValid() && c.RTPAdvertiseV6.IsUnspecified():
		return c, fmt.Errorf("--rtp-advertise-v6: %q: must be a unicast address", o.adv6)
	case c.RTPBindV6.IsValid() && c.RTPBindV6.IsUnspecified() && !c.RTPAdvertiseV6.IsValid():
		return c, errors.New("--rtp-bind-v6: :: needs --rtp-advertise-v6")
	}
	lo, hi, ok := strings.Cut(o.ports, "-")
	c.RTPPortMin, err = strconv.Atoi(strings.TrimSpace(lo))
	if ok && err == nil {
		c.RTPPortMax, err = strconv.Atoi(strings.TrimSpace(hi))
	}
	if !ok || err != nil || c.RTPPortMin < 1024 || c.RTPPortMax > 65535 || c.RTPPortMax < c.RTPPortMin+1 {
		return c, fmt.Errorf("--rtp-ports: %q: must be MIN-MAX with 1024 <= MIN < MAX <= 65535", o.ports)
	}
	if c.MediaTimeout, err = time.ParseDuration(o.timeout); err != nil || c.MediaTimeout <= 0 {
		return c, fmt.Errorf("--media-timeout: %q: must be a positive duration such as 60s", o.timeout)
	}
	if c.RTPKernel, err = rtpproxy.ParseKernelMode(o.kernel); err != nil {
		return c, fmt.Errorf("--rtp-kernel: %q: must be auto, on or off", o.kernel)
	}
	return c, nil
}

// parseCIDRs reads the comma-separated CIDRs or addresses of flag.
func parseCIDRs(flag, s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if !strings.Contains(part, "/") {
			a, err := netip.ParseAddr(part)
			if err != nil {
				return nil, fmt.Errorf("%s: %q is not a CIDR or address", flag, part)
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not a CIDR", flag, part)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
