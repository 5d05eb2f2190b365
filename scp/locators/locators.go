// Package locators opens an scp.Locator from the URL-like setting an
// operator gives (b2bua serve --scp ...): "sim" for the in-process
// simulator, "http://host:port" or "https://host:port" for an SCP that
// speaks the HTTP SCP protocol. Backends are found by scheme in one plain
// map, so adding one is one line.
package locators

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/imcall/b2bua/scp"
	"github.com/imcall/b2bua/scp/scphttp"
	"github.com/imcall/b2bua/scp/sim"
)

// Options carry what a backend needs besides its URL. Every field is
// optional; a backend ignores the ones that are not its own, except Token,
// which only the http backends take.
type Options struct {
	// SubscribersFile seeds the "sim" backend (the JSON format of
	// testdata/scp/subscribers.json); empty starts it with no subscribers.
	SubscribersFile string
	// Timeout is the per-lookup deadline of network backends; zero keeps
	// the backend's default. A "timeout" query parameter in the spec,
	// e.g. http://127.0.0.1:8070?timeout=200ms, overrides it.
	Timeout time.Duration
	// Token is the bearer token the http and https backends send to an SCP
	// that authenticates the B2BUA (scphttp.Config.Token). It is an option
	// and never part of the spec, because specs are logged.
	Token string
	// Logger receives the backend's logs; nil discards.
	Logger *slog.Logger
}

// Constructor opens one kind of backend. u is the parsed spec; for a spec
// without "//" such as "sim", only u.Scheme (and u.Opaque) are set.
type Constructor func(ctx context.Context, u *url.URL, opts Options) (scp.Locator, error)

// constructors maps a spec's scheme to its backend. It is never written
// after initialisation.
var constructors = map[string]Constructor{
	"sim":   openSim,
	"http":  openHTTP,
	"https": openHTTP,
	// CAP or INAP over M3UA (scp/capscp), e.g. cap+tcp://10.0.0.5:2905?rc=1.
	"cap+tcp":   openCAP,
	"cap+sctp":  openCAP,
	"inap+tcp":  openCAP,
	"inap+sctp": openCAP,
}

// Schemes lists the known schemes, sorted.
func Schemes() []string {
	return slices.Sorted(maps.Keys(constructors))
}

// Open returns the backend that spec names. The "sim" backend returns a
// *sim.Simulator, which a host that serves HTTP should mount (see
// Simulator); backends that hold resources implement io.Closer (see Close).
func Open(ctx context.Context, spec string, opts Options) (scp.Locator, error) {
	spec = strings.TrimSpace(spec)
	scheme, _, _ := strings.Cut(spec, ":")
	scheme = strings.ToLower(scheme)
	open, ok := constructors[scheme]
	if !ok {
		return nil, fmt.Errorf("scp: %q: unknown backend: the scheme must be one of %s", spec, strings.Join(Schemes(), ", "))
	}
	u, err := url.Parse(spec)
	if err != nil || u.Scheme == "" {
		// A bare "sim" has no scheme separator for url.Parse to find.
		u = &url.URL{Scheme: scheme}
		if err != nil && strings.Contains(spec, ":") {
			return nil, fmt.Errorf("scp: %q: %w", spec, err)
		}
	}
	u.Scheme = scheme
	if opts.Token != "" && scheme != "http" && scheme != "https" {
		// Dropping it silently would leave an operator believing the
		// backend authenticates.
		return nil, fmt.Errorf("scp: %s: the %s backend sends no token: a token is for http:// and https:// SCPs", u.Redacted(), scheme)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return open(ctx, u, opts)
}

// Simulator returns the simulator behind l when l is the "sim" backend, so
// that its host can serve the simulator's HTTP protocol:
//
//	if s, ok := locators.Simulator(loc); ok {
//		mux.Handle(sim.PathPrefix, sim.NewHandler(s, logger))
//	}
func Simulator(l scp.Locator) (*sim.Simulator, bool) {
	s, ok := l.(*sim.Simulator)
	return s, ok
}

// Close releases l's resources if it holds any. Call it after the last
// lookup, once the SIP side has stopped placing calls.
func Close(l scp.Locator) error {
	if c, ok := l.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

func openSim(_ context.Context, u *url.URL, opts Options) (scp.Locator, error) {
	if u.Host != "" || (u.Path != "" && u.Path != "/") || u.Opaque != "" || u.RawQuery != "" {
		return nil, errors.New(`scp: the sim backend takes no address or parameters: write "sim" and give the subscribers file separately`)
	}
	var subs []sim.Subscriber
	if opts.SubscribersFile != "" {
		var err error
		if subs, err = sim.LoadFile(opts.SubscribersFile); err != nil {
			return nil, fmt.Errorf("scp sim: %w", err)
		}
	}
	s, err := sim.New(sim.Config{Subscribers: subs, Logger: opts.Logger})
	if err != nil {
		return nil, fmt.Errorf("scp sim: %w", err)
	}
	opts.Logger.Info("scp simulator ready", "subscribers", s.Len(), "file", opts.SubscribersFile)
	return s, nil
}

func openHTTP(_ context.Context, u *url.URL, opts Options) (scp.Locator, error) {
	if u.User != nil {
		// net/http would send them as Basic credentials, and the spec is
		// logged.
		return nil, fmt.Errorf("scp: %s: credentials do not belong in the URL, which is logged: give a bearer token separately (b2bua serve --scp-token-file)", redactQuery(u))
	}
	timeout := opts.Timeout
	q := u.Query()
	for k := range q {
		if k == "token" {
			return nil, fmt.Errorf("scp: %s: a token does not belong in the URL, which is logged: give it separately (b2bua serve --scp-token-file)", redactQuery(u))
		}
		if k != "timeout" {
			return nil, fmt.Errorf("scp: %s: unknown parameter %q: only timeout (e.g. timeout=200ms) is known", u.Redacted(), k)
		}
	}
	if v := q.Get("timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("scp: %s: timeout: must be a positive duration such as 300ms", u.Redacted())
		}
		timeout = d
	}
	base := *u
	base.RawQuery = ""
	return scphttp.New(scphttp.Config{URL: base.String(), Timeout: timeout, Token: opts.Token, Logger: opts.Logger})
}

// redactQuery is u without its query, for a message about a query that
// holds a secret.
func redactQuery(u *url.URL) string {
	c := *u
	c.RawQuery = ""
	return c.Redacted()
}
