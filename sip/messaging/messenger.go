// Package messaging is the MESSAGE service of the B2BUA (RFC 3428): the
// relay of instant messages to IM users' terminals, store-and-link of media
// a terminal cannot render, deferred delivery to terminals that are absent
// or busy, and the IM notice a caller gets when a call fails.
//
// It sits beside the call core, not inside it: package sip hands it MESSAGE
// requests, registrations and failed calls through small interfaces
// (sip.MessageHandler, sip.RegisterObserver, sip.Notifier) and never imports
// this package; the Messenger reaches back through the Server interface
// below, which *sip.Server implements. The daemon wires the two:
//
//	srv, _ := sip.NewServer(cfg)
//	m, _ := messaging.New(messaging.Config{SIP: srv, Rules: &messaging.Rules{...}})
//	srv.HandleMessages(m)
//	go m.Run(ctx) // the delivery loop and the notices in flight
package messaging

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/msgpolicy"
	"github.com/imcall/b2bua/sip"
)

// Server is what the Messenger needs of the call core; *sip.Server
// implements it.
type Server interface {
	Domain() string    // the IM domain: users are sip:<im-id>@Domain
	UserAgent() string // our Server/User-Agent header
	// Authenticate challenges an untrusted sender like an INVITE; ok is
	// false when it has answered.
	Authenticate(req *sipmsg.Request, tx sipmsg.ServerTransaction) (user string, ok bool)
	Route(ctx context.Context, imID string) (sip.Target, error)
	// RelayInDialog hands an in-dialog request to its call.
	RelayInDialog(req *sipmsg.Request, tx sipmsg.ServerTransaction)
	// Request starts a client transaction with our Via.
	Request(ctx context.Context, req *sipmsg.Request) (sipmsg.ClientTransaction, error)
	Via(transport string) *sipmsg.ViaHeader
	LocalAddr(transport string) sipmsg.Addr
	RespondFailure(tx sipmsg.ServerTransaction, req *sipmsg.Request, f *sip.Failure)
}

// Config is what New needs. SIP is required.
type Config struct {
	SIP    Server
	Logger *slog.Logger // nil: slog.Default()
	// Rules turns on forward / store-and-link / deferred delivery
	// (rules.go); nil: a MESSAGE is relayed as it came (relay.go).
	Rules *Rules
	// Observer is told each MESSAGE's decision, for metrics; nil: nobody.
	Observer Observer
}

// Observer is told what became of each MESSAGE the rules decided on. It
// runs on the request's handler and must not block.
type Observer interface {
	// MessageDecided gets one of the Decision values.
	MessageDecided(decision string)
}

// Decisions of Observer.MessageDecided.
const (
	DecisionForward = "forward" // delivered as sent
	DecisionLink    = "link"    // stored, a text link delivered instead
	DecisionDefer   = "defer"   // kept for later delivery
	DecisionReject  = "reject"  // refused with a SIP answer
	DecisionFail    = "fail"    // the delivery failed
)

type nopObserver struct{}

func (nopObserver) MessageDecided(string) {}

// Messenger is the MESSAGE service. Run owns its goroutines.
type Messenger struct {
	sip   Server
	log   *slog.Logger
	rules *Rules // with defaults; nil: plain relay
	obs   Observer
	wake  chan string    // recipients to try at once (a REGISTER came in)
	sends sync.WaitGroup // notices in flight, waited for by Run

	// base bounds the notices: they are courtesy messages, so Run's end
	// abandons them rather than wait out Timer F for a caller who has gone.
	base   context.Context
	stop   context.CancelFunc
	mu     sync.Mutex
	closed bool // Run has returned: no new notice
}

// New validates cfg and builds a Messenger; hand it to
// sip.Server.HandleMessages and run Run.
func New(cfg Config) (*Messenger, error) {
	if cfg.SIP == nil {
		return nil, errors.New("messaging: Config.SIP is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	m := &Messenger{sip: cfg.SIP, log: cfg.Logger, obs: cfg.Observer, wake: make(chan string, 64)}
	if cfg.Rules != nil {
		r, err := cfg.Rules.withDefaults()
		if err != nil {
			return nil, err
		}
		m.rules = &r
	}
	m.base, m.stop = context.WithCancel(context.Background())
	return m, nil
}

// Run runs the delivery loop of kept messages until ctx is done, then ends
// the notices still in flight and returns once they have.
func (m *Messenger) Run(ctx context.Context) error {
	defer func() {
		m.mu.Lock()
		m.closed = true
		m.mu.Unlock()
		m.stop()
		m.sends.Wait()
	}()
	if m.rules == nil {
		<-ctx.Done()
		return nil
	}
	m.runPending(ctx)
	return nil
}

// HandleMessage answers a MESSAGE: with Rules the media rules apply,
// without them the plain relay.
func (m *Messenger) HandleMessage(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	tag, _ := req.To().Params.Get("tag")
	switch {
	case tag != "" && m.rules == nil:
		m.sip.RelayInDialog(req, tx)
	case tag != "":
		m.inDialog(req, tx)
	case m.rules == nil:
		m.relay(req, tx)
	default:
		m.outOfDialog(req, tx)
	}
}

// Accept lists the MESSAGE bodies taken (RFC 3261 §11.2).
func (m *Messenger) Accept() string {
	if m.rules == nil {
		return "text/plain"
	}
	return msgpolicy.Accept
}

// Registered asks the delivery loop to try imID's kept messages now.
func (m *Messenger) Registered(imID string) {
	if m.rules == nil {
		return
	}
	select {
	case m.wake <- imID:
	default: // the loop is busy; the next tick catches up
	}
}

// CallFailed tells the caller in an IM why the callee could not be
// reached: a MESSAGE (RFC 3428) from the callee's address to the caller's,
// sent where the caller's INVITE came from.
func (m *Messenger) CallFailed(c sip.FailedCall) {
	req := sipmsg.NewRequest(sipmsg.MESSAGE, c.Contact)
	from := &sipmsg.FromHeader{Address: sipmsg.Uri{Scheme: "sip", User: c.Callee, Host: m.sip.Domain()}, Params: sipmsg.NewParams()}
	from.Params.Add("tag", sipmsg.GenerateTagN(16))
	to := &sipmsg.ToHeader{DisplayName: c.CallerName, Address: c.Caller, Params: sipmsg.NewParams()}
	m.addHeaders(req, from, to, "text/plain;charset=utf-8")
	req.SetBody([]byte(NoticeText(c.Callee, c.Failure)))
	req.SetTransport(c.Transport)
	req.SetDestination(c.Dest)
	req.Laddr = c.Laddr
	m.background(req, 32*time.Second, "IM notice", c.Caller.Addr())
}

// NoticeText is the IM a caller receives when callee could not be reached.
func NoticeText(callee string, f *sip.Failure) string {
	return fmt.Sprintf("%s could not be reached: %s (SIP %d, Q.850 cause %d)", callee, f.Text, f.Status, f.Cause)
}

// addHeaders gives a new out-of-dialog MESSAGE its headers: a fresh
// Call-ID that says nothing of the sender, CSeq 1, Max-Forwards 70.
func (m *Messenger) addHeaders(req *sipmsg.Request, from *sipmsg.FromHeader, to *sipmsg.ToHeader, ctype string) {
	callID := sipmsg.CallIDHeader(newCallID())
	mf := sipmsg.MaxForwardsHeader(70)
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&callID)
	req.AppendHeader(&sipmsg.CSeqHeader{SeqNo: 1, MethodName: sipmsg.MESSAGE})
	req.AppendHeader(&mf)
	req.AppendHeader(sipmsg.NewHeader("Content-Type", ctype))
	req.AppendHeader(sipmsg.NewHeader("User-Agent", m.sip.UserAgent()))
}

// background sends req without waiting for it, for at most timeout, on a
// goroutine Run waits for; once Run has returned it is dropped.
func (m *Messenger) background(req *sipmsg.Request, timeout time.Duration, what, to string) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		m.log.Debug(what+" not sent: stopped", "to", to)
		return
	}
	m.sends.Add(1)
	m.mu.Unlock()
	go func() {
		defer m.sends.Done()
		ctx, cancel := context.WithTimeout(m.base, timeout)
		defer cancel()
		if _, err := m.send(ctx, req); err != nil {
			m.log.Debug(what+" not delivered", "to", to, "err", err)
		}
	}()
}

// send sends out and waits for its final response until ctx is done. It
// waits on the caller's goroutine, so nothing is added to the server's
// call wait group while Shutdown may be waiting on it.
func (m *Messenger) send(ctx context.Context, out *sipmsg.Request) (*sipmsg.Response, error) {
	tx, err := m.sip.Request(ctx, out)
	if err != nil {
		return nil, err
	}
	defer tx.Terminate()
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				continue
			}
			return res, nil
		case <-tx.Done():
			if err := tx.Err(); err != nil {
				return nil, err
			}
			return nil, sipmsg.ErrTransactionTerminated
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// reject answers with the policy's refusal.
func (m *Messenger) reject(tx sipmsg.ServerTransaction, req *sipmsg.Request, d msgpolicy.Decision) {
	m.log.Info("MESSAGE refused", "status", d.Status, "why", d.Text, "from", req.From().Address.User, "to", req.Recipient.User)
	f := &sip.Failure{Status: d.Status, Cause: sip.CauseForStatus(d.Status), Text: d.Text}
	hdrs := []sipmsg.Header{sipmsg.NewHeader("Reason", f.Reason())}
	if d.Status == 415 {
		hdrs = append(hdrs, sipmsg.NewHeader("Accept", msgpolicy.Accept))
	}
	m.answer(tx, req, d.Status, d.Text, hdrs...)
}

// answer responds with the phrases of the answers only MESSAGE gives.
func (m *Messenger) answer(tx sipmsg.ServerTransaction, req *sipmsg.Request, status int, text string, hdrs ...sipmsg.Header) {
	phrase := sip.ReasonPhrase(status)
	switch status {
	case 202:
		phrase = "Accepted"
	case 413:
		phrase = "Request Entity Too Large"
	case 415:
		phrase = "Unsupported Media Type"
	case 513:
		phrase = "Message Too Large"
	}
	res := sipmsg.NewResponseFromRequest(req, status, phrase, nil)
	res.AppendHeader(sipmsg.NewHeader("Server", m.sip.UserAgent()))
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	if text != "" && status >= 300 {
		res.AppendHeader(sipmsg.NewHeader("Warning", `399 b2bua "`+strings.ReplaceAll(text, `"`, `'`)+`"`))
	}
	if err := tx.Respond(res); err != nil {
		m.log.Debug("respond failed", "status", status, "err", err)
	}
}

// newCallID makes a Call-ID that says nothing about the sender.
func newCallID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

var (
	_ sip.MessageHandler   = (*Messenger)(nil)
	_ sip.Notifier         = (*Messenger)(nil)
	_ sip.RegisterObserver = (*Messenger)(nil)
	_ Server               = (*sip.Server)(nil)
)
