package sip

import (
	"context"
	"errors"
	"strings"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/registry"
)

// route gives the targets of a call to imID.
func (s *Server) route(ctx context.Context, imID string) ([]Target, error) {
	if s.cfg.Route != nil {
		return s.cfg.Route(ctx, imID)
	}
	t, err := s.router.Route(ctx, imID)
	return []Target{t}, err
}

func (s *Server) addSession(c *session) {
	s.mu.Lock()
	s.calls[c] = struct{}{}
	s.live.Store(int64(len(s.calls)))
	s.mu.Unlock()
}

func (s *Server) removeSession(c *session, keys []dialogID) {
	s.joins.remove(c)
	if c.dual != nil && c.dual.two {
		s.pathMetrics.twoPaths.Add(-1)
	}
	for _, k := range keys {
		s.dialogs.remove(k, c)
	}
	s.mu.Lock()
	delete(s.calls, c)
	s.live.Store(int64(len(s.calls)))
	s.mu.Unlock()
	select {
	case s.idle <- struct{}{}:
	default:
	}
}

func (s *Server) setDialog(key dialogID, c *session) { s.dialogs.set(key, c) }

func (s *Server) dialog(req *sipmsg.Request) *session {
	to := req.To()
	cid := req.CallID()
	if to == nil || cid == nil {
		return nil
	}
	tag, _ := to.Params.Get("tag")
	if tag == "" {
		return nil
	}
	return s.dialogs.get(dialogID{cid.Value(), tag})
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
	c := v.(*session)
	c.post(func() { c.onWireResponse(res) })
}

// onInvite handles an INVITE: in a dialog it is a re-INVITE for the call;
// otherwise it starts a call, and this goroutine is the call's loop until
// the INVITE has its final answer (session.run).
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
	if req.Contact() == nil && !rfc2543Contact(req) { // malformed_2543.go
		s.respond(tx, req, 400, "INVITE without Contact")
		return
	}
	if s.refuseShortSE(req, tx) { // sessiontimer.go
		return
	}
	// 100 at once, so the caller stops retransmitting while we route
	// (RFC 3261 §17.2.1).
	if err := tx.Respond(sipmsg.NewResponseFromRequest(req, 100, "Trying", nil)); err != nil {
		return
	}
	in, ok := s.classify(req, tx) // trunk or challenged caller (route_did.go)
	if !ok {
		return
	}
	// A conference URI joins its conference (conference.go); only a
	// caller that authenticated may, never a trunk by its address alone.
	if in.trunk == nil && in.did == nil && s.conferenceRequireRefused(req, tx) {
		return
	}
	if in.trunk == nil && in.did == nil && s.conferenceInvite(req, tx, in.caller) {
		return
	}
	dev := s.deviceOf(req, in)
	join, ok := s.joinOf(req, tx, dev, in.callee)
	if !ok {
		return
	}
	// Counted before the call exists, so that Shutdown, once it has seen
	// no live call, either waits for this one or refuses it here.
	if !s.wg.TryAdd() {
		s.respondFailure(tx, req, &Failure{Status: 503, Cause: CauseTemporaryFailure, Text: "service shutting down", RetryAfter: int(s.cfg.RetryAfter / time.Second)})
		return
	}
	if join != nil {
		defer s.wg.Done()
		s.joinLeg(join, req, tx, dev)
		return
	}
	c := newSession(s, req, tx, in.caller, in.callee)
	if c == nil {
		s.wg.Done()
		return
	}
	c.in = in
	c.initDual(dev)
	// The session holds the count until its cleanup; run returns once the
	// INVITE is answered, with the session live or over.
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
			if !s.admitUser(req, tx, user) { // ratelimit.go
				return "", false
			}
			return user, true
		}
		if errors.Is(err, registry.ErrUnavailable) {
			// The credentials could not be looked up: no failure of
			// the caller's (no lock-out count, no new challenge), and a
			// later try, or another node, may succeed.
			s.log.Warn("authentication not possible: registry unavailable", "method", req.Method, "source", req.Source(), "err", err)
			s.respondFailure(tx, req, registryFailure(err))
			return "", false
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
	if s.conferenceInDialog(req, tx) {
		return
	}
	if c := s.dialog(req); c != nil {
		c.post(func() { c.onRequest(req, nil) })
	}
}

// inDialog hands a request within a dialog to its call and waits until the
// call has answered it: sipgo ends a transaction whose handler returned.
func (s *Server) inDialog(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	if s.conferenceInDialog(req, tx) {
		return
	}
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
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(); err != nil {
			// Not ready (store or SCP down): a dispatcher in front fails
			// over (RFC 3261 §21.5.4).
			s.respondFailure(tx, req, &Failure{Status: 503, Cause: CauseTemporaryFailure, Text: "not ready: " + err.Error(), RetryAfter: 5})
			return
		}
	}
	// RFC 3261 §11.2: Accept lists the bodies we take, MESSAGE media
	// included when store-and-link is configured.
	s.respond(tx, req, 200, "",
		sipmsg.NewHeader("Allow", allowed),
		sipmsg.NewHeader("Supported", supportedHeader),
		sipmsg.NewHeader("Accept", s.messageAccept()),
		sipmsg.NewHeader("Accept-Encoding", "identity"),
		sipmsg.NewHeader("Accept-Language", "en"),
	)
}

func (s *Server) onUnsupported(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	// RFC 3261 §8.2.1: 405 lists what we do accept.
	s.respond(tx, req, 405, "", sipmsg.NewHeader("Allow", allowed))
}
