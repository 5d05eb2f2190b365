// Package scphttp is the http backend of scp.Locator: it asks an SCP that
// speaks the HTTP SCP protocol (scp/openapi.yaml), such as scpsim, where a
// terminal is. Lookups share a keep-alive connection pool, each has a
// deadline, refused connections are retried once with jitter, and a circuit
// breaker makes a dead SCP cost callers microseconds rather than the
// deadline.
package scphttp

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/imcall/b2bua/scp"
)

// Defaults of Config.
const (
	DefaultTimeout             = scp.DefaultTimeout
	DefaultMaxIdleConnsPerHost = 64
	DefaultRetries             = 1
	DefaultBreakerThreshold    = 5
	DefaultBreakerCooldown     = 500 * time.Millisecond
	// MaxBodyBytes bounds an answer: a locate answer is some 60 bytes, so
	// anything near this is not an SCP talking.
	MaxBodyBytes = 4096
)

// LocatePath is the protocol's locate operation, appended to Config.URL.
const LocatePath = "/scp/v1/locate"

// Config configures a Client. Only URL is required.
type Config struct {
	// URL is the SCP's base URL, e.g. http://127.0.0.1:8070; a path in it
	// is kept as a prefix of LocatePath.
	URL string
	// Timeout bounds one lookup, retries included (default
	// scp.DefaultTimeout, 2s). A shorter deadline on the caller's context
	// wins.
	Timeout time.Duration
	// MaxIdleConnsPerHost is the keep-alive pool size (default 64); it
	// should be at least the number of concurrent lookups, or connections
	// are opened and closed under load.
	MaxIdleConnsPerHost int
	// Retries is how many times a lookup is repeated after the connection
	// was refused, i.e. when nothing reached the SCP (default 1; negative:
	// never).
	Retries int
	// BreakerThreshold is how many consecutive failures open the circuit
	// (default 5).
	BreakerThreshold int
	// BreakerCooldown is how long an open circuit refuses lookups before
	// one probe is let through (default 500ms), so a recovered SCP is
	// noticed within about a second of the next lookup.
	BreakerCooldown time.Duration
	// Token, when set, is sent as "Authorization: Bearer TOKEN" (RFC 6750
	// section 2.1) on every lookup, for an SCP that authenticates the
	// B2BUA. It is never logged nor put in an error; over plain http it
	// crosses the network in clear, so use https beyond loopback.
	Token string
	// TLS configures https URLs; nil uses the system roots.
	TLS *tls.Config
	// Logger receives breaker transitions; nil discards.
	Logger *slog.Logger
	// Now is the breaker's clock (its cooldown); nil: time.Now. Lookup
	// deadlines always run on the real clock.
	Now func() time.Time
}

// Client is the http Locator. It is safe for concurrent use.
type Client struct {
	locateURL string   // with "?id=" appended
	auth      []string // the Authorization header; nil without a token
	timeout   time.Duration
	retries   int
	tr        *http.Transport
	hc        *http.Client
	br        *breaker
	log       *slog.Logger
	// refused is set while the SCP refuses our token, so that the warning
	// is logged once per episode rather than once per call.
	refused atomic.Bool
}

// New validates cfg and returns a Client. It does not contact the SCP: the
// B2BUA must start even while its SCP is down, and answer 503 meanwhile.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("scp http: URL %q: must be http://HOST:PORT or https://HOST:PORT, optionally with a path prefix", cfg.URL)
	}
	if !validToken(cfg.Token) {
		// The token itself stays out of the message: errors are logged.
		return nil, errors.New("scp http: token: must be printable ASCII without spaces (an RFC 6750 bearer token)")
	}
	if cfg.Timeout < 0 || cfg.MaxIdleConnsPerHost < 0 || cfg.BreakerThreshold < 0 || cfg.BreakerCooldown < 0 {
		return nil, errors.New("scp http: timeout, pool size and breaker settings must not be negative")
	}
	c := &Client{
		locateURL: strings.TrimSuffix(u.String(), "/") + LocatePath + "?id=",
		timeout:   or(cfg.Timeout, DefaultTimeout),
		retries:   cfg.Retries,
		log:       cfg.Logger,
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Token != "" {
		c.auth = []string{"Bearer " + cfg.Token}
	}
	if c.retries == 0 {
		c.retries = DefaultRetries
	} else if c.retries < 0 {
		c.retries = 0
	}
	c.tr = &http.Transport{
		// An SCP is addressed directly; an HTTP_PROXY meant for the web
		// must not sit in the call path.
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: c.timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     cfg.TLS,
		TLSHandshakeTimeout: c.timeout,
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: or(cfg.MaxIdleConnsPerHost, DefaultMaxIdleConnsPerHost),
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true, // answers are tiny; gzip costs more than it saves
	}
	c.hc = &http.Client{
		Transport: c.tr,
		// The protocol has no redirects; following one could leave the
		// SCP for somewhere else.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	c.br = &breaker{
		threshold: or(cfg.BreakerThreshold, DefaultBreakerThreshold),
		cooldown:  or(cfg.BreakerCooldown, DefaultBreakerCooldown),
		now:       cfg.Now,
		log:       c.log.With("scp", u.Redacted()),
	}
	if c.br.now == nil {
		c.br.now = time.Now
	}
	return c, nil
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Locate asks the SCP where mobileID is. Errors wrap scp.ErrUnknownSubscriber,
// scp.ErrTimeout or scp.ErrUnavailable (also when the circuit is open), or,
// when the caller canceled ctx, context.Canceled.
func (c *Client) Locate(ctx context.Context, mobileID string) (scp.Location, error) {
	ok, probe := c.br.allow()
	if !ok {
		return scp.Location{}, fmt.Errorf("scp http: %w: circuit open after repeated failures, next probe within %v", scp.ErrUnavailable, c.br.cooldown)
	}
	lctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	start := time.Now()
	loc, v, err := c.lookup(lctx, mobileID)
	if err != nil && v != healthy && lctx.Err() != nil {
		// Whatever the transport said, a passed deadline or a canceled
		// caller is the reason the lookup ended.
		switch {
		case ctx.Err() == context.Canceled:
			v, err = neutral, fmt.Errorf("scp http: locate %s: %w", mobileID, context.Canceled)
		case errors.Is(lctx.Err(), context.DeadlineExceeded):
			// Counted even when the caller's own deadline was the shorter
			// one: an SCP that cannot answer within what callers allow is
			// failing them, and only the breaker spares them the wait.
			v = failed
			err = fmt.Errorf("scp http: locate %s: no answer within %v: %w", mobileID, time.Since(start).Round(time.Millisecond), scp.ErrTimeout)
		}
	}
	c.br.done(probe, v)
	return loc, err
}

// lookup runs the request, retrying only when the connection was refused.
func (c *Client) lookup(ctx context.Context, id string) (scp.Location, verdict, error) {
	for attempt := 0; ; attempt++ {
		loc, v, err := c.once(ctx, id)
		if err == nil || attempt >= c.retries || !notSent(err) || ctx.Err() != nil {
			return loc, v, err
		}
		// Full jitter around 10ms: clients that lost the SCP together do
		// not come back together.
		wait := 5*time.Millisecond + rand.N(10*time.Millisecond)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < 2*wait {
			return loc, v, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return loc, v, err
		case <-t.C:
		}
	}
}

// notSent reports whether err happened while dialing, so the request never
// left this host and repeating it cannot repeat anything at the SCP.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func (c *Client) once(ctx context.Context, id string) (scp.Location, verdict, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.locateURL+url.QueryEscape(id), nil)
	if err != nil {
		return scp.Location{}, neutral, fmt.Errorf("scp http: locate %s: %w: %v", id, scp.ErrUnavailable, err)
	}
	req.Header["Accept"] = acceptJSON
	if c.auth != nil {
		req.Header["Authorization"] = c.auth
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return scp.Location{}, failed, fmt.Errorf("scp http: locate %s: %w: %w", id, scp.ErrUnavailable, unwrapURL(err))
	}
	defer func() {
		// Draining lets the connection go back to the pool; a body
		// longer than this is not worth keeping the connection for.
		io.Copy(io.Discard, io.LimitReader(resp.Body, MaxBodyBytes))
		resp.Body.Close()
	}()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBodyBytes+1))
	if err != nil {
		return scp.Location{}, failed, fmt.Errorf("scp http: locate %s: %w: reading answer: %w", id, scp.ErrUnavailable, err)
	}
	bad := func(v verdict, format string, args ...any) (scp.Location, verdict, error) {
		return scp.Location{}, v, fmt.Errorf("scp http: locate %s: %w: %s", id, scp.ErrUnavailable, fmt.Sprintf(format, args...))
	}
	if len(body) > MaxBodyBytes {
		return bad(failed, "answer %s larger than %d bytes", resp.Status, MaxBodyBytes)
	}
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusNotFound:
		var eb errorBody
		if isJSON(resp) && json.Unmarshal(body, &eb) == nil && eb.Error.Code == "unknown_subscriber" {
			return scp.Location{}, healthy, fmt.Errorf("scp http: locate %s: %w", id, scp.ErrUnknownSubscriber)
		}
		// A 404 without the protocol's code is most likely a wrong URL;
		// calling it an unknown subscriber would hide the misconfiguration.
		return bad(failed, "404 Not Found without code unknown_subscriber: is %s an SCP?", strings.TrimSuffix(c.locateURL, "?id="))
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		// Counted as a failure: until the operator fixes the token every
		// lookup will be refused the same way, and the breaker spares the
		// calls meanwhile the round trip.
		var eb errorBody
		json.Unmarshal(body, &eb)
		if !c.refused.Swap(true) {
			// The callers' log says only "SCP unavailable"; this says why.
			c.log.Warn("SCP refused our token: lookups fail until the token is fixed", "status", resp.Status, "token_configured", c.auth != nil, "message", eb.Error.Message)
		}
		if c.auth == nil {
			return bad(failed, "SCP refused our token: none is configured and the SCP requires one (%s %s)", resp.Status, eb.Error.Message)
		}
		return bad(failed, "SCP refused our token: %s %s", resp.Status, eb.Error.Message)
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		var eb errorBody
		json.Unmarshal(body, &eb)
		return bad(neutral, "SCP refused the request: %s %s", resp.Status, eb.Error.Message)
	default:
		return bad(failed, "SCP answered %s", resp.Status)
	}
	if !isJSON(resp) {
		return bad(failed, "answer has Content-Type %q, want application/json", resp.Header.Get("Content-Type"))
	}
	var a answer
	if err := json.Unmarshal(body, &a); err != nil {
		return bad(failed, "answer is not a JSON location object: %v", err)
	}
	loc, err := a.location()
	if err != nil {
		return bad(failed, "%v", err)
	}
	if c.refused.Swap(false) {
		c.log.Info("SCP accepts our token again")
	}
	return loc, healthy, nil
}

var acceptJSON = []string{"application/json"}

// validToken reports whether t can travel in an Authorization header: no
// control characters (a newline would split the header) and no spaces. An
// empty token means none.
func validToken(t string) bool {
	for i := 0; i < len(t); i++ {
		if t[i] <= ' ' || t[i] >= 0x7f {
			return false
		}
	}
	return true
}

type answer struct {
	State *string `json:"state"`
	Addr  *string `json:"addr"`
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// location validates an answer as scp/openapi.yaml specifies it.
func (a answer) location() (scp.Location, error) {
	if a.State == nil {
		return scp.Location{}, errors.New(`answer has no "state"`)
	}
	st, err := scp.ParseState(*a.State)
	if err != nil {
		return scp.Location{}, fmt.Errorf("answer has unknown state %q: want online, busy or absent", *a.State)
	}
	loc := scp.Location{State: st}
	if a.Addr != nil {
		ap, err := netip.ParseAddrPort(*a.Addr)
		switch {
		case err != nil:
			return scp.Location{}, fmt.Errorf("answer has bad addr %q: want IP:PORT", *a.Addr)
		case ap.Port() == 0 || ap.Addr().IsUnspecified() || ap.Addr().IsMulticast():
			return scp.Location{}, fmt.Errorf("answer has bad addr %q: want a unicast address and a port 1-65535", *a.Addr)
		}
		loc.Addr = ap
	}
	if st == scp.Online && !loc.Addr.IsValid() {
		return scp.Location{}, errors.New(`answer says online but has no "addr"`)
	}
	return loc, nil
}

func isJSON(resp *http.Response) bool {
	mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	return err == nil && mt == "application/json"
}

// unwrapURL drops *url.Error's repetition of the method and URL, which the
// caller's message already names.
func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Close releases the pool's idle connections. Lookups after Close still work
// but open new connections.
func (c *Client) Close() error {
	c.tr.CloseIdleConnections()
	return nil
}

var _ scp.Locator = (*Client)(nil)
