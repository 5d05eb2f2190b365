package confcall

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/conference"
	"github.com/imcall/b2bua/sip"
)

// referSlack bounds how long a REFER's subscription reports on the call it
// asked for: the ring timeout and some slack for routing.
const referSlack = 15 * time.Second

// HandleRefer answers a REFER outside any dialog to sip:conf-ID@DOMAIN:
// the Refer-To participant is dialed out (RFC 4579 §5.5), and the REFER's
// own subscription (RFC 3515 §2.4.4) gets the call's progress as
// message/sipfrag NOTIFYs.
func (s *Service) HandleRefer(req *sipmsg.Request, tx sipmsg.ServerTransaction, caller string) {
	confID := strings.TrimPrefix(req.Recipient.User, sip.ConferencePrefix)
	s.refer(req, tx, confID, caller, nil)
}

// refer dials out the Refer-To of req for confID on behalf of caller. in
// is the member whose dialog the REFER came in (its NOTIFYs go there), nil
// for a REFER outside a dialog, which makes a dialog of its own.
func (s *Service) refer(req *sipmsg.Request, tx sipmsg.ServerTransaction, confID, caller string, in *member) {
	refs := req.GetHeaders("Refer-To")
	if len(refs) != 1 {
		// RFC 3515 §2.4.1: exactly one Refer-To.
		s.fail(tx, req, 400, "a REFER needs exactly one Refer-To")
		return
	}
	target, err := referTarget(refs[0].Value())
	if err == nil {
		target, err = conference.ParseTarget(target)
	}
	if err != nil {
		s.fail(tx, req, 400, "Refer-To names no IM user or +E.164 number")
		return
	}
	c, err := s.cfg.Conferences.Conference(confID)
	if err != nil {
		s.fail(tx, req, 404, "no such conference")
		return
	}
	if in == nil && !mayRefer(c.Snapshot(), caller) {
		s.fail(tx, req, 403, "only the owner or a participant may add to the conference")
		return
	}
	// The REFER's subscription: in the member's dialog, or a new one.
	d, mu := &dialog{}, &sync.Mutex{}
	res := sipmsg.NewResponseFromRequest(req, 202, "Accepted", nil)
	if in != nil {
		d, mu = &in.dlg, &in.mu
	} else {
		*d = newDialog(req)
		res.To().Params.Add("tag", d.localTag)
	}
	res.AppendHeader(s.focusContact(confID, req.Transport()))
	res.AppendHeader(sipmsg.NewHeader("Server", s.cfg.SIP.UserAgent()))
	p, err := s.cfg.Conferences.Add(context.Background(), confID, target, "")
	if err != nil {
		s.fail(tx, req, 403, err.Error())
		return
	}
	if err := tx.Respond(res); err != nil {
		return
	}
	s.log.Info("conference REFER", "conference", confID, "participant", p.ID, "target", target)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.reportRefer(c, p.ID, d, mu, confID, req.Transport())
	}()
}

// mayRefer: the owner, or someone on the roster with a live call.
func mayRefer(st conference.Snapshot, user string) bool {
	if user == st.Owner {
		return true
	}
	for _, p := range st.Participants {
		if p.Target == user && p.Status.Live() {
			return true
		}
	}
	return false
}

// referTarget is the IM ID or number a Refer-To URI names:
// sip:bob@DOMAIN, sip:+15551234567@HOST;user=phone, tel:+15551234567.
func referTarget(v string) (string, error) {
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, '<'); i >= 0 {
		j := strings.IndexByte(v[i:], '>')
		if j < 0 {
			return "", errors.New("unterminated <")
		}
		v = v[i+1 : i+j]
	}
	if num, ok := strings.CutPrefix(v, "tel:"); ok {
		num, _, _ = strings.Cut(num, ";")
		return num, nil
	}
	var u sipmsg.Uri
	if err := sipmsg.ParseUri(v, &u); err != nil {
		return "", err
	}
	if u.User == "" || u.Headers.Length() > 0 {
		// A Refer-To with ?method= or headers asks for more than an
		// INVITE to the target; not taken.
		return "", errors.New("not a plain SIP URI of a user")
	}
	return u.User, nil
}

// reportRefer sends the REFER's NOTIFYs (RFC 3515 §2.4.5): 100 Trying
// first, 180 when the participant rings, and the final answer, which
// ends the subscription.
func (s *Service) reportRefer(c *conference.Conference, pid string, d *dialog, mu *sync.Mutex, confID, transport string) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.RingTimeout+referSlack)
	defer cancel()
	s.notifyFrag(ctx, d, mu, confID, transport, "SIP/2.0 100 Trying", false)
	rang := false
	w := c.Watch(ctx)
	for ev := range w.Events() {
		p, ok := ev.State.Participant(pid)
		if !ok {
			s.notifyFrag(ctx, d, mu, confID, transport, "SIP/2.0 487 Request Terminated", true)
			return
		}
		switch p.Status {
		case conference.StatusRinging:
			if !rang {
				rang = true
				s.notifyFrag(ctx, d, mu, confID, transport, "SIP/2.0 180 Ringing", false)
			}
		case conference.StatusConnected, conference.StatusOnHold:
			s.notifyFrag(ctx, d, mu, confID, transport, "SIP/2.0 200 OK", true)
			return
		case conference.StatusDisconnected:
			// A call that never got an answer (no route, no trunk): 503;
			// one the owner ended before it was answered: 487.
			code := 503
			switch {
			case p.Ended != nil && p.Ended.SIPCode >= 300:
				code = p.Ended.SIPCode
			case p.Ended != nil && p.Ended.Method == conference.Booted:
				code = 487
			}
			s.notifyFrag(ctx, d, mu, confID, transport, "SIP/2.0 "+strconv.Itoa(code)+" "+sip.ReasonPhrase(code), true)
			return
		}
	}
	// The conference ended, or the report took too long.
	s.notifyFrag(context.Background(), d, mu, confID, transport, "SIP/2.0 487 Request Terminated", true)
}

// notifyFrag sends one NOTIFY of a REFER's subscription and waits for its
// answer.
func (s *Service) notifyFrag(ctx context.Context, d *dialog, mu *sync.Mutex, confID, transport, frag string, final bool) {
	mu.Lock()
	d.seq++
	req := s.request(d, sipmsg.NOTIFY, d.seq)
	mu.Unlock()
	req.AppendHeader(sipmsg.NewHeader("Event", "refer"))
	state := "active;expires=" + strconv.Itoa(int((s.cfg.RingTimeout + referSlack).Seconds()))
	if final {
		state = "terminated;reason=noresource"
	}
	req.AppendHeader(sipmsg.NewHeader("Subscription-State", state))
	req.AppendHeader(s.focusContact(confID, transport))
	req.AppendHeader(sipmsg.NewHeader("User-Agent", s.cfg.SIP.UserAgent()))
	req.AppendHeader(sipmsg.NewHeader("Content-Type", "message/sipfrag;version=2.0"))
	req.SetBody([]byte(frag + "\r\n"))
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.transact(ctx, req); err != nil {
		s.log.Info("confcall: REFER NOTIFY not answered", "conference", confID, "err", err)
	}
}
