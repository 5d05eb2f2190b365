package confevent

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/conference"
)

// dialog is the notifier's side of a subscription's dialog (RFC 6665 §4.1:
// the SUBSCRIBE's 200 creates it; we are its UAS).
type dialog struct {
	callID, localTag, remoteTag string
	local, remote               sipmsg.Uri
	target                      sipmsg.Uri // the subscriber's Contact
	routeSet                    []string   // Record-Route, in order (RFC 3261 §12.1.1)
	dest                        string     // where the SUBSCRIBE came from
	transport                   string
	seq                         uint32
}

// subscription is one subscriber's watch of one conference. Its goroutine
// (run) owns the dialog and the Notifier; refresh talks to it.
type subscription struct {
	key     string
	dlg     dialog
	conf    *conference.Conference
	expires chan time.Duration // a refresh: the new duration, 0 to end
}

func (s *Service) newSubscription(req *sipmsg.Request, conf *conference.Conference, expires time.Duration) *subscription {
	d := dialog{
		callID: req.CallID().Value(), localTag: newTag(),
		local: req.To().Address, remote: req.From().Address,
		dest: req.Source(), transport: req.Transport(),
	}
	d.remoteTag, _ = req.From().Params.Get("tag")
	d.target = req.From().Address
	if c := req.Contact(); c != nil {
		d.target = c.Address
	}
	for _, h := range req.GetHeaders("Record-Route") {
		d.routeSet = append(d.routeSet, h.Value())
	}
	sub := &subscription{key: key(d.callID, d.localTag), dlg: d, conf: conf, expires: make(chan time.Duration, 1)}
	sub.expires <- expires
	return sub
}

// refresh hands a new duration to the subscription's loop; only the latest
// matters, so an unread one is replaced.
func (sub *subscription) refresh(d time.Duration) {
	for {
		select {
		case sub.expires <- d:
			return
		default:
			select {
			case <-sub.expires:
			default:
			}
		}
	}
}

func (s *Service) start(sub *subscription) {
	s.mu.Lock()
	s.subs[sub.key] = sub
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() {
			s.mu.Lock()
			delete(s.subs, sub.key)
			s.mu.Unlock()
		}()
		s.run(sub)
	}()
}

// run sends the NOTIFYs of one subscription until it ends: expired,
// unsubscribed, the conference ended, the subscriber stopped answering, or
// the service closed.
func (s *Service) run(sub *subscription) {
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	watch := sub.conf.Watch(ctx)
	log := s.log.With("conference", sub.conf.ID(), "call_id", sub.dlg.callID)
	var n conference.Notifier
	last := <-watch.Events() // Watch queues the full state at once
	d := <-sub.expires
	until := time.Now().Add(d)
	timer := time.NewTimer(d)
	defer timer.Stop()
	// send renders ev and notifies it; reason, when not empty, makes it the
	// last NOTIFY (RFC 6665 §4.2.2). It reports whether to go on.
	send := func(ev conference.Event, reason string) bool {
		doc, err := n.Document(ev)
		if err != nil {
			log.Error("confevent: document", "err", err)
			return false
		}
		state := "active;expires=" + strconv.Itoa(max(1, int(time.Until(until).Round(time.Second)/time.Second)))
		if reason != "" {
			state = "terminated;reason=" + reason
		}
		if err := s.notify(&sub.dlg, state, doc); err != nil {
			log.Info("confevent: subscription ended: NOTIFY failed", "err", err)
			return false
		}
		if reason != "" {
			log.Info("confevent: subscription ended", "reason", reason)
			return false
		}
		return true
	}
	// The final state again, with nothing marked as changed.
	final := func() conference.Event {
		ev := last
		ev.Changed, ev.Removed, ev.Full = nil, nil, false
		return ev
	}
	if d == 0 {
		send(last, "timeout") // a fetch (RFC 6665 §4.4.3): one NOTIFY, then over
		return
	}
	if !send(last, "") {
		return
	}
	th := throttle{every: s.cfg.TalkingInterval}
	th.sentNow(last, time.Now())
	hold := time.NewTimer(0)
	<-hold.C
	defer hold.Stop()
	for {
		select {
		case ev, ok := <-watch.Events():
			if !ok {
				// The conference ended; its last event went out already,
				// or is held and goes out with the final NOTIFY's state.
				send(final(), "noresource")
				return
			}
			last = ev
			out, now, at := th.offer(ev, time.Now())
			if !now {
				hold.Reset(time.Until(at))
				continue
			}
			hold.Stop()
			if !send(out, "") {
				return
			}
			th.sentNow(out, time.Now())
		case <-hold.C:
			if ev, ok := th.flush(); ok {
				if !send(ev, "") {
					return
				}
				th.sentNow(ev, time.Now())
			}
		case d := <-sub.expires:
			if d == 0 {
				send(final(), "timeout") // unsubscribed (RFC 6665 §4.2.1.4)
				return
			}
			until = time.Now().Add(d)
			timer.Reset(d)
		case <-timer.C:
			send(final(), "timeout")
			return
		case <-s.ctx.Done():
			send(final(), "noresource")
			return
		}
	}
}

// udpMax is the largest request sent over UDP (RFC 3261 §18.1.1), less
// room for the Via the transaction adds.
const udpMax = 1300 - 100

// errRejected is a NOTIFY answered with a failure: the subscription is over
// (RFC 6665 §4.2.2: 481 and most others end it).
var errRejected = errors.New("NOTIFY rejected")

// notify sends one NOTIFY in the dialog and waits for its final answer.
func (s *Service) notify(d *dialog, state string, body []byte) error {
	d.seq++
	req := sipmsg.NewRequest(sipmsg.NOTIFY, *d.target.Clone())
	from := &sipmsg.FromHeader{Address: d.local, Params: sipmsg.NewParams()}
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
	req.AppendHeader(&sipmsg.CSeqHeader{SeqNo: d.seq, MethodName: sipmsg.NOTIFY})
	req.AppendHeader(&mf)
	for _, r := range d.routeSet {
		req.AppendHeader(sipmsg.NewHeader("Route", r))
	}
	req.AppendHeader(s.cfg.SIP.Contact(d.transport))
	req.AppendHeader(sipmsg.NewHeader("Event", Event))
	req.AppendHeader(sipmsg.NewHeader("Subscription-State", state))
	req.AppendHeader(sipmsg.NewHeader("User-Agent", s.cfg.SIP.UserAgent()))
	req.AppendHeader(sipmsg.NewHeader("Content-Type", conference.ContentType))
	req.SetBody(body)
	transport := d.transport
	// RFC 3261 §18.1.1: a request over 1300 bytes (the path MTU unknown)
	// goes over TCP, which the subscriber's UA must also listen on.
	if strings.EqualFold(transport, "UDP") && len(req.String()) > udpMax {
		transport = "TCP"
	}
	req.SetTransport(transport)
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
	req.Laddr = s.cfg.SIP.LocalAddr(transport)

	// Not the service's context: a final NOTIFY on Close still goes out,
	// bounded by its own timeout.
	timeout := notifyTimeout
	if s.ctx.Err() != nil {
		timeout = closeTimeout // closing: do not wait long for a gone subscriber
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tx, err := s.cfg.SIP.Request(ctx, req)
	if err != nil {
		return fmt.Errorf("NOTIFY: %w", err)
	}
	defer tx.Terminate()
	// A NOTIFY in flight when the service closes gets closeTimeout more,
	// not the rest of its 32 s.
	closing := s.ctx.Done()
	var grace <-chan time.Time
	for {
		select {
		case <-closing:
			closing, grace = nil, time.After(closeTimeout)
		case <-grace:
			return errors.New("NOTIFY: not answered before the service closed")
		case res := <-tx.Responses():
			if res.IsProvisional() {
				continue
			}
			if !res.IsSuccess() {
				return fmt.Errorf("%w: %d %s", errRejected, res.StatusCode, res.Reason)
			}
			return nil
		case <-tx.Done():
			if err := tx.Err(); err != nil {
				return fmt.Errorf("NOTIFY: %w", err)
			}
			return errors.New("NOTIFY: transaction ended without an answer")
		case <-ctx.Done():
			return fmt.Errorf("NOTIFY: %w", ctx.Err())
		}
	}
}
