package confcall

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/conference"
)

// dialog is our side of a member's dialog: the UAS side of a dial-in, the
// UAC side of a dial-out.
type dialog struct {
	callID, localTag, remoteTag string
	local, remote, target       sipmsg.Uri
	routeSet                    []string
	dest, transport             string
	seq                         uint32 // our last CSeq
	remoteSeq                   uint32 // the peer's last CSeq
}

func newDialog(req *sipmsg.Request) dialog {
	d := dialog{callID: req.CallID().Value(), localTag: newTag(), local: req.To().Address,
		remote: req.From().Address, target: req.From().Address, dest: req.Source(), transport: req.Transport()}
	d.remoteTag, _ = req.From().Params.Get("tag")
	d.remoteSeq = req.CSeq().SeqNo
	if c := req.Contact(); c != nil {
		d.target = c.Address
	}
	for _, h := range req.GetHeaders("Record-Route") {
		d.routeSet = append(d.routeSet, h.Value())
	}
	return d
}

// confirm takes a dial-out's dialog from the 2xx that confirms it.
func (d *dialog) confirm(res *sipmsg.Response) {
	d.remoteTag, _ = res.To().Params.Get("tag")
	if c := res.Contact(); c != nil {
		d.target = c.Address
	}
	// RFC 3261 §12.1.2: the UAC's route set is the Record-Route list in
	// reverse order.
	rr := res.GetHeaders("Record-Route")
	d.routeSet = d.routeSet[:0]
	for i := len(rr) - 1; i >= 0; i-- {
		d.routeSet = append(d.routeSet, rr[i].Value())
	}
}

// request builds a request in the dialog with CSeq seq, addressed to the
// first route or, without one, where the dialog's peer is reached.
func (s *Service) request(d *dialog, method sipmsg.RequestMethod, seq uint32) *sipmsg.Request {
	req := sipmsg.NewRequest(method, *d.target.Clone())
	from := &sipmsg.FromHeader{DisplayName: "", Address: d.local, Params: sipmsg.NewParams()}
	from.Params.Add("tag", d.localTag)
	to := &sipmsg.ToHeader{Address: d.remote, Params: sipmsg.NewParams()}
	if d.remoteTag != "" {
		to.Params.Add("tag", d.remoteTag)
	}
	callID := sipmsg.CallIDHeader(d.callID)
	mf := sipmsg.MaxForwardsHeader(70)
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&callID)
	req.AppendHeader(&sipmsg.CSeqHeader{SeqNo: seq, MethodName: method})
	req.AppendHeader(&mf)
	for _, r := range d.routeSet {
		req.AppendHeader(sipmsg.NewHeader("Route", r))
	}
	req.SetTransport(d.transport)
	dest := d.dest
	if len(d.routeSet) > 0 {
		var ru sipmsg.Uri
		if err := sipmsg.ParseUri(strings.Trim(strings.SplitN(d.routeSet[0], ",", 2)[0], " <>"), &ru); err == nil {
			if ru.Port == 0 {
				ru.Port = 5060
			}
			dest = ru.HostPort()
		}
	}
	req.SetDestination(dest)
	req.Laddr = s.cfg.SIP.LocalAddr(d.transport)
	return req
}

// bye sends BYE with a Reason saying why (RFC 3326) and waits for its
// answer, within ctx and 32 s (Timer F).
func (s *Service) bye(ctx context.Context, m *member, why conference.Ending) error {
	m.mu.Lock()
	m.dlg.seq++
	req := s.request(&m.dlg, sipmsg.BYE, m.dlg.seq)
	m.mu.Unlock()
	cause := why.Q850
	if cause == 0 {
		cause = 16
	}
	req.AppendHeader(sipmsg.NewHeader("Reason", "Q.850;cause="+strconv.Itoa(cause)+`;text="`+strings.ReplaceAll(why.Reason, `"`, `'`)+`"`))
	req.AppendHeader(sipmsg.NewHeader("User-Agent", s.cfg.SIP.UserAgent()))
	return s.transact(ctx, req)
}

// transact sends req and waits for its final answer, within ctx and 32 s.
func (s *Service) transact(ctx context.Context, req *sipmsg.Request) error {
	ctx, cancel := context.WithTimeout(ctx, 32*time.Second)
	defer cancel()
	tx, err := s.cfg.SIP.Request(ctx, req)
	if err != nil {
		return fmt.Errorf("confcall: %s: %w", req.Method, err)
	}
	defer tx.Terminate()
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				continue
			}
			return nil // any final answer ends the dialog (RFC 3261 §15.1.2)
		case <-tx.Done():
			return fmt.Errorf("confcall: %s: %w", req.Method, tx.Err())
		case <-ctx.Done():
			return fmt.Errorf("confcall: %s: %w", req.Method, ctx.Err())
		}
	}
}
