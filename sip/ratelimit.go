package sip

import (
	"net/netip"
	"strconv"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/ratelimit"
)

// Limits are the per-source limits on requests from sources that are not
// trusted (Config.Trusted is exempt). The zero value limits nothing.
type Limits struct {
	// Rate and Burst are a token bucket per source address (IPv6: per
	// /64): every request outside an existing dialog takes a token except
	// ACK and CANCEL; over the limit it is answered 503 with Retry-After
	// (RFC 3261 §21.5.4). Rate <= 0: no limit.
	Rate  float64
	Burst int
	// AuthFailures failed digest authentications from one source within
	// AuthWindow lock it out for AuthLockout: every request of it that
	// needs authentication is answered 403 without checking. <= 0: never.
	AuthFailures int
	AuthWindow   time.Duration // 0: one minute
	AuthLockout  time.Duration // 0: five minutes
	MaxSources   int           // sources tracked by each limit; 0: ratelimit.DefaultMaxSources
}

// limiters are a Server's live limits.
type limiters struct {
	req  *ratelimit.Limiter
	auth *ratelimit.Lockout
}

func newLimiters(l Limits) limiters {
	if l.AuthLockout <= 0 {
		l.AuthLockout = 5 * time.Minute
	}
	return limiters{
		req:  ratelimit.New(ratelimit.Config{Rate: l.Rate, Burst: l.Burst, MaxSources: l.MaxSources}),
		auth: ratelimit.NewLockout(ratelimit.LockoutConfig{MaxFailures: l.AuthFailures, Window: l.AuthWindow, Lockout: l.AuthLockout, MaxSources: l.MaxSources}),
	}
}

// limitedSource is the address a request's limits apply to; ok is false
// for a trusted source or one that cannot be read.
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
	return a, true
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
	s.respond(tx, req, 503, "rate limited", sipmsg.NewHeader("Retry-After", strconv.Itoa(secs)))
	return false
}

// authLockedOut answers 403 to a request that needs authentication from a
// source locked out after too many failures, without checking its
// credentials: guessing is stopped and the answer says nothing about the
// user or the password.
func (s *Server) authLockedOut(req *sipmsg.Request, tx sipmsg.ServerTransaction) bool {
	src, ok := s.limitedSource(req)
	if !ok || s.lim.auth.Locked(src, time.Now()) == 0 {
		return false
	}
	s.respond(tx, req, 403, "too many failed authentications")
	return true
}

// authResult records the outcome of a digest check of req's source.
func (s *Server) authResult(req *sipmsg.Request, ok bool) {
	src, limited := s.limitedSource(req)
	if !limited || !s.lim.auth.Enabled() {
		return
	}
	now := time.Now()
	if ok {
		s.lim.auth.Succeed(src, now)
		return
	}
	if d := s.lim.auth.Fail(src, now); d > 0 {
		s.log.Warn("source locked out after failed authentications", "source", src.String(), "for", d.Round(time.Second).String())
	}
}
