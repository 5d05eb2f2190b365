package sip

import (
	"context"
	"fmt"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/registry"
)

// sendNotice tells the caller in an IM why the callee could not be
// reached: a MESSAGE (RFC 3428) from the callee's address to the caller's,
// sent where the caller's INVITE came from.
func (s *Server) sendNotice(c *call, f *Failure) {
	a := c.a
	req := sipmsg.NewRequest(sipmsg.MESSAGE, *a.target.Clone())
	from := &sipmsg.FromHeader{Address: sipmsg.Uri{Scheme: "sip", User: c.callee, Host: s.cfg.Domain}, Params: sipmsg.NewParams()}
	from.Params.Add("tag", sipmsg.GenerateTagN(16))
	to := &sipmsg.ToHeader{DisplayName: a.remoteNm, Address: *a.remote.Clone(), Params: sipmsg.NewParams()}
	callID := sipmsg.CallIDHeader(newCallID())
	mf := sipmsg.MaxForwardsHeader(70)
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&callID)
	req.AppendHeader(&sipmsg.CSeqHeader{SeqNo: 1, MethodName: sipmsg.MESSAGE})
	req.AppendHeader(&mf)
	req.AppendHeader(sipmsg.NewHeader("Content-Type", "text/plain;charset=utf-8"))
	req.AppendHeader(sipmsg.NewHeader("User-Agent", s.cfg.UserAgent))
	req.SetBody([]byte(NoticeText(c.callee, f)))
	req.SetTransport(a.transport)
	req.SetDestination(a.dest)
	req.Laddr = a.laddr
	ctx, cancel := context.WithTimeout(s.notices, 32*time.Second)
	s.request(ctx, req, nil, func(res *sipmsg.Response, err error) {
		cancel()
		if err != nil {
			s.log.Debug("IM notice not delivered", "to", a.remote.Addr(), "err", err)
		}
	})
}

// NoticeText is the IM a caller receives when callee could not be reached.
func NoticeText(callee string, f *Failure) string {
	return fmt.Sprintf("%s could not be reached: %s (SIP %d, Q.850 cause %d)", callee, f.Text, f.Status, f.Cause)
}

// onMessage takes an out-of-dialog MESSAGE (RFC 3428): authenticated like
// an INVITE, routed like a call, and relayed to the callee's terminal with
// nothing of the sender's topology.
func (s *Server) onMessage(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	if tag, _ := req.To().Params.Get("tag"); tag != "" {
		s.inDialog(req, tx)
		return
	}
	if mf := req.MaxForwards(); mf != nil && mf.Val() <= 0 {
		s.respondFailure(tx, req, &Failure{Status: 483, Cause: CauseInterworking, Text: "Max-Forwards exhausted"})
		return
	}
	sender, ok := s.authenticate(req, tx, "Proxy-Authorization", 407)
	if !ok {
		return
	}
	callee, err := registry.ParseIMID(req.Recipient.User)
	if err != nil {
		s.respondFailure(tx, req, &Failure{Status: 404, Cause: CauseUnallocated, Text: "not an IM user: " + req.Recipient.User})
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 32*time.Second)
	defer cancel()
	t, err := s.router.Route(ctx, callee)
	if err != nil {
		s.respondFailure(tx, req, AsFailure(err))
		return
	}
	if sender == "" {
		sender = "anonymous"
	}
	out := sipmsg.NewRequest(sipmsg.MESSAGE, t.URI)
	from := &sipmsg.FromHeader{DisplayName: req.From().DisplayName, Address: sipmsg.Uri{Scheme: "sip", User: sender, Host: s.cfg.Domain}, Params: sipmsg.NewParams()}
	from.Params.Add("tag", sipmsg.GenerateTagN(16))
	to := &sipmsg.ToHeader{Address: sipmsg.Uri{Scheme: "sip", User: callee, Host: s.cfg.Domain}, Params: sipmsg.NewParams()}
	callID := sipmsg.CallIDHeader(newCallID())
	mf := sipmsg.MaxForwardsHeader(70)
	if m := req.MaxForwards(); m != nil {
		mf = sipmsg.MaxForwardsHeader(m.Val() - 1)
	}
	out.AppendHeader(from)
	out.AppendHeader(to)
	out.AppendHeader(&callID)
	out.AppendHeader(&sipmsg.CSeqHeader{SeqNo: 1, MethodName: sipmsg.MESSAGE})
	out.AppendHeader(&mf)
	copyHeader(req, out, "Content-Type")
	out.SetBody(req.Body())
	out.SetTransport(t.Transport)
	out.SetDestination(t.Dest)
	out.Laddr = s.laddr(t.Transport)
	done := make(chan struct{})
	var res *sipmsg.Response
	s.request(ctx, out, nil, func(r *sipmsg.Response, err error) {
		if err == nil {
			res = r
		}
		close(done)
	})
	<-done
	if res == nil {
		s.respondFailure(tx, req, &Failure{Status: 480, Cause: CauseNoUserResponding, Text: "terminal not responding"})
		return
	}
	if res.StatusCode >= 300 {
		s.respondFailure(tx, req, failureFromResponse(res))
		return
	}
	s.respond(tx, req, res.StatusCode, "")
}
