package sip

import (
	"slices"
	"strings"

	sipmsg "github.com/emiago/sipgo/sip"
)

// refuseParsed answers a request that parsed but that RFC 3261 says we must
// refuse before looking at it, over every transport (the raw checks of
// malformed.go see only datagrams and whole stream reads). It reports
// whether it answered.
func (s *Server) refuseParsed(req *sipmsg.Request, tx sipmsg.ServerTransaction) bool {
	if req.IsAck() {
		return false // never answered (§17.2.1)
	}
	// §8.2.2.1 and RFC 4475 §3.1.2.16: another version is 505, and the
	// answer speaks SIP/2.0, never the version we do not know.
	if req.SipVersion != "SIP/2.0" {
		res := sipmsg.NewResponseFromRequest(req, 505, reasonPhrase(505), nil)
		res.SipVersion = "SIP/2.0"
		res.AppendHeader(sipmsg.NewHeader("Server", s.cfg.UserAgent))
		_ = tx.Respond(res)
		return true
	}
	// §8.1.1.5, RFC 4475 §3.1.2.17: the CSeq method is the request's.
	// sipgo upper-cases the start line's method (not its CSeq's), so the
	// case is not compared; the raw check saw the token as sent.
	if cseq := req.CSeq(); cseq != nil && !strings.EqualFold(string(cseq.MethodName), string(req.Method)) {
		s.respond(tx, req, 400, "CSeq method "+string(cseq.MethodName)+" is not the request's")
		return true
	}
	// §8.2.2.1: a Request-URI scheme we do not serve is 416.
	switch strings.ToLower(req.Recipient.Scheme) {
	case "sip", "sips", "tel":
	default:
		s.respond(tx, req, 416, "Request-URI scheme not supported")
		return true
	}
	// §8.2.2.3: an option tag in Require that is not ours is
	// unsupported (CANCEL carries none that count).
	if !req.IsCancel() {
		var tags []string
		for _, h := range req.GetHeaders("Require") {
			for _, t := range strings.Split(h.Value(), ",") {
				if t = strings.TrimSpace(t); t != "" && !slices.ContainsFunc(supportedTags, func(s string) bool { return strings.EqualFold(s, t) }) {
					tags = append(tags, t)
				}
			}
		}
		if len(tags) > 0 {
			s.respond(tx, req, 420, "", sipmsg.NewHeader("Unsupported", strings.Join(tags, ", ")))
			return true
		}
	}
	return false
}
