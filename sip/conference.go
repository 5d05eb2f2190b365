package sip

import (
	"strings"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/registry"
)

// The seam between the call core and conference calls: an INVITE to a
// conference URI (sip:conf-ID@DOMAIN), once authenticated like any call,
// goes to the conference service (sip/confcall), which answers it itself
// and owns its dialog; requests in such a dialog go there too.

// ConferenceHandler takes the calls to conference URIs.
type ConferenceHandler interface {
	// HandleInvite answers an initial INVITE to a conference URI from the
	// authenticated caller.
	HandleInvite(req *sipmsg.Request, tx sipmsg.ServerTransaction, caller string)
	// HandleInDialog answers req if it belongs to one of its dialogs and
	// reports whether it did.
	HandleInDialog(req *sipmsg.Request, tx sipmsg.ServerTransaction) bool
}

// ConferencePrefix starts the user part of a conference URI.
const ConferencePrefix = registry.ReservedPrefix

// HandleConferences hands calls to conference URIs to h. Call it before
// Serve. Without it, conf-ID is routed like any IM ID.
func (s *Server) HandleConferences(h ConferenceHandler) { s.confs = h }

// conferenceInvite hands an authenticated INVITE to a conference URI to
// the conference service; false when it is not one.
func (s *Server) conferenceInvite(req *sipmsg.Request, tx sipmsg.ServerTransaction, caller string) bool {
	if s.confs == nil || !strings.HasPrefix(req.Recipient.User, ConferencePrefix) {
		return false
	}
	s.confs.HandleInvite(req, tx, caller)
	return true
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
