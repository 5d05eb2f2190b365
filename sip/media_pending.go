package sip

import (
	"context"
	"strings"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/msgpolicy"
	"github.com/imcall/b2bua/registry"
)

// Deferred delivery. A kept message is tried again when its recipient is
// next found online, which is learnt two ways:
//
//   - a retry sweep: every tick, the messages that are due are routed
//     again (registry, then SCP for a legacy terminal); a recipient still
//     absent or busy is tried later with exponential backoff, RetryMin
//     doubling up to RetryMax. A legacy terminal tells nobody when it
//     comes back, so asking the SCP is the only way to find out.
//   - a REGISTER of a smart terminal: its user's messages are tried at
//     once, whatever their backoff.
//
// One goroutine, owned by Serve and stopped with it, does both, so a
// message is never sent twice by two deliverers of this node. On delivery
// the sender receives a plain text/plain MESSAGE notice (see
// msgpolicy.DeliveredText), as it does for a failed call; IMDN (RFC 5438)
// would need the sender to have asked for it in a CPIM wrapper, which the
// legacy and SIPp senders this product serves do not do.

// startMessaging starts the delivery loop under Serve's ctx and returns a
// function that waits for it to end.
func (s *Server) startMessaging(ctx context.Context) (wait func()) {
	if s.msg == nil {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.msg.runPending(ctx)
		s.msg.notices.Wait()
	}()
	return func() { <-done }
}

// runPending is the delivery loop; it returns when ctx is done.
func (m *messenger) runPending(ctx context.Context) {
	// Tick at a fraction of the shortest backoff so that a due message
	// waits at most that fraction longer than its schedule.
	tick := time.NewTicker(max(m.cfg.RetryMin/4, 20*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			m.sweep(ctx, "")
		case who := <-m.wake:
			m.sweep(ctx, who)
		}
	}
}

// wakeFor asks the loop to try recipient's messages now.
func (m *messenger) wakeFor(recipient string) {
	select {
	case m.wake <- recipient:
	default: // the loop is busy; the next tick catches up
	}
}

// onRegistered is called after a REGISTER stored a binding of imID.
func (s *Server) onRegistered(imID string) {
	if s.msg != nil {
		s.msg.wakeFor(imID)
	}
}

// sweep tries the due messages, or all of recipient's when it is set.
func (m *messenger) sweep(ctx context.Context, recipient string) {
	now := time.Now().UTC()
	var list []registry.PendingMessage
	var err error
	if recipient != "" {
		list, err = m.cfg.Pending.PendingFor(ctx, recipient)
	} else {
		list, err = m.cfg.Pending.DuePending(ctx, now, 100)
	}
	if err != nil {
		if ctx.Err() == nil {
			m.s.log.Warn("pending messages not read", "err", err)
		}
		return
	}
	// Once a recipient is found away, its other messages wait too: one
	// routing question per recipient per sweep.
	away := map[string]bool{}
	for _, p := range list {
		if ctx.Err() != nil {
			return
		}
		if !now.Before(p.Expires) {
			m.giveUp(ctx, p, "kept too long")
			continue
		}
		if away[p.Recipient] {
			m.retryLater(ctx, p, now)
			continue
		}
		if !m.tryPending(ctx, p) {
			away[p.Recipient] = true
			m.retryLater(ctx, p, now)
		}
	}
}

// tryPending makes one delivery attempt; false means try again later.
func (m *messenger) tryPending(ctx context.Context, p registry.PendingMessage) bool {
	in := incoming{sender: p.Sender, display: p.SenderDisplay, ctype: p.ContentType, body: p.Body}
	var err error
	if in.content, err = msgpolicy.Unwrap(p.ContentType, p.Body); err != nil {
		m.giveUp(ctx, p, "unsupported content")
		return true
	}
	dctx, cancel := context.WithTimeout(ctx, m.cfg.ForwardTimeout+5*time.Second)
	defer cancel()
	res := m.deliver(dctx, p.Recipient, in)
	switch res.outcome {
	case deferred:
		return false
	case rejected, failed:
		if res.failure != nil && res.failure.Status >= 500 {
			return false // the SCP or the terminal may recover
		}
		why := res.decision.Text
		if res.failure != nil {
			why = res.failure.Text
		}
		m.giveUp(ctx, p, why)
		return true
	}
	if ok, err := m.cfg.Pending.DeletePending(ctx, p.ID); err != nil || !ok {
		m.s.log.Warn("delivered message not removed", "id", p.ID, "err", err)
	}
	m.s.log.Info("kept message delivered", "to", p.Recipient, "from", p.Sender, "attempts", p.Attempts+1, "as", res.action.String())
	m.notifySender(ctx, p, msgpolicy.DeliveredText(p.Recipient))
	return true
}

func (m *messenger) retryLater(ctx context.Context, p registry.PendingMessage, now time.Time) {
	wait := m.cfg.RetryMin
	for i := 0; i < p.Attempts && wait < m.cfg.RetryMax; i++ {
		wait *= 2
	}
	wait = min(wait, m.cfg.RetryMax)
	if err := m.cfg.Pending.ReschedulePending(ctx, p.ID, p.Attempts+1, now.Add(wait)); err != nil && ctx.Err() == nil {
		m.s.log.Warn("pending message not rescheduled", "id", p.ID, "err", err)
	}
}

func (m *messenger) giveUp(ctx context.Context, p registry.PendingMessage, why string) {
	if _, err := m.cfg.Pending.DeletePending(ctx, p.ID); err != nil {
		m.s.log.Warn("pending message not removed", "id", p.ID, "err", err)
		return
	}
	m.s.log.Info("kept message given up", "to", p.Recipient, "from", p.Sender, "why", why)
	m.notifySender(ctx, p, msgpolicy.ExpiredText(p.Recipient))
}

// notifySender sends the sender of p an IM from the recipient's address,
// to where the original MESSAGE came from, without waiting for it; ctx
// (the loop's) ends it when the server stops.
func (m *messenger) notifySender(ctx context.Context, p registry.PendingMessage, text string) {
	s := m.s
	if p.ReplyDest == "" || p.ReplyURI == "" {
		return
	}
	var to sipmsg.Uri
	if err := sipmsg.ParseUri(strings.Trim(p.ReplyURI, "<>"), &to); err != nil {
		s.log.Debug("notice not sent: bad reply URI", "err", err)
		return
	}
	transport := p.ReplyTransport
	if transport == "" {
		transport = "UDP"
	}
	req := sipmsg.NewRequest(sipmsg.MESSAGE, to)
	from := &sipmsg.FromHeader{Address: sipmsg.Uri{Scheme: "sip", User: p.Recipient, Host: s.cfg.Domain}, Params: sipmsg.NewParams()}
	from.Params.Add("tag", sipmsg.GenerateTagN(16))
	toH := &sipmsg.ToHeader{Address: to, Params: sipmsg.NewParams()}
	callID := sipmsg.CallIDHeader(newCallID())
	mf := sipmsg.MaxForwardsHeader(70)
	req.AppendHeader(from)
	req.AppendHeader(toH)
	req.AppendHeader(&callID)
	req.AppendHeader(&sipmsg.CSeqHeader{SeqNo: 1, MethodName: sipmsg.MESSAGE})
	req.AppendHeader(&mf)
	req.AppendHeader(sipmsg.NewHeader("Content-Type", "text/plain;charset=utf-8"))
	req.AppendHeader(sipmsg.NewHeader("User-Agent", s.cfg.UserAgent))
	req.SetBody([]byte(text))
	req.SetTransport(strings.ToUpper(transport))
	req.SetDestination(p.ReplyDest)
	req.Laddr = s.laddr(transport)
	m.notices.Add(1)
	go func() {
		defer m.notices.Done()
		if _, err := m.send(ctx, req); err != nil {
			s.log.Debug("delivery notice not delivered", "to", p.Sender, "err", err)
		}
	}()
}
