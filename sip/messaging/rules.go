package messaging

import (
	"context"
	"errors"
	"strings"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/mediastore"
	"github.com/imcall/b2bua/msgpolicy"
	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/sip"
)

// MediaPutter stores content for store-and-link; *mediastore.Store
// implements it.
type MediaPutter interface {
	Put(ctx context.Context, it mediastore.Item) (mediastore.Stored, error)
}

// PendingStore keeps messages for recipients who are absent or busy
// (registry.MediaStore's part).
type PendingStore interface {
	AddPending(ctx context.Context, p registry.PendingMessage) (int64, error)
	DuePending(ctx context.Context, now time.Time, limit int) ([]registry.PendingMessage, error)
	PendingFor(ctx context.Context, recipient string) ([]registry.PendingMessage, error)
	ReschedulePending(ctx context.Context, id int64, attempts int, next time.Time) error
	DeletePending(ctx context.Context, id int64) (bool, error)
}

// TerminalFinder gives an IM user's active terminal (the registry's).
type TerminalFinder interface {
	ActiveTerminal(ctx context.Context, imID string) (registry.Terminal, error)
}

// BindingLister gives a user's live SIP registrations, newest first (the
// registry's).
type BindingLister interface {
	Bindings(ctx context.Context, imID string, now time.Time) ([]registry.Binding, error)
}

// Rules turn on the media rules of MESSAGE (RFC 3428): forward to a
// terminal that renders the content, store it and send a link to one that
// does not, keep it for one that is absent or busy. Media, Pending and
// Terminals are required.
type Rules struct {
	Media     MediaPutter
	Pending   PendingStore
	Terminals TerminalFinder // the terminal of a MESSAGE's recipient in a call
	Bindings  BindingLister  // how a smart terminal registered; nil: UDP is assumed
	// BaseURL is the start of every link, e.g. "http://192.0.2.1:8080";
	// the token path is appended. When it is "", LinkBase gives it (for a
	// daemon whose HTTP address is known only once it listens).
	BaseURL  string
	LinkBase func() string
	// MaxSize is the largest MESSAGE body accepted (413 above it); 0:
	// DefaultMaxMessageSize. The SIP stack reads no message over 64 KiB
	// at all, so a larger value has no effect.
	MaxSize int
	// ForwardTimeout bounds one attempt to reach a terminal, under the
	// sender's own 32 s transaction timeout; 0: 8s.
	ForwardTimeout time.Duration
	// KeepFor is how long a deferred message is kept; 0: 7 days.
	KeepFor time.Duration
	// RetryMin and RetryMax bound the backoff between attempts to reach an
	// absent recipient: RetryMin, doubling up to RetryMax. 0: 10s, 10min.
	RetryMin, RetryMax time.Duration
}

func (r *Rules) withDefaults() (Rules, error) {
	if r.Media == nil || r.Pending == nil || r.Terminals == nil {
		return Rules{}, errors.New("messaging: Rules.Media, Rules.Pending and Rules.Terminals are required")
	}
	if r.BaseURL == "" && r.LinkBase == nil {
		return Rules{}, errors.New("messaging: Rules.BaseURL or Rules.LinkBase is required")
	}
	c := *r
	if c.MaxSize <= 0 {
		c.MaxSize = DefaultMaxMessageSize
	}
	if c.ForwardTimeout <= 0 {
		c.ForwardTimeout = 8 * time.Second
	}
	if c.KeepFor <= 0 {
		c.KeepFor = 7 * 24 * time.Hour
	}
	if c.RetryMin <= 0 {
		c.RetryMin = 10 * time.Second
	}
	if c.RetryMax < c.RetryMin {
		c.RetryMax = max(10*time.Minute, c.RetryMin)
	}
	return c, nil
}

// DefaultMaxMessageSize is the default limit of a MESSAGE body: what fits
// in the 64 KiB the SIP stack parses (sipgo's ParseMaxMessageLength) with
// room for the headers.
const DefaultMaxMessageSize = 60 << 10

func (m *Messenger) linkBase() string {
	if m.rules.BaseURL != "" {
		return m.rules.BaseURL
	}
	return m.rules.LinkBase()
}

// incoming is a MESSAGE as the rules see it.
type incoming struct {
	sender   string // IM ID (or From user of a trusted peer)
	display  string
	ctype    string // Content-Type as sent
	body     []byte
	content  msgpolicy.Content
	wireSize int
}

// read checks what can be checked before routing: the body's type and
// size, and the UDP size rule. ok is false when it has answered.
func (m *Messenger) read(req *sipmsg.Request, tx sipmsg.ServerTransaction, inDialog bool) (incoming, bool) {
	in := incoming{body: req.Body(), wireSize: len(req.String())}
	if h := req.ContentType(); h != nil {
		in.ctype = h.Value()
	}
	if from := req.From(); from != nil {
		in.sender, in.display = from.Address.User, from.DisplayName
	}
	pre := msgpolicy.Input{BodySize: len(in.body), MaxSize: m.rules.MaxSize, Transport: req.Transport(), WireSize: in.wireSize,
		InDialog: inDialog, Reach: msgpolicy.Online, Caps: registry.CapAudio | registry.CapText | registry.CapImage | registry.CapVideo, ForwardFits: true}
	var err error
	in.content, err = msgpolicy.Unwrap(in.ctype, in.body)
	pre.ContentType = in.content.Type
	if err != nil {
		// Only the size rules come before the body's type; past them the
		// answer is 415 saying what is wrong with the body (a broken
		// message/cpim wrapper, an unreadable Content-Type).
		pre.ContentType = "text/plain"
	}
	d := msgpolicy.Decide(pre)
	if d.Action != msgpolicy.Reject && err != nil {
		d = msgpolicy.Decision{Action: msgpolicy.Reject, Status: 415, Text: err.Error()}
	}
	if d.Action == msgpolicy.Reject {
		m.reject(tx, req, d)
		return in, false
	}
	return in, true
}

// outOfDialog handles a MESSAGE outside any call: authenticated like an
// INVITE, routed like a call, then forwarded, linked or kept.
func (m *Messenger) outOfDialog(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
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
	in, ok := m.read(req, tx, false)
	if !ok {
		return
	}
	if sender != "" {
		in.sender = sender
	}
	if in.sender == "" {
		in.sender = "anonymous"
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.rules.ForwardTimeout+5*time.Second)
	defer cancel()
	pending := registry.PendingMessage{
		Recipient: callee, Sender: in.sender, SenderDisplay: in.display, ContentType: in.ctype, Body: in.body,
		ReplyURI: req.From().Address.String(), ReplyDest: req.Source(), ReplyTransport: req.Transport(),
	}
	res := m.deliver(ctx, callee, in)
	m.obs.MessageDecided(decision(res))
	switch res.outcome {
	case rejected:
		if res.failure != nil {
			// Routing's own answer: its Q.850 cause and Retry-After.
			m.sip.RespondFailure(tx, req, res.failure)
			return
		}
		m.reject(tx, req, res.decision)
	case delivered:
		status := res.status
		if res.action == msgpolicy.StoreLink {
			// The terminal has a link, not the content: accepted, not
			// delivered as sent (RFC 3428 §7 lets 202 say so).
			status = 202
		}
		m.answer(tx, req, status, "")
	case failed:
		m.sip.RespondFailure(tx, req, res.failure)
	case deferred:
		if _, err := m.keep(ctx, pending); err != nil {
			m.log.Warn("message not kept", "to", callee, "err", err)
			m.sip.RespondFailure(tx, req, &sip.Failure{Status: 500, Cause: sip.CauseTemporaryFailure, Text: "message store unavailable", RetryAfter: 30})
			return
		}
		m.log.Info("message kept for later delivery", "to", callee, "from", in.sender, "why", res.why)
		m.answer(tx, req, 202, "")
	}
}

// keep stores a deferred message for the delivery loop.
func (m *Messenger) keep(ctx context.Context, p registry.PendingMessage) (int64, error) {
	now := time.Now().UTC()
	p.Created = now
	p.Expires = now.Add(m.rules.KeepFor)
	p.NextAttempt = now.Add(m.rules.RetryMin)
	return m.rules.Pending.AddPending(ctx, p)
}

type outcome int

const (
	delivered outcome = iota // the terminal took it (forwarded or linked)
	deferred                 // keep it for later
	failed                   // answer the sender with failure
	rejected                 // the policy refused it
)

type result struct {
	outcome outcome
	action  msgpolicy.Action
	status  int          // the terminal's 2xx
	failure *sip.Failure // for failed
	why     string       // for deferred
	// decision is the policy's Reject; failure is set instead when
	// routing gave the answer.
	decision msgpolicy.Decision
}

// deliver routes one message to callee's terminal and acts on the
// decision.
func (m *Messenger) deliver(ctx context.Context, callee string, in incoming) result {
	input := msgpolicy.Input{ContentType: in.content.Type, BodySize: len(in.body), MaxSize: m.rules.MaxSize}
	t, err := m.sip.Route(ctx, callee)
	if err != nil {
		f := sip.AsFailure(err)
		switch f.Status {
		case 480:
			input.Reach = msgpolicy.Absent
		case 486:
			input.Reach = msgpolicy.Busy
		default:
			input.Reach, input.RouteStatus, input.RouteText = msgpolicy.Unreachable, f.Status, f.Text
		}
	} else {
		input.Reach = msgpolicy.Online
		input.Caps = t.Terminal.Caps
	}
	var out *sipmsg.Request
	if input.Reach == msgpolicy.Online {
		out = m.newMessage(t, in.sender, in.display, callee, in.ctype, in.body)
		input.ForwardFits = fits(out)
	}
	d := msgpolicy.Decide(input)
	switch d.Action {
	case msgpolicy.Reject:
		if input.Reach == msgpolicy.Unreachable {
			return result{outcome: rejected, decision: d, failure: sip.AsFailure(err)}
		}
		return result{outcome: rejected, decision: d}
	case msgpolicy.Defer:
		return result{outcome: deferred, why: d.Text}
	case msgpolicy.StoreLink:
		st, err := m.rules.Media.Put(ctx, mediastore.Item{Owner: callee, Sender: in.sender, ContentType: in.content.RawType, Data: in.content.Data})
		if err != nil {
			m.log.Warn("media not stored", "to", callee, "err", err)
			return result{outcome: failed, failure: &sip.Failure{Status: 500, Cause: sip.CauseTemporaryFailure, Text: "media store unavailable", RetryAfter: 30, Err: err}}
		}
		text := msgpolicy.LinkText(in.sender, in.content.Type, len(in.content.Data), mediastore.Link(m.linkBase(), st.Token))
		out = m.newMessage(t, in.sender, in.display, callee, "text/plain;charset=utf-8", []byte(text))
		m.log.Info("media linked", "to", callee, "from", in.sender, "media", mediastore.LogID(st.Token), "why", d.Text)
	}
	fctx, cancel := context.WithTimeout(ctx, m.rules.ForwardTimeout)
	res, err := m.send(fctx, out)
	cancel()
	switch {
	case err != nil || res.StatusCode == 408 || res.StatusCode == 480 || res.StatusCode == 486:
		// The terminal is not there after all: keep the message.
		why := "terminal not answering"
		if res != nil {
			why = "terminal answered " + res.Reason
		}
		return result{outcome: deferred, action: d.Action, why: why}
	case res.StatusCode >= 300:
		return result{outcome: failed, action: d.Action, failure: sip.FailureFromResponse(res)}
	}
	return result{outcome: delivered, action: d.Action, status: res.StatusCode}
}

// fits applies RFC 3261 §18.1.1 to a request we send: over UDP it must not
// exceed 1300 bytes (sipgo refuses to send it otherwise).
func fits(out *sipmsg.Request) bool {
	if !strings.EqualFold(out.Transport(), "UDP") {
		return true
	}
	return len(out.String()) <= msgpolicy.MaxUDPMessage
}

// newMessage builds a MESSAGE towards target that says nothing of the
// sender's topology: From is the sender's IM address in our domain.
func (m *Messenger) newMessage(t sip.Target, sender, display, callee, ctype string, body []byte) *sipmsg.Request {
	out := sipmsg.NewRequest(sipmsg.MESSAGE, t.URI)
	from := &sipmsg.FromHeader{DisplayName: display, Address: sipmsg.Uri{Scheme: "sip", User: sender, Host: m.sip.Domain()}, Params: sipmsg.NewParams()}
	from.Params.Add("tag", sipmsg.GenerateTagN(16))
	to := &sipmsg.ToHeader{Address: sipmsg.Uri{Scheme: "sip", User: callee, Host: m.sip.Domain()}, Params: sipmsg.NewParams()}
	// Our Via now, so that the size check sees the request as sent.
	out.AppendHeader(m.sip.Via(t.Transport))
	m.addHeaders(out, from, to, ctype)
	out.SetBody(body)
	out.SetTransport(t.Transport)
	out.SetDestination(t.Dest)
	out.Laddr = m.sip.LocalAddr(t.Transport)
	return out
}

// inDialog applies the rules to a MESSAGE inside a call. The terminal is
// the call's, so nothing is kept for later: content the recipient's
// terminal cannot render is stored and the MESSAGE relayed with a link
// instead. A recipient without a terminal of its own (the caller's side)
// gets the MESSAGE as it came.
func (m *Messenger) inDialog(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	in, ok := m.read(req, tx, true)
	if !ok {
		return
	}
	recipient := req.To().Address.User
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	t, err := m.rules.Terminals.ActiveTerminal(ctx, recipient)
	if err != nil {
		m.sip.RelayInDialog(req, tx)
		return
	}
	input := msgpolicy.Input{ContentType: in.content.Type, BodySize: len(in.body), MaxSize: m.rules.MaxSize, InDialog: true,
		Reach: msgpolicy.Online, Caps: t.Caps, ForwardFits: m.fitsTerminal(ctx, t, in.wireSize)}
	d := msgpolicy.Decide(input)
	switch d.Action {
	case msgpolicy.Reject:
		m.reject(tx, req, d)
		return
	case msgpolicy.StoreLink:
		st, err := m.rules.Media.Put(ctx, mediastore.Item{Owner: t.IMID, Sender: in.sender, ContentType: in.content.RawType, Data: in.content.Data})
		if err != nil {
			m.log.Warn("media not stored", "to", t.IMID, "err", err)
			m.sip.RespondFailure(tx, req, &sip.Failure{Status: 500, Cause: sip.CauseTemporaryFailure, Text: "media store unavailable", RetryAfter: 30})
			return
		}
		text := msgpolicy.LinkText(in.sender, in.content.Type, len(in.content.Data), mediastore.Link(m.linkBase(), st.Token))
		req.RemoveHeader("Content-Type")
		req.AppendHeader(sipmsg.NewHeader("Content-Type", "text/plain;charset=utf-8"))
		req.SetBody([]byte(text))
		m.log.Info("media linked in call", "to", t.IMID, "from", in.sender, "media", mediastore.LogID(st.Token), "why", d.Text)
	}
	m.sip.RelayInDialog(req, tx)
}

// fitsTerminal guesses, without touching the call's state, whether a
// relayed request of about size bytes fits the transport towards t: a
// legacy terminal is reached over UDP, a smart one over the transport it
// registered from.
func (m *Messenger) fitsTerminal(ctx context.Context, t registry.Terminal, size int) bool {
	transport := "udp"
	if t.Kind == registry.Smart && m.rules.Bindings != nil {
		if bs, err := m.rules.Bindings.Bindings(ctx, t.IMID, time.Now()); err == nil && len(bs) > 0 {
			transport = bs[0].Transport
		}
	}
	return !strings.EqualFold(transport, "udp") || size <= msgpolicy.MaxUDPMessage
}

// decision names res for the Observer.
func decision(res result) string {
	switch res.outcome {
	case rejected:
		return DecisionReject
	case deferred:
		return DecisionDefer
	case delivered:
		if res.action == msgpolicy.StoreLink {
			return DecisionLink
		}
		return DecisionForward
	}
	return DecisionFail
}
