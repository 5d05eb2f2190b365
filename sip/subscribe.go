package sip

import (
	sipmsg "github.com/emiago/sipgo/sip"
)

// The seam between the call core and event subscriptions (RFC 6665): the
// conference event package (RFC 4575) lives in its own package
// (sip/confevent) and reaches back through the Server's exported methods,
// as the MESSAGE service does (messages.go).

// SubscribeHandler answers SUBSCRIBE requests, initial or in a
// subscription's dialog (a refresh, an unsubscribe).
type SubscribeHandler interface {
	HandleSubscribe(req *sipmsg.Request, tx sipmsg.ServerTransaction)
}

// HandleSubscribe hands SUBSCRIBE requests to h. Call it before Serve.
// Without it, SUBSCRIBE is a method not served here (405 with Allow).
func (s *Server) HandleSubscribe(h SubscribeHandler) { s.subs = h }

func (s *Server) onSubscribe(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	if s.subs != nil {
		s.subs.HandleSubscribe(req, tx)
		return
	}
	s.onUnsupported(req, tx)
}

// Contact is the server's Contact for a dialog over transport, for a
// service that answers a dialog-creating request itself (a SUBSCRIBE).
func (s *Server) Contact(transport string) *sipmsg.ContactHeader { return s.contact(transport) }
