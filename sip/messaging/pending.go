package messaging

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
// One goroutine, Run's, does both, so a message is never sent twice by two
// deliverers of this node. On delivery
// the sender receives a plain text/plain MESSAGE notice (see
// msgpolicy.DeliveredText), as it does for a failed call; IMDN (RFC 5438)
// would need the sender to have asked for it in a CPIM wrapper, which the
// legacy and SIPp senders this product serves do not do.

// runPending is the delivery loop; it returns when ctx is done.
func (m *Messenger) runPending(ctx context.Context) {
	// Tick at a fraction of the shortest backoff so that a due message
	// waits at most that fraction longer than its schedule.
	tick := time.NewTicker(max(m.rules.RetryMin/4, 20*time.Millisecond))
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

// sweep tries the due messages, or all of recipient's when it is set.
func (m *Messenger) sweep(ctx context.Context, recipient string) {
	now := time.Now().UTC()
	var list []registry.PendingMessage
	var err error
	if recipient != "" {
		list, err = m.rules.Pending.PendingFor(ctx, recipient)
	} else {
		list, err = m.rules.Pending.DuePending(ctx, now, 100)
	}
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("pending messages not read", "err", err)
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
func (m *Messenger) tryPending(ctx context.Context, p registry.PendingMessage) bool {
	in := incoming{sender: p.Sender, display: p.SenderDisplay, ctype: p.ContentType, body: p.Body}
	var err error
	if in.content, err = msgpolicy.Unwrap(p.ContentType, p.Body); err != nil {
		m.giveUp(ctx, p, "unsupported content")
		return true
	}
	dctx, cancel := context.WithTimeout(ctx, m.rules.ForwardTimeout+5*time.Second)
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
	if ok, err := m.rules.Pending.DeletePending(ctx, p.ID); err != nil || !ok {
		m.log.Warn("delivered message not removed", "id", p.ID, "err", err)
	}
	m.log.Info("kept message delivered", "to", p.Recipient, "from", p.Sender, "attempts", p.Attempts+1, "as", res.action.String())
	m.notifySender(p, msgpolicy.DeliveredText(p.Recipient))
	return true
}

func (m *Messenger) retryLater(ctx context.Context, p registry.PendingMessage, now time.Time) {
	wait := m.rules.RetryMin
	for i := 0; i < p.Attempts && wait < m.rules.RetryMax; i++ {
		wait *= 2
	}
	wait = min(wait, m.rules.RetryMax)
	if err := m.rules.Pending.ReschedulePending(ctx, p.ID, p.Attempts+1, now.Add(wait)); err != nil && ctx.Err() == nil {
		m.log.Warn("pending message not rescheduled", "id", p.ID, "err", err)
	}
}

func (m *Messenger) giveUp(ctx context.Context, p registry.PendingMessage, why string) {
	if _, err := m.rules.Pending.DeletePending(ctx, p.ID); err != nil {
		m.log.Warn("pending message not removed", "id", p.ID, "err", err)
		return
	}
	m.log.Info("kept message given up", "to", p.Recipient, "from", p.Sender, "why", why)
	m.notifySender(p, msgpolicy.ExpiredText(p.Recipient))
}

// notifySender sends the sender of p an IM from the recipient's address,
// to where the original MESSAGE came from, without waiting for it; Run's
// end ends it.
func (m *Messenger) notifySender(p registry.PendingMessage, text string) {
	if p.ReplyDest == "" || p.ReplyURI == "" {
		return
	}
	var to sipmsg.Uri
	if err := sipmsg.ParseUri(strings.Trim(p.ReplyURI, "<>"), &to); err != nil {
		m.log.Debug("notice not sent: bad reply URI", "err", err)
		return
	}
	transport := p.ReplyTransport
	if transport == "" {
		transport = "UDP"
	}
	req := sipmsg.NewRequest(sipmsg.MESSAGE, to)
	from := &sipmsg.FromHeader{Address: sipmsg.Uri{Scheme: "sip", User: p.Recipient, Host: m.sip.Domain()}, Params: sipmsg.NewParams()}
	from.Params.Add("tag", sipmsg.GenerateTagN(16))
	m.addHeaders(req, from, &sipmsg.ToHeader{Address: to, Params: sipmsg.NewParams()}, "text/plain;charset=utf-8")
	req.SetBody([]byte(text))
	req.SetTransport(strings.ToUpper(transport))
	req.SetDestination(p.ReplyDest)
	req.Laddr = m.sip.LocalAddr(transport)
	m.background(req, m.rules.ForwardTimeout, "delivery notice", p.Sender)
}
