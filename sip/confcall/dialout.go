package confcall

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/conference"
	"github.com/imcall/b2bua/confmedia"
	"github.com/imcall/b2bua/rtpproxy"
	"github.com/imcall/b2bua/sip"
)

// Router routes a call to an IM user like any call (sip.Server.Route):
// its active terminal through the registry (a legacy one located by the
// SCP), else the newest client the user is logged in on.
type Router interface {
	Route(ctx context.Context, imID string) (sip.Target, error)
}

// outCall is the state of a dial-out's INVITE, guarded by member.mu.
type outCall struct {
	inv          *sipmsg.Request
	provisional  bool // a 1xx arrived: a CANCEL may be sent (RFC 3261 §9.1)
	cancelWanted bool
	cancelSent   bool
	answered     bool
	why          *conference.Ending // why we cancel: the participant's end
}

// Dial places the call to a participant added by dial-out
// (conference.Dialer). It returns at once; the call is placed on a
// goroutine the Service owns and its progress goes to leg: dialing once
// the INVITE is out, ringing on 180/183, connected with its media in the
// mix on 2xx, or failed/busy with the answer and its Q.850 cause.
func (s *Service) Dial(_ context.Context, confID string, p conference.Participant, leg conference.Leg) error {
	if s.cfg.Router == nil {
		return errors.New("dial-out is not configured on this node")
	}
	if strings.HasPrefix(p.Target, "+") && s.cfg.Trunk == "" {
		return errors.New("no trunk for phone numbers (--conference-trunk)")
	}
	m := newMember(confID, p.ID, leg)
	m.out = &outCall{}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return errors.New("conference calls are shutting down")
	}
	s.byPart[partKey(confID, p.ID)] = m
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		s.dial(m, p)
	}()
	return nil
}

// target is where a call to an IM ID or a +E.164 number goes.
func (s *Service) target(ctx context.Context, to string) (sip.Target, error) {
	if !strings.HasPrefix(to, "+") {
		return s.cfg.Router.Route(ctx, to)
	}
	host, port, _ := net.SplitHostPort(s.cfg.Trunk)
	n, _ := strconv.Atoi(port)
	u := sipmsg.Uri{Scheme: "sip", User: to, Host: host, Port: n, UriParams: sipmsg.NewParams()}
	u.UriParams.Add("user", "phone") // RFC 3261 §19.1.1: the user part is a number
	return sip.Target{URI: u, Dest: s.cfg.Trunk, Transport: "UDP"}, nil
}

func (s *Service) dial(m *member, p conference.Participant) {
	ctx := s.ctx
	t, err := s.target(ctx, p.Target)
	if err != nil {
		f := sip.AsFailure(err)
		s.end(m, endingOf(f))
		return
	}
	callID := newCallID()
	call, err := s.cfg.Media.NewCall(context.Background(), rtpproxy.CallConfig{ID: callID})
	var offer []byte
	if err == nil {
		// The participant's endpoint stands in for the bridge in the
		// offer; the mixer takes the bridge leg's place once answered.
		offer, err = call.RewriteOffer(bridgeLeg, memberLeg, confmedia.Offer())
		if err != nil {
			call.Close()
		}
	}
	if err != nil {
		s.log.Warn("confcall: media for dial-out", "conference", m.confID, "err", err)
		s.end(m, conference.Ending{Method: conference.Failed, SIPCode: 503, Q850: sip.CauseTemporaryFailure, Reason: "no media resources"})
		return
	}
	to := sipmsg.Uri{Scheme: "sip", User: p.Target, Host: s.cfg.SIP.Domain()}
	if strings.HasPrefix(p.Target, "+") {
		to = t.URI
	}
	m.mu.Lock()
	m.call = call
	m.dlg = dialog{callID: callID, localTag: newTag(), local: s.confURI(m.confID), remote: to,
		target: t.URI, dest: t.Dest, transport: t.Transport, seq: 1}
	m.key = callID + "\x00" + m.dlg.localTag
	conf := s.confURI(m.confID)
	m.rec = record{callID: callID, caller: conf.Addr(), callee: p.Target,
		terminalID: t.Terminal.ID, scp: t.SCPOutcome, started: time.Now().UTC()}
	inv := s.request(&m.dlg, sipmsg.INVITE, 1)
	m.out.inv = inv
	why := m.out.why // kicked while it was being routed
	m.mu.Unlock()
	if why != nil {
		s.end(m, *why)
		return
	}
	inv.From().DisplayName = "Conference"
	inv.AppendHeader(s.focusContact(m.confID, t.Transport))
	inv.AppendHeader(sipmsg.NewHeader("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS"))
	inv.AppendHeader(sipmsg.NewHeader("User-Agent", s.cfg.SIP.UserAgent()))
	inv.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
	inv.SetBody(offer)
	s.mu.Lock()
	s.byKey[m.key] = m
	s.mu.Unlock()

	// The transaction is not bound to ctx: at shutdown the INVITE is
	// CANCELed and its 487 taken, within giveUp.
	tx, err := s.cfg.SIP.Request(context.Background(), inv)
	if err != nil {
		s.end(m, conference.Ending{Method: conference.Failed, SIPCode: 502, Q850: sip.CauseDestinationOutOfOrd, Reason: "terminal unreachable: " + err.Error()})
		return
	}
	_ = m.leg.Dialing()
	s.log.Info("conference dial-out", "conference", m.confID, "participant", m.pid, "target", p.Target, "call-id", callID)
	ring := time.NewTimer(s.cfg.RingTimeout)
	defer ring.Stop()
	stop := ctx.Done()
	var giveUp <-chan time.Time
	for {
		select {
		case res := <-tx.Responses():
			switch code := res.StatusCode; {
			case code < 200:
				if code == 180 || code == 183 {
					_ = m.leg.Alerting()
				}
				s.provisional(m)
			case code < 300:
				s.answered(m, tx, res)
				return
			default:
				tx.Terminate()
				m.mu.Lock()
				why := m.out.why
				m.mu.Unlock()
				if why == nil {
					e := endingOf(sip.FailureFromResponse(res))
					why = &e
				}
				s.end(m, *why)
				return
			}
		case <-tx.Done():
			m.mu.Lock()
			why := m.out.why
			m.mu.Unlock()
			if why == nil {
				why = &conference.Ending{Method: conference.Failed, SIPCode: 408, Q850: sip.CauseNoUserResponding, Reason: "no answer to the INVITE"}
			}
			s.end(m, *why)
			return
		case <-ring.C:
			s.cancel(m, conference.Ending{Method: conference.Failed, SIPCode: 480, Q850: sip.CauseNoAnswer, Reason: "no answer"})
		case <-stop:
			stop = nil
			s.cancel(m, conference.Ending{Method: conference.Booted, Q850: sip.CauseNormalClearing, Reason: "service shutting down"})
			giveUp = time.After(2 * time.Second)
		case <-giveUp:
			tx.Terminate()
			s.end(m, conference.Ending{Method: conference.Booted, Q850: sip.CauseNormalClearing, Reason: "service shutting down"})
			return
		}
	}
}

// endingOf is the participant's end for a failure to connect.
func endingOf(f *sip.Failure) conference.Ending {
	e := conference.Ending{Method: conference.Failed, SIPCode: f.Status, Q850: f.Cause, Reason: f.Text}
	if f.Status == 486 || f.Status == 600 {
		e.Method = conference.Busy
	}
	return e
}

// provisional notes a 1xx and sends the CANCEL that was waiting for one.
func (s *Service) provisional(m *member) {
	m.mu.Lock()
	m.out.provisional = true
	send := m.out.cancelWanted && !m.out.cancelSent
	m.out.cancelSent = m.out.cancelSent || send
	m.mu.Unlock()
	if send {
		s.sendCancel(m)
	}
}

// cancel gives up a dial-out that is not answered: CANCEL now, or once a
// provisional answer allows it (RFC 3261 §9.1); why becomes the end.
func (s *Service) cancel(m *member, why conference.Ending) bool {
	m.mu.Lock()
	if m.out.answered || m.out.cancelWanted {
		m.mu.Unlock()
		return false
	}
	m.out.cancelWanted, m.out.why = true, &why
	send := m.out.provisional
	m.out.cancelSent = send
	m.mu.Unlock()
	if send {
		s.sendCancel(m)
	}
	return true
}

func (s *Service) sendCancel(m *member) {
	inv := m.out.inv
	// RFC 3261 §9.1: the Request-URI, Call-ID, From, To, CSeq number and
	// top Via of the INVITE.
	req := sipmsg.NewRequest(sipmsg.CANCEL, *inv.Recipient.Clone())
	req.AppendHeader(sipmsg.HeaderClone(inv.Via()))
	req.AppendHeader(sipmsg.HeaderClone(inv.From()))
	req.AppendHeader(sipmsg.HeaderClone(inv.To()))
	req.AppendHeader(sipmsg.HeaderClone(inv.CallID()))
	req.AppendHeader(&sipmsg.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sipmsg.CANCEL})
	mf := sipmsg.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	sipmsg.CopyHeaders("Route", inv, req)
	req.SetTransport(inv.Transport())
	req.SetDestination(inv.Destination())
	req.Laddr = inv.Laddr
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.transact(context.Background(), req); err != nil {
			s.log.Info("confcall: CANCEL not answered", "conference", m.confID, "participant", m.pid, "err", err)
		}
	}()
}

// answered takes the 2xx of a dial-out: ACK (again for each retransmitted
// 2xx, RFC 3261 §13.2.2.4), then the answer's codec into the mix.
func (s *Service) answered(m *member, tx sipmsg.ClientTransaction, res *sipmsg.Response) {
	m.mu.Lock()
	m.dlg.confirm(res)
	ack := s.request(&m.dlg, sipmsg.ACK, m.out.inv.CSeq().SeqNo)
	m.out.answered = true
	why := m.out.why
	tag := m.dlg.remoteTag
	m.mu.Unlock()
	ack.AppendHeader(sipmsg.NewHeader("User-Agent", s.cfg.SIP.UserAgent()))
	// The transaction passes the 2xx's retransmissions here until Timer M
	// (RFC 6026 §8.4); each gets the same ACK. Writing the ACK sets its
	// Via, so the writes take turns.
	var ackMu sync.Mutex
	writeACK := func() error {
		ackMu.Lock()
		defer ackMu.Unlock()
		return s.cfg.SIP.WriteRequest(ack)
	}
	tx.OnRetransmission(func(r *sipmsg.Response) {
		if t, _ := r.To().Params.Get("tag"); r.IsSuccess() && t == tag {
			_ = writeACK()
		}
	})
	if err := writeACK(); err != nil {
		s.log.Warn("confcall: ACK", "conference", m.confID, "participant", m.pid, "err", err)
	}
	if why != nil {
		// Given up (kicked, shut down) while the answer was on its way:
		// the fresh dialog is ended at once (RFC 3261 §15).
		s.hangup(m, *why)
		return
	}
	codec, err := confmedia.FromAnswer(res.Body())
	if err == nil {
		_, err = m.call.RewriteAnswer(memberLeg, bridgeLeg, res.Body())
	}
	if err == nil {
		m.call.Answered()
		err = s.cfg.Mix.Join(m.confID, m.pid, m.call, memberLeg, bridgeLeg, codec)
	}
	if err != nil {
		s.log.Warn("confcall: answer of a dial-out", "conference", m.confID, "participant", m.pid, "err", err)
		s.hangup(m, conference.Ending{Method: conference.Failed, SIPCode: 488, Q850: sip.CauseInterworking, Reason: "no G.711 audio in the answer"})
		return
	}
	m.mu.Lock()
	m.rec.answered = time.Now().UTC()
	m.mu.Unlock()
	_ = m.leg.Connected()
	s.watchMedia(m)
	s.log.Info("conference dial-out connected", "conference", m.confID, "participant", m.pid, "codec", codec.Law)
}

// hangup ends a member's dialog with BYE and the member with why.
func (s *Service) hangup(m *member, why conference.Ending) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.bye(ctx, m, why); err != nil {
		s.log.Info("confcall: BYE not answered", "conference", m.confID, "participant", m.pid, "err", err)
	}
	s.end(m, why)
}

// confURI is the conference's URI, the From of its dial-outs.
func (s *Service) confURI(confID string) sipmsg.Uri {
	return sipmsg.Uri{Scheme: "sip", User: sip.ConferencePrefix + confID, Host: s.cfg.SIP.Domain()}
}
