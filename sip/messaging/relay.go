package messaging

import (
	"context"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/sip"
)

// relay takes an out-of-dialog MESSAGE without Rules: authenticated like
// an INVITE, routed like a call, and relayed to the callee's terminal as
// it came, with nothing of the sender's topology.
func (m *Messenger) relay(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	if mf := req.MaxForwards(); mf != nil && mf.Val() <= 0 {
		m.sip.RespondFailure(tx, req, &sip.Failure{Status: 483, Cause: sip.CauseInterworking, Text: "Max-Forwards exhausted"})
		return
	}
	sender, ok := m.sip.Authenticate(req, tx)
	if !ok {
		return
	}
	callee, err := registry.ParseIMID(req.Recipient.User)
	if err != nil {
		m.sip.RespondFailure(tx, req, &sip.Failure{Status: 404, Cause: sip.CauseUnallocated, Text: "not an IM user: " + req.Recipient.User})
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 32*time.Second)
	defer cancel()
	t, err := m.sip.Route(ctx, callee)
	if err != nil {
		m.sip.RespondFailure(tx, req, sip.AsFailure(err))
		return
	}
	if sender == "" {
		sender = "anonymous"
	}
	domain := m.sip.Domain()
	out := sipmsg.NewRequest(sipmsg.MESSAGE, t.URI)
	from := &sipmsg.FromHeader{DisplayName: req.From().DisplayName, Address: sipmsg.Uri{Scheme: "sip", User: sender, Host: domain}, Params: sipmsg.NewParams()}
	from.Params.Add("tag", sipmsg.GenerateTagN(16))
	to := &sipmsg.ToHeader{Address: sipmsg.Uri{Scheme: "sip", User: callee, Host: domain}, Params: sipmsg.NewParams()}
	callID := sipmsg.CallIDHeader(newCallID())
	mf := sipmsg.MaxForwardsHeader(70)
	if h := req.MaxForwards(); h != nil {
		mf = sipmsg.MaxForwardsHeader(h.Val() - 1)
	}
	out.AppendHeader(from)
	out.AppendHeader(to)
	out.AppendHeader(&callID)
	out.AppendHeader(&sipmsg.CSeqHeader{SeqNo: 1, MethodName: sipmsg.MESSAGE})
	out.AppendHeader(&mf)
	for _, h := range req.GetHeaders("Content-Type") {
		out.AppendHeader(sipmsg.NewHeader(h.Name(), h.Value()))
	}
	out.SetBody(req.Body())
	out.SetTransport(t.Transport)
	out.SetDestination(t.Dest)
	out.Laddr = m.sip.LocalAddr(t.Transport)
	res, err := m.send(ctx, out)
	if err != nil {
		m.sip.RespondFailure(tx, req, &sip.Failure{Status: 480, Cause: sip.CauseNoUserResponding, Text: "terminal not responding"})
		return
	}
	if res.StatusCode >= 300 {
		m.sip.RespondFailure(tx, req, sip.FailureFromResponse(res))
		return
	}
	m.answer(tx, req, res.StatusCode, "")
}
