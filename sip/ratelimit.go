package sip

import (
	"net/netip"
	"strconv"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/ratelimit"
	"github.com/imcall/b2bua/sip/digest"
)

// Limits are the per-source limits on requests from sources that are not
// trusted (Config.Trusted is exempt). A request through a declared proxy
// (Config.Proxies) counts against the address the proxy reports for its
// sender, never against the proxy. The zero value limits nothing.
type Limits struct {
	// Rate and Burst are a token bucket per source address (IPv6: per
	// /64): every request outside an existing dialog takes a token except
	// ACK and CANCEL; over the limit it is answered 503 with Retry-After
	// (RFC 3261 §21.5.4). Rate <= 0: no limit.
	Rate  float64
	Burst int
	// UserRate and UserBurst are a token bucket per authenticated user:
	// every request that passes digest authentication takes a token from
	// its user's bucket, from whatever address it comes, so that a user
	// behind a declared proxy, or one spreading over many addresses,
	// still has a limit; over it the answer is 503 with Retry-After.
	// Trusted sources are not authenticated and not counted. <= 0: no
	// limit.
	UserRate  float64
	UserBurst int
	// AuthFailures failed digest authentications as one user name from
	// one source within AuthWindow lock that pair out for AuthLockout:
	// its requests are answered 403 without checking. The user is locked
	// out from that source only, so nobody elsewhere can lock a user out
	// by guessing its password. <= 0: never.
	AuthFailures int
	// AuthSourceFailures failed authentications from one source, whatever
	// the user names, within AuthWindow restrict it for AuthLockout to the
	// user names that authenticated from it within AuthLockout: guessing
	// through many names stops, and the users already signed in behind
	// that address (a NAT, an undeclared proxy) go on. <= 0: no such limit.
	AuthSourceFailures int
	AuthWindow         time.Duration // 0: one minute
	AuthLockout        time.Duration // 0: five minutes
	MaxSources         int           // keys tracked by each limit; 0: ratelimit.DefaultMaxSources
}

// authKey is what the per-user lock-out counts: a user name as sent (known
// or not, so that the answers do not tell which exist) from one source.
type authKey struct {
	user string
	src  netip.Addr
}

// limiters are a Server's live limits.
type limiters struct {
	req    *ratelimit.Limiter
	user   *ratelimit.KeyedLimiter[string]
	pair   *ratelimit.KeyedLockout[authKey]
	source *ratelimit.Lockout
	good   *ratelimit.Recent[authKey] // authenticated lately
}

func newLimiters(l Limits) limiters {
	if l.AuthLockout <= 0 {
		l.AuthLockout = 5 * time.Minute
	}
	lc := ratelimit.LockoutConfig{MaxFailures: l.AuthFailures, Window: l.AuthWindow, Lockout: l.AuthLockout, MaxSources: l.MaxSources}
	sc := lc
	sc.MaxFailures = l.AuthSourceFailures
	return limiters{
		req:  ratelimit.New(ratelimit.Config{Rate: l.Rate, Burst: l.Burst, MaxSources: l.MaxSources}),
		user: ratelimit.NewKeyed[string](ratelimit.Config{Rate: l.UserRate, Burst: l.UserBurst, MaxSources: l.MaxSources}, nil),
		pair: ratelimit.NewKeyedLockout(lc, func(k authKey) authKey {
			k.src = ratelimit.Key(k.src)
			return k
		}),
		source: ratelimit.NewLockout(sc),
		good:   ratelimit.NewRecent[authKey](l.AuthLockout, l.MaxSources),
	}
}

func (l limiters) authEnabled() bool { return l.pair.Enabled() || l.source.Enabled() }

// limitedSource is the address a request's limits apply to; ok is false
// for a trusted source or one that cannot be read. For a request from a
// declared proxy it is the address the proxy reports for the sender: the
// bottom Via's received parameter, else its sent-by host (RFC 3261
// §18.2.1: the proxy adds received when sent-by is not the address the
// request came from). A proxy that reports nothing readable gives no
// address: it is challenged, but its users cannot be told apart, and
// limiting them as one would lock them all out.
func (s *Server) limitedSource(req *sipmsg.Request) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		return netip.Addr{}, false
	}
	a := ap.Addr().Unmap()
	for _, p := range s.cfg.Trusted {
		if p.Contains(a) {
			return netip.Addr{}, false
		}
	}
	for _, p := range s.cfg.Proxies {
		if p.Contains(a) {
			return reportedSender(req)
		}
	}
	return a, true
}

// reportedSender is the address in the bottom Via: the sender's own hop.
func reportedSender(req *sipmsg.Request) (netip.Addr, bool) {
	vias := req.GetHeaders("Via")
	if len(vias) == 0 {
		return netip.Addr{}, false
	}
	v, ok := vias[len(vias)-1].(*sipmsg.ViaHeader)
	if !ok {
		return netip.Addr{}, false
	}
	host := v.Host
	if r, ok := v.Params.Get("received"); ok && r != "" {
		host = r
	}
	if len(host) > 2 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// admit takes a token for req from its source's bucket and answers 503
// with Retry-After when there is none. ACK and CANCEL, and requests within
// a dialog we hold, always pass: refusing them would only break calls
// already admitted.
func (s *Server) admit(req *sipmsg.Request, tx sipmsg.ServerTransaction) bool {
	if !s.lim.req.Enabled() || req.IsAck() || req.IsCancel() {
		return true
	}
	src, ok := s.limitedSource(req)
	if !ok {
		return true
	}
	if s.dialog(req) != nil {
		return true
	}
	allowed, wait := s.lim.req.Allow(src, time.Now())
	if allowed {
		return true
	}
	secs := int((wait + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	s.log.Debug("request over the rate limit", "method", req.Method, "source", src.String())
	s.cfg.Observer.LimitEvent(LimitRate)
	s.respond(tx, req, 503, "rate limited", sipmsg.NewHeader("Retry-After", strconv.Itoa(secs)))
	return false
}

// authLockedOut answers 403 to a request whose credentials are for a user
// name locked out from its source, or that come from a source restricted
// after many failures and name a user that has not authenticated from it
// lately. Credentials are not checked, so guessing stops, and the answer
// is the same whether the user exists and whatever the password.
func (s *Server) authLockedOut(req *sipmsg.Request, tx sipmsg.ServerTransaction, credentials string) bool {
	if !s.lim.authEnabled() {
		return false
	}
	src, ok := s.limitedSource(req)
	if !ok {
		return false
	}
	now := time.Now()
	k := authKey{user: digest.Username(credentials), src: ratelimit.Key(src)}
	locked := s.lim.pair.Locked(k, now) > 0 ||
		(s.lim.source.Locked(src, now) > 0 && !s.lim.good.Has(k, now))
	if !locked {
		return false
	}
	s.cfg.Observer.LimitEvent(LimitLockedOut)
	s.respond(tx, req, 403, "too many failed authentications")
	return true
}

// authResult records the outcome of a digest check of req. A success never
// clears failures: one account's success says nothing about guesses at
// another's, and an attacker could interleave its own to reset the count.
func (s *Server) authResult(req *sipmsg.Request, credentials string, ok bool) {
	if !s.lim.authEnabled() {
		return
	}
	src, limited := s.limitedSource(req)
	if !limited {
		return
	}
	now := time.Now()
	k := authKey{user: digest.Username(credentials), src: ratelimit.Key(src)}
	if ok {
		s.lim.good.Add(k, now)
		return
	}
	if d := s.lim.pair.Fail(k, now); d > 0 {
		s.cfg.Observer.LimitEvent(LimitLockoutStarted)
		s.log.Warn("user name locked out from a source after failed authentications", "source", src.String(), "for", d.Round(time.Second).String())
	}
	if d := s.lim.source.Fail(src, now); d > 0 {
		s.cfg.Observer.LimitEvent(LimitLockoutStarted)
		s.log.Warn("source restricted to recently authenticated users after failed authentications", "source", src.String(), "for", d.Round(time.Second).String())
	}
}

// admitUser takes a token for req from the bucket of user, who has just
// authenticated, and answers 503 with Retry-After when there is none.
func (s *Server) admitUser(req *sipmsg.Request, tx sipmsg.ServerTransaction, user string) bool {
	allowed, wait := s.lim.user.Allow(user, time.Now())
	if allowed {
		return true
	}
	secs := max(1, int((wait+time.Second-1)/time.Second))
	s.log.Debug("request over the user's rate limit", "method", req.Method, "user", user)
	s.respond(tx, req, 503, "rate limited", sipmsg.NewHeader("Retry-After", strconv.Itoa(secs)))
	return false
}
