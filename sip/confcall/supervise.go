package confcall

import (
	"context"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/conference"
	"github.com/imcall/b2bua/sip"
)

// expectAck retransmits our 2xx to a member's INVITE (the dial-in's or a
// re-INVITE's) until its ACK arrives, T1 doubling to T2, and ends the call
// with BYE when none came within 64*T1 (RFC 3261 §13.3.1.4): sipgo's
// server transaction is done with a 2xx once sent. first: the call's own
// INVITE, whose ACK starts the media timeout.
func (s *Service) expectAck(m *member, tx sipmsg.ServerTransaction, res *sipmsg.Response, first bool) {
	seq := res.CSeq().SeqNo
	acked := func() bool {
		if m.ackSeq.Load() < seq {
			return false // none yet, or an older INVITE's
		}
		if first {
			// The call is up: from now on its RTP must flow.
			s.watchMedia(m)
		}
		return true
	}
	t1 := s.cfg.T1
	t2 := min(8*t1, sipmsg.T2)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		deadline := time.NewTimer(64 * t1)
		defer deadline.Stop()
		interval := t1
		next := time.NewTimer(interval)
		defer next.Stop()
		for {
			select {
			case <-m.ackCh:
				if acked() {
					return
				}
			case <-m.done:
				return
			case <-deadline.C:
				s.log.Info("confcall: no ACK for the 2xx", "conference", m.confID, "participant", m.pid)
				s.hangup(m, conference.Ending{Method: conference.Failed, Q850: sip.CauseRecoveryOnTimer, Reason: "no ACK for the answer"})
				return
			case <-next.C:
				// Another INVITE's wait may have taken the signal.
				if acked() {
					return
				}
				_ = tx.Respond(res)
				interval = min(2*interval, t2)
				next.Reset(interval)
			}
		}
	}()
}

// watchMedia ends a member's call whose party sent no RTP for the media
// timeout, unless it is on hold; the clock starts now (the call's ACK).
func (s *Service) watchMedia(m *member) {
	m.mu.Lock()
	call := m.call
	m.mu.Unlock()
	if call == nil {
		return
	}
	timeout := s.cfg.MediaTimeout
	every := min(timeout/4, time.Second)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		since := time.Now()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-m.done:
				return
			case <-s.ctx.Done():
				return
			case now := <-t.C:
				if m.held.Load() {
					since = now
					continue
				}
				last := call.LastRTP(memberLeg)
				if last.Before(since) {
					last = since
				}
				if now.Sub(last) > timeout {
					s.log.Info("confcall: media timeout", "conference", m.confID, "participant", m.pid, "silent", now.Sub(last))
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					why := conference.Ending{Method: conference.Booted, Q850: sip.CauseRecoveryOnTimer, Reason: "no media for " + timeout.String()}
					if err := s.bye(ctx, m, why); err != nil {
						s.log.Info("confcall: BYE not answered", "conference", m.confID, "participant", m.pid, "err", err)
					}
					cancel()
					s.end(m, why)
					return
				}
			}
		}
	}()
}

func (m *member) setHeld(held bool) { m.held.Store(held) }
