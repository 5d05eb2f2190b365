package sip

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/registry"
)

// Number-to-user routing: a call from a trunk (known by its source
// address, never challenged) or from an authenticated caller names a phone
// number; the number's owner is rung on every client logged in now, in
// parallel (the session's fork), else on the active legacy terminal when
// the number says so, else the caller gets 480 and the user a missed-call
// notice at the next login.

// inbound is what a new INVITE calls and who it is from.
type inbound struct {
	caller string // the B-leg's From user: an IM ID, a number or "anonymous"
	callee string // the IM ID rung
	// trunk is the trunk the INVITE came from; nil for a caller that
	// authenticated (or a trusted peer).
	trunk *registry.Trunk
	// did is the number called; nil for a call to an IM ID.
	did      *registry.DID
	identity TrunkIdentity // the trunk's caller, for the missed-call notice
}

// classify answers what an INVITE outside a dialog calls: a trunk's call
// to a DID, or a challenged caller's call to an IM ID or to a DID. ok is
// false when it has answered the INVITE already.
func (s *Server) classify(req *sipmsg.Request, tx sipmsg.ServerTransaction) (inbound, bool) {
	if s.trunks != nil || s.cfg.DualPath.Trunks != nil {
		trunk, isTrunk, err := s.trunkOf(req)
		if err != nil {
			s.log.Warn("trunk list unavailable", "err", err)
			s.respondFailure(tx, req, &Failure{Status: 503, Cause: CauseTemporaryFailure, Text: "registry unavailable", RetryAfter: 30, Err: err})
			return inbound{}, false
		}
		if isTrunk {
			return s.classifyTrunk(req, tx, trunk)
		}
	}
	caller, ok := s.authenticate(req, tx, "Proxy-Authorization", 407)
	if !ok {
		return inbound{}, false
	}
	if s.trunks != nil && isNumberURI(req.Recipient) {
		// Not from a trunk: only an international number identifies a
		// DID, there being no country to complete a national one with.
		in, ok := s.lookupDID(req, tx, registry.Trunk{})
		in.caller = caller
		return in, ok
	}
	callee, err := registry.ParseIMID(req.Recipient.User)
	if err != nil {
		s.respondFailure(tx, req, &Failure{Status: 404, Cause: CauseUnallocated, Text: "not an IM user: " + req.Recipient.User})
		return inbound{}, false
	}
	return inbound{caller: caller, callee: callee}, true
}

// trunkOf gives the trunk whose ranges hold the INVITE's source address.
func (s *Server) trunkOf(req *sipmsg.Request) (registry.Trunk, bool, error) {
	ap, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		return registry.Trunk{}, false, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.TxTimeout)
	defer cancel()
	if s.trunks == nil {
		t, ok := s.dualTrunk(ctx, req.Source())
		return t, ok, nil
	}
	return s.trunks.match(ctx, ap.Addr())
}

// classifyTrunk takes a trunk's INVITE: never challenged (the trunk is
// known by its address), the caller from P-Asserted-Identity or From as
// the trunk is configured (RFC 3325 §9.1), the called number normalised
// with the trunk's country code.
func (s *Server) classifyTrunk(req *sipmsg.Request, tx sipmsg.ServerTransaction, t registry.Trunk) (inbound, bool) {
	var in inbound
	// Digits alone are a number (a national one): a trunk dials numbers.
	if imID, err := registry.ParseIMID(req.Recipient.User); err == nil && !isNumberURI(req.Recipient) && strings.Trim(imID, "0123456789") != "" {
		// An IM user named by a trunk: a device's carrier path
		// (dualpath.go), its caller the number the trunk asserts.
		in.callee = imID
	} else {
		var ok bool
		if s.cfg.Numbers == nil {
			s.respondFailure(tx, req, &Failure{Status: 404, Cause: CauseUnallocated, Text: "not an IM user: " + req.Recipient.User})
			return in, false
		}
		if in, ok = s.lookupDID(req, tx, t); !ok {
			return in, false
		}
	}
	in.trunk = &t
	in.identity = TrunkCaller(req, t)
	switch {
	case in.identity.Private:
		// RFC 3325 §9.3: the identity goes no further than us.
		in.caller = "anonymous"
	case in.identity.Number != "":
		in.caller = in.identity.Number
	default:
		in.caller = "anonymous"
		if from := req.From(); from != nil && from.Address.User != "" {
			in.caller = from.Address.User
		}
	}
	return in, true
}

// lookupDID finds the owner of the number the Request-URI names: 404
// with Q.850 cause 1 "unallocated number" for a number nobody owns, or
// for a Request-URI that names no number at all.
func (s *Server) lookupDID(req *sipmsg.Request, tx sipmsg.ServerTransaction, t registry.Trunk) (inbound, bool) {
	number, err := CalledNumber(req.Recipient, t)
	if err != nil {
		s.respondFailure(tx, req, &Failure{Status: 404, Cause: CauseUnallocated, Text: "not a number: " + req.Recipient.User, Err: err})
		return inbound{}, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.TxTimeout)
	d, err := s.cfg.Numbers.DID(ctx, number)
	cancel()
	switch {
	case errors.Is(err, registry.ErrNotFound):
		s.respondFailure(tx, req, &Failure{Status: 404, Cause: CauseUnallocated, Text: "number not assigned: " + number, Err: err})
		return inbound{}, false
	case err != nil:
		s.respondFailure(tx, req, &Failure{Status: 503, Cause: CauseTemporaryFailure, Text: "registry unavailable", RetryAfter: 30, Err: err})
		return inbound{}, false
	}
	return inbound{callee: d.IMID, did: &d}, true
}

// isNumberURI tells whether a Request-URI names a phone number rather than
// an IM user: a tel URI (RFC 3966), a sip URI with user=phone (RFC 3261
// §19.1.1) or a user part in E.164 with its '+' (IM IDs have no '+').
func isNumberURI(u sipmsg.Uri) bool {
	if u.Scheme == "tel" {
		return true
	}
	if v, ok := u.UriParams.Get("user"); ok && strings.EqualFold(v, "phone") {
		return true
	}
	return strings.HasPrefix(u.User, "+")
}

// routeTargets gives where the session's call goes.
func (c *session) routeTargets(ctx context.Context) ([]Target, error) {
	if c.in.did == nil {
		return c.s.route(ctx, c.callee)
	}
	return c.s.routeDID(ctx, c.in)
}

// routeDID rings every client the number's owner is logged in on now.
func (s *Server) routeDID(ctx context.Context, in inbound) ([]Target, error) {
	d := in.did
	var bs []registry.Binding
	if s.cfg.Bindings != nil {
		var err error
		if bs, err = s.cfg.Bindings.Bindings(ctx, d.IMID, s.router.now()); err != nil {
			return nil, registryFailure(err)
		}
	}
	var ts []Target
	for _, b := range bs {
		t, err := bindingTarget(b)
		if err != nil {
			s.log.Info("client not rung", "im", d.IMID, "client", b.Key(), "err", err)
			continue
		}
		ts = append(ts, t)
	}
	if len(ts) > 0 {
		return ts, nil
	}
	if d.Fallback == registry.FallbackTerminal {
		t, err := s.router.Route(ctx, d.IMID)
		return []Target{t}, err
	}
	s.missedCall(ctx, in)
	// Q.850 20 "subscriber absent": the user exists and is not logged in.
	return nil, &Failure{Status: 480, Cause: CauseSubscriberAbsent, Text: "user not logged in"}
}

// bindingTarget is the target of one logged-in client: its Contact,
// reached at the address its REGISTER came from (a client behind NAT
// registers a private Contact that only its source address reaches, RFC
// 5626 §5).
func bindingTarget(b registry.Binding) (Target, error) {
	t := Target{
		// A client logged in for IM renders text; it has no terminal
		// record of its own.
		Terminal: registry.Terminal{ID: b.TerminalID, IMID: b.IMID, Kind: registry.Smart, Caps: registry.CapAudio | registry.CapText},
		Client:   b.Key(),
		Expires:  b.Expires,
	}
	var u sipmsg.Uri
	if err := sipmsg.ParseUri(strings.Trim(b.Contact, "<>"), &u); err != nil || u.Host == "" || (u.Scheme != "sip" && u.Scheme != "sips") {
		if err == nil {
			err = fmt.Errorf("contact %q is not a SIP URI with a host", b.Contact)
		}
		return t, &Failure{Status: 480, Cause: CauseSubscriberAbsent, Text: "terminal registered an unusable contact", Err: err}
	}
	t.URI = u
	t.Transport = strings.ToUpper(b.Transport)
	if tp, ok := u.UriParams.Get("transport"); ok && t.Transport == "" {
		t.Transport = strings.ToUpper(tp)
	}
	if t.Transport == "" {
		t.Transport = "UDP"
	}
	t.Dest = b.Source
	if t.Dest == "" {
		t.Dest = u.HostPort()
	}
	return t, nil
}

// routeMessage routes a MESSAGE to imID: the active terminal, or, for a
// user who has none that can take it now, the newest client the user is
// logged in on, so that a notice kept for the user reaches the next login.
func (s *Server) routeMessage(ctx context.Context, imID string) (Target, error) {
	t, err := s.router.Route(ctx, imID)
	if err == nil || AsFailure(err).Status != 480 || s.cfg.Bindings == nil {
		return t, err
	}
	bs, berr := s.cfg.Bindings.Bindings(ctx, imID, s.router.now())
	if berr != nil {
		return t, err
	}
	for _, b := range bs {
		if ct, cerr := bindingTarget(b); cerr == nil {
			return ct, nil
		}
	}
	return t, err
}

// MissedCall is a call to a number nobody could take: no client of its
// owner was logged in.
type MissedCall struct {
	Callee     string // the owner's IM ID
	Number     string // the number called, E.164
	Caller     string // the caller's number or IM ID; "" when withheld
	CallerName string
	At         time.Time
}

// MissedCallNotifier keeps a notice of a missed call for its callee, to be
// delivered when one of the callee's clients next logs in. The MESSAGE
// service passed to HandleMessages implements it. CallMissed runs off the
// call's loop and may wait for its store until ctx ends.
type MissedCallNotifier interface {
	CallMissed(ctx context.Context, m MissedCall) error
}

func (s *Server) missedCall(ctx context.Context, in inbound) {
	n, ok := s.msgs.handler.(MissedCallNotifier)
	if !ok {
		return
	}
	m := MissedCall{Callee: in.callee, Number: in.did.Number, Caller: in.caller, At: time.Now().UTC()}
	if in.trunk != nil && !in.identity.Private {
		m.CallerName = in.identity.Display
	}
	if m.Caller == "anonymous" {
		m.Caller = ""
	}
	if err := n.CallMissed(ctx, m); err != nil {
		s.log.Warn("missed-call notice not kept", "im", in.callee, "err", err)
	}
}

// watchBranches makes every branch towards a logged-in client end when
// the client's login does, so that a registration that expires mid-ring
// does not leave a branch ringing.
func (c *session) watchBranches() {
	for _, l := range c.uac {
		if !l.target.Expires.IsZero() && l.trying() {
			c.watchExpiry(l, l.target.Expires)
		}
	}
}

// loginsChanged has every call ringing imID's clients check their logins
// again: a REGISTER of imID may have ended one (Expires: 0) or moved it.
func (s *Server) loginsChanged(imID string) {
	s.mu.Lock()
	var ringing []*session
	for c := range s.calls {
		if c.callee == imID { // set before the session is listed, never changed
			ringing = append(ringing, c)
		}
	}
	s.mu.Unlock()
	for _, c := range ringing {
		c.post(c.recheckLogins)
	}
}

func (c *session) recheckLogins() {
	if c.in.did == nil || c.winner != nil || c.ending {
		return
	}
	for _, l := range c.uac {
		if l.target.Client != "" && l.trying() {
			c.onBranchExpiry(l)
		}
	}
}

// watchExpiry checks l's login again at at. A login that outlasts the
// ring timeout needs no timer: the ring timeout ends the branch first, and
// a timer left armed would keep the ended session in memory until it fires.
func (c *session) watchExpiry(l *uacLeg, at time.Time) {
	d := at.Sub(c.s.router.now())
	if d >= c.s.cfg.RingTimeout {
		return
	}
	c.after(d, func() { c.onBranchExpiry(l) })
}

// onBranchExpiry asks the registry whether l's client is still logged in:
// it may have refreshed its registration since the call was routed.
func (c *session) onBranchExpiry(l *uacLeg) {
	if !l.trying() || c.winner != nil || c.ending || c.s.cfg.Bindings == nil {
		return
	}
	c.s.wg.Add(1)
	go func() {
		defer c.s.wg.Done()
		ctx, cancel := context.WithTimeout(c.ctx, c.s.cfg.TxTimeout)
		bs, err := c.s.cfg.Bindings.Bindings(ctx, c.callee, c.s.router.now())
		cancel()
		c.post(func() { c.onBranchChecked(l, bs, err) })
	}()
}

func (c *session) onBranchChecked(l *uacLeg, bs []registry.Binding, err error) {
	if !l.trying() || c.winner != nil || c.ending {
		return
	}
	if err != nil {
		// The registry cannot say: the branch rings on, bounded by the
		// ring timeout.
		c.log.Warn("client login not re-checked", "leg", l.id, "err", err)
		return
	}
	// bs holds only logins live now. One that moved to another address
	// is rung there on the next call, not on this branch.
	for _, b := range bs {
		if b.Key() == l.target.Client && b.Source == l.target.Dest {
			if !b.Expires.Equal(l.target.Expires) {
				l.target.Expires = b.Expires
				c.watchExpiry(l, b.Expires)
			}
			return
		}
	}
	c.log.Info("client logged out while ringing: branch CANCELed", "leg", l.id, "client", l.target.Client)
	c.dropBranch(l, &Failure{Status: 480, Cause: CauseSubscriberAbsent, Text: "client logged out"})
}

// dropBranch CANCELs a branch that can no longer take the call; the call
// fails once no branch is left.
func (c *session) dropBranch(l *uacLeg, f *Failure) {
	c.cancelUAC(l)
	c.media.Release(l.id)
	c.forkFailure = betterFailure(c.forkFailure, f)
	if c.policy.legEnded(c, &l.leg) {
		c.stopRing()
		c.fail(c.forkFailure, true)
	}
}
