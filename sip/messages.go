package sip

import (
	"context"
	"strings"

	sipmsg "github.com/emiago/sipgo/sip"
)

// The seam between the call core and the MESSAGE service (RFC 3428). The
// service lives in its own package (sip/messaging) and the call core never
// imports it: the core hands MESSAGE requests, new registrations and failed
// calls to the small interfaces below, and the service reaches back through
// the exported methods of Server further down. The daemon wires the two.

// MessageHandler answers MESSAGE requests, in a dialog or not.
type MessageHandler interface {
	// HandleMessage answers req; an in-dialog request it passes on goes
	// back through Server.RelayInDialog.
	HandleMessage(req *sipmsg.Request, tx sipmsg.ServerTransaction)
	// Accept lists the MESSAGE bodies it takes, for the Accept header of
	// OPTIONS (RFC 3261 §11.2).
	Accept() string
}

// Notifier tells a caller why a call failed (an IM notice). CallFailed is
// called on the call's loop and must not block.
type Notifier interface {
	CallFailed(c FailedCall)
}

// RegisterObserver hears of every REGISTER that stored a binding.
type RegisterObserver interface {
	Registered(imID string)
}

// FailedCall is a call that did not reach its callee, with what a notice to
// the caller needs: where the caller's INVITE came from and who the caller
// is.
type FailedCall struct {
	Callee     string     // IM ID
	Caller     sipmsg.Uri // the caller's address (From of the INVITE)
	CallerName string     // its display name
	Contact    sipmsg.Uri // the caller's Contact
	Transport  string     // the transport the INVITE came over
	Dest       string     // where requests to the caller go
	Laddr      sipmsg.Addr
	Failure    *Failure
}

// messageHooks is what HandleMessages plugged in; all nil without it.
type messageHooks struct {
	handler  MessageHandler
	notifier Notifier
	observer RegisterObserver
}

// HandleMessages hands MESSAGE requests to h. When h is also a Notifier,
// callers whose call fails get its notice; when it is a RegisterObserver,
// it hears of each REGISTER that stored a binding. Call it before Serve.
// Without it, a MESSAGE outside a dialog gets 405 and one inside a call is
// relayed as it came.
func (s *Server) HandleMessages(h MessageHandler) {
	s.msgs.handler = h
	s.msgs.notifier, _ = h.(Notifier)
	s.msgs.observer, _ = h.(RegisterObserver)
}

func (s *Server) onMessage(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	if s.msgs.handler != nil {
		s.msgs.handler.HandleMessage(req, tx)
		return
	}
	if tag, _ := req.To().Params.Get("tag"); tag != "" {
		s.inDialog(req, tx)
		return
	}
	// RFC 3261 §8.2.1: Allow lists what is accepted here.
	s.respond(tx, req, 405, "", sipmsg.NewHeader("Allow", strings.Replace(allowed, " MESSAGE,", "", 1)))
}

// sendNotice hands a failed call to the Notifier, on the call's loop.
func (s *Server) sendNotice(c *call, f *Failure) {
	if s.msgs.notifier == nil {
		return
	}
	a := c.a
	s.msgs.notifier.CallFailed(FailedCall{
		Callee: c.callee, Caller: *a.remote.Clone(), CallerName: a.remoteNm, Contact: *a.target.Clone(),
		Transport: a.transport, Dest: a.dest, Laddr: a.laddr, Failure: f,
	})
}

// onRegistered is called after a REGISTER stored a binding of imID.
func (s *Server) onRegistered(imID string) {
	s.loginsChanged(imID) // a login that ended stops ringing (route_did.go)
	if s.msgs.observer != nil {
		s.msgs.observer.Registered(imID)
	}
}

// messageAccept is the Accept value of OPTIONS.
func (s *Server) messageAccept() string {
	if s.msgs.handler == nil {
		return "application/sdp"
	}
	return "application/sdp, " + s.msgs.handler.Accept()
}

// Domain is the IM domain the server serves.
func (s *Server) Domain() string { return s.cfg.Domain }

// UserAgent is the Server/User-Agent header value of the server.
func (s *Server) UserAgent() string { return s.cfg.UserAgent }

// Authenticate challenges a request from an untrusted source like an
// INVITE (407). It returns the identity the request speaks for; ok is
// false when it has answered already.
func (s *Server) Authenticate(req *sipmsg.Request, tx sipmsg.ServerTransaction) (user string, ok bool) {
	return s.authenticate(req, tx, "Proxy-Authorization", 407)
}

// Route routes imID like a call.
func (s *Server) Route(ctx context.Context, imID string) (Target, error) {
	return s.routeMessage(ctx, imID)
}

// RelayInDialog hands a request within a dialog to its call, which relays
// it to the other leg, and returns once the call has answered it.
func (s *Server) RelayInDialog(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	s.inDialog(req, tx)
}

// Request starts a client transaction for req with the server's own Via.
// The caller owns the transaction: it waits for the answer and terminates
// it.
func (s *Server) Request(ctx context.Context, req *sipmsg.Request) (sipmsg.ClientTransaction, error) {
	return s.cli.TransactionRequest(ctx, req, s.addVia)
}

// Via is the server's Via for a new request over transport; the branch
// marks it as ours, so it is recognised if it comes back (loop detection).
func (s *Server) Via(transport string) *sipmsg.ViaHeader { return s.via(transport) }

// LocalAddr is the socket requests over transport leave from: the UDP
// listener for UDP, so that a terminal sees the port it answers to.
func (s *Server) LocalAddr(transport string) sipmsg.Addr { return s.laddr(transport) }

// RespondFailure answers req with f: status, Reason, Retry-After, Warning.
func (s *Server) RespondFailure(tx sipmsg.ServerTransaction, req *sipmsg.Request, f *Failure) {
	s.respondFailure(tx, req, f)
}

// FailureFromResponse is the Failure a terminal's final answer carries: its
// own Reason if it sent one, else RFC 3398's mapping of the status.
func FailureFromResponse(res *sipmsg.Response) *Failure { return failureFromResponse(res) }

// CauseForStatus maps a SIP failure status to a Q.850 cause (RFC 3398
// §8.2.6.1).
func CauseForStatus(status int) int { return causeForStatus(status) }

// ReasonPhrase is the standard phrase of a status the server originates
// (RFC 3261 §21).
func ReasonPhrase(status int) string { return reasonPhrase(status) }
