package provision

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/imcall/b2bua/httpserver"
	"github.com/imcall/b2bua/ratelimit"
)

// CodeTooManyRequests answers a source locked out after too many wrong
// tokens (429).
const CodeTooManyRequests = "too_many_requests"

// Defaults of the token-guessing lock-out.
const (
	DefaultAuthFailures = 10          // wrong tokens per source within DefaultAuthLockout
	DefaultAuthLockout  = time.Minute // and how long the source is then refused
)

// newTokenLockout builds the lock-out from cfg: negative AuthFailures turns
// it off, 0 takes the defaults.
func newTokenLockout(cfg Config) *ratelimit.Lockout {
	n, d := cfg.AuthFailures, cfg.AuthLockout
	if n == 0 {
		n = DefaultAuthFailures
	}
	if d <= 0 {
		d = DefaultAuthLockout
	}
	return ratelimit.NewLockout(ratelimit.LockoutConfig{MaxFailures: n, Window: d, Lockout: d})
}

// remoteIP is the connection's peer address. Forwarding headers are not
// read: anyone could set them to dodge the lock-out.
func remoteIP(r *http.Request) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(host)
	return a, err == nil
}

// lockedOut answers 429 with Retry-After (RFC 6585 section 4) to a source
// that presented too many wrong tokens, before its token is looked at.
func (a *api) lockedOut(w http.ResponseWriter, r *http.Request) bool {
	ip, ok := remoteIP(r)
	if !ok {
		return false
	}
	d := a.fails.Locked(ip, time.Now())
	if d <= 0 {
		return false
	}
	w.Header().Set("Retry-After", strconv.Itoa(int((d+time.Second-1)/time.Second)))
	httpserver.RefuseNow(w)
	writeJSON(w, http.StatusTooManyRequests, errorBody{Error: &Error{Code: CodeTooManyRequests, Message: "too many requests with a wrong token; retry later"}})
	return true
}

// tokenFailed counts a wrong token presented by r's source.
func (a *api) tokenFailed(r *http.Request) {
	if ip, ok := remoteIP(r); ok {
		if d := a.fails.Fail(ip, time.Now()); d > 0 {
			a.log.Warn("provisioning API: source locked out after wrong tokens", "remote", ip.String(), "for", d.String())
		}
	}
}
