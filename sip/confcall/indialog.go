package confcall

import (
	"bytes"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/conference"
	"github.com/imcall/b2bua/confmedia"
	"github.com/imcall/b2bua/sip"
)

// HandleInDialog answers the requests of a conference call's dialog.
func (s *Service) HandleInDialog(req *sipmsg.Request, tx sipmsg.ServerTransaction) bool {
	tag, _ := req.To().Params.Get("tag")
	s.mu.Lock()
	m := s.byKey[req.CallID().Value()+"\x00"+tag]
	s.mu.Unlock()
	if m == nil {
		return false
	}
	switch req.Method {
	case sipmsg.ACK:
		if seq := req.CSeq().SeqNo; seq > m.ackSeq.Load() {
			m.ackSeq.Store(seq)
		}
		select {
		case m.ackCh <- struct{}{}:
		default:
		}
	case sipmsg.BYE:
		res := sipmsg.NewResponseFromRequest(req, 200, "OK", nil)
		_ = tx.Respond(res)
		cause := sip.CauseNormalClearing // RFC 3326: the caller's Reason, else normal clearing
		if h := req.GetHeader("Reason"); h != nil {
			if c := sip.ReasonCause(h.Value()); c > 0 {
				cause = c
			}
		}
		s.end(m, conference.Ending{Method: conference.Departed, Q850: cause, Reason: "the participant hung up"})
	case sipmsg.INVITE:
		s.reinvite(m, req, tx)
	case sipmsg.REFER:
		s.refer(req, tx, m.confID, "", m)
	case sipmsg.OPTIONS:
		_ = tx.Respond(sipmsg.NewResponseFromRequest(req, 200, "OK", nil))
	default:
		s.fail(tx, req, 405, "not taken in a conference call")
	}
	return true
}

// reinvite answers a member's re-INVITE: hold and resume (RFC 3264 §8.4),
// a new address or codec. The member stays in the mix; on hold its status
// says so and its silence is no media timeout.
func (s *Service) reinvite(m *member, req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	offer := req.Body()
	if len(offer) == 0 {
		// RFC 3261 §14.2 allows an offer in our 2xx; not taken here, the
		// call goes on as it was.
		s.fail(tx, req, 488, "a re-INVITE without SDP is not taken in a conference call")
		return
	}
	ours, _, err := confmedia.Answer(offer)
	if err != nil {
		s.fail(tx, req, 488, "no G.711 audio offered")
		return
	}
	held, dir := confmedia.Hold(offer)
	if held {
		ours = bytes.Replace(ours, []byte("a=sendrecv"), []byte("a="+dir), 1)
	}
	m.mu.Lock()
	call := m.call
	seq := req.CSeq().SeqNo
	stale := seq <= m.dlg.remoteSeq
	if !stale {
		m.dlg.remoteSeq = seq
	}
	if c := req.Contact(); c != nil && !stale {
		m.dlg.target = c.Address // RFC 3261 §12.2.2: a target refresh
	}
	key := m.dlg.localTag
	m.mu.Unlock()
	if stale {
		s.fail(tx, req, 500, "CSeq lower than the dialog's")
		return
	}
	var answer []byte
	if call != nil {
		if _, err = call.RewriteOffer(memberLeg, bridgeLeg, offer); err == nil {
			answer, err = call.RewriteAnswer(bridgeLeg, memberLeg, ours)
		}
		// The mixer stands in for the bridge leg: an exchange between
		// them must not join them in the relay's table again.
		call.Disconnect(memberLeg, bridgeLeg)
		call.Disconnect(bridgeLeg, memberLeg)
	}
	if err != nil || answer == nil {
		s.fail(tx, req, 488, "the new offer could not be anchored")
		return
	}
	res := sipmsg.NewResponseFromRequest(req, 200, "OK", answer)
	if res.To() != nil {
		if t, _ := res.To().Params.Get("tag"); t == "" {
			res.To().Params.Add("tag", key)
		}
	}
	res.AppendHeader(s.focusContact(m.confID, req.Transport()))
	res.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
	res.AppendHeader(sipmsg.NewHeader("Server", s.cfg.SIP.UserAgent()))
	_ = tx.Respond(res)
	s.expectAck(m, tx, res, false)
	m.setHeld(held)
	_ = m.leg.Held(held)
	s.log.Info("conference call re-INVITE", "conference", m.confID, "participant", m.pid, "held", held)
}
