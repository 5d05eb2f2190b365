package sip

import (
	"strings"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/registry"
)

// The seam between the call core and conference calls: an INVITE to a
// conference URI (sip:conf-ID@DOMAIN) or to the factory URI
// (sip:conference@DOMAIN, RFC 4579 §5.2), and a REFER to a conference URI
// (RFC 4579 §5.5), once authenticated like any call, go to the conference
// service (sip/confcall), which answers them itself and owns their
// dialogs; requests in such a dialog go there too.

// ConferenceHandler takes the calls to conference URIs.
type ConferenceHandler interface {
	// HandleInvite answers an initial INVITE to a conference URI from the
	// authenticated caller.
	HandleInvite(req *sipmsg.Request, tx sipmsg.ServerTransaction, caller string)
	// HandleRefer answers a REFER outside a dialog to a conference URI
	// from the authenticated caller.
	HandleRefer(req *sipmsg.Request, tx sipmsg.ServerTransaction, caller string)
	// HandleInDialog answers req if it belongs to one of its dialogs and
	// reports whether it did.
	HandleInDialog(req *sipmsg.Request, tx sipmsg.ServerTransaction) bool
}

// ConferencePrefix starts the user part of a conference URI.
const ConferencePrefix = registry.ReservedPrefix

// ConferenceFactory is the user part of the factory URI.
const ConferenceFactory = registry.FactoryUser

func isConferenceURI(u sipmsg.Uri) bool {
	return strings.HasPrefix(u.User, ConferencePrefix) || u.User == ConferenceFactory
}

// HandleConferences hands calls to conference URIs to h. Call it before
// Serve. Without it, conf-ID is routed like any IM ID.
func (s *Server) HandleConferences(h ConferenceHandler) { s.confs = h }

// conferenceInvite hands an authenticated INVITE to a conference URI to
// the conference service; false when it is not one.
func (s *Server) conferenceInvite(req *sipmsg.Request, tx sipmsg.ServerTransaction, caller string) bool {
	if s.confs == nil || !isConferenceURI(req.Recipient) {
		return false
	}
	s.confs.HandleInvite(req, tx, caller)
	return true
}

// onRefer takes REFER: in a conference call's dialog, or to a conference
// URI, the conference service's; the call core places no call by REFER,
// so any other gets 405.
func (s *Server) onRefer(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	if tag, _ := req.To().Params.Get("tag"); tag != "" {
		if !s.conferenceInDialog(req, tx) {
			s.onUnsupported(req, tx)
		}
		return
	}
	if s.confs == nil || !strings.HasPrefix(req.Recipient.User, ConferencePrefix) {
		s.onUnsupported(req, tx)
		return
	}
	caller, ok := s.authenticate(req, tx, "Proxy-Authorization", 407)
	if !ok {
		return
	}
	s.confs.HandleRefer(req, tx, caller)
}

// conferenceInDialog hands a request in a conference call's dialog to the
// conference service; false when it is not one.
func (s *Server) conferenceInDialog(req *sipmsg.Request, tx sipmsg.ServerTransaction) bool {
	return s.confs != nil && s.confs.HandleInDialog(req, tx)
}

// ReasonCause is the Q.850 cause of a Reason header value (RFC 3326), 0
// when it carries none.
func ReasonCause(v string) int {
	c, _ := parseReasonCause(v)
	return c
}

// WriteRequest sends req outside any transaction, with the server's own
// Via: the ACK of a 2xx (RFC 3261 §13.2.2.4).
func (s *Server) WriteRequest(req *sipmsg.Request) error {
	return s.cli.WriteRequest(req, s.addVia)
}
