// Package confevent serves the conference event package (RFC 4575) over
// SIP event subscriptions (RFC 6665): a SUBSCRIBE with Event: conference to
// a conference URI (sip:conf-ID@DOMAIN) is answered 200, then NOTIFY
// carries the full conference-info document and, on every change, a
// partial one; the subscription lasts for its Expires, is refreshed or
// ended by a SUBSCRIBE in its dialog, and ends with a final NOTIFY
// (Subscription-State: terminated) when it expires or the conference ends.
//
// The call core hands it SUBSCRIBE requests (sip.Server.HandleSubscribe)
// and it reaches back through the Server's exported methods.
package confevent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/conference"
)

// Event is the package name of RFC 4575 §3.1.
const Event = "conference"

// Bounds of a subscription's duration (RFC 6665 §4.2.1.1 lets the notifier
// shorten it, and refuse a too short one with 423 and Min-Expires).
const (
	DefaultExpires = time.Hour
	MinExpires     = 60 * time.Second
)

// notifyTimeout bounds one NOTIFY's transaction: past it, the subscriber is
// gone and the subscription ends (RFC 6665 §4.2.2).
const notifyTimeout = 32 * time.Second

// closeTimeout bounds the final NOTIFY sent when the service closes.
const closeTimeout = 2 * time.Second

// SIP is what the service needs of the SIP server (sip.Server has it).
type SIP interface {
	Authenticate(req *sipmsg.Request, tx sipmsg.ServerTransaction) (user string, ok bool)
	Request(ctx context.Context, req *sipmsg.Request) (sipmsg.ClientTransaction, error)
	LocalAddr(transport string) sipmsg.Addr
	Contact(transport string) *sipmsg.ContactHeader
	UserAgent() string
}

// Conferences finds a conference by ID (conference.Manager has it).
type Conferences interface {
	Conference(id string) (*conference.Conference, error)
}

// Config is what New needs.
type Config struct {
	SIP         SIP         // required
	Conferences Conferences // required
	// TalkingInterval is the least time between NOTIFYs that only change
	// who is talking; 0: DefaultTalkingInterval.
	TalkingInterval time.Duration
	Logger          *slog.Logger
}

// Service holds the subscriptions. Close ends them.
type Service struct {
	cfg    Config
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	subs map[string]*subscription // dialog key (Call-ID, our tag)
}

// New returns a Service without subscriptions.
func New(cfg Config) (*Service, error) {
	if cfg.SIP == nil || cfg.Conferences == nil {
		return nil, errors.New("confevent: SIP and Conferences are required")
	}
	if cfg.TalkingInterval <= 0 {
		cfg.TalkingInterval = DefaultTalkingInterval
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Service{cfg: cfg, log: log, ctx: ctx, cancel: cancel, subs: map[string]*subscription{}}, nil
}

// Close ends every subscription (each gets its final NOTIFY if the
// subscriber still answers within its transaction) and waits for them.
func (s *Service) Close() error {
	s.cancel()
	s.wg.Wait()
	return nil
}

func key(callID, tag string) string { return callID + "\x00" + tag }

// HandleSubscribe answers req: a new subscription, or a refresh or
// unsubscribe of one (a To tag names its dialog).
func (s *Service) HandleSubscribe(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	if ev := req.GetHeader("Event"); ev == nil || !strings.EqualFold(eventPackage(ev.Value()), Event) {
		// RFC 6665 §4.2.1.1: 489, with the packages we serve.
		s.respond(tx, req, 489, "Bad Event", nil, sipmsg.NewHeader("Allow-Events", Event))
		return
	}
	expires, err := requestedExpires(req)
	if err != nil {
		s.respond(tx, req, 400, "Bad Request", nil, warning(err.Error()))
		return
	}
	if expires > 0 && expires < MinExpires {
		s.respond(tx, req, 423, "Interval Too Brief", nil, sipmsg.NewHeader("Min-Expires", strconv.Itoa(int(MinExpires/time.Second))))
		return
	}
	if tag, _ := req.To().Params.Get("tag"); tag != "" {
		s.mu.Lock()
		sub := s.subs[key(req.CallID().Value(), tag)]
		s.mu.Unlock()
		if sub == nil {
			s.respond(tx, req, 481, "Subscription Does Not Exist", nil)
			return
		}
		// RFC 6665 §4.2.1.2: a refresh is answered with the new duration;
		// Expires 0 ends the subscription with a final NOTIFY.
		s.respond(tx, req, 200, "OK", func(res *sipmsg.Response) {
			res.AppendHeader(sipmsg.NewHeader("Expires", strconv.Itoa(int(expires/time.Second))))
		})
		sub.refresh(expires)
		return
	}
	id, ok := strings.CutPrefix(req.Recipient.User, "conf-")
	if !ok {
		s.respond(tx, req, 404, "Not Found", nil, warning("not a conference URI"))
		return
	}
	conf, err := s.cfg.Conferences.Conference(id)
	if err != nil {
		s.respond(tx, req, 404, "Not Found", nil, warning("no such conference"))
		return
	}
	if _, ok := s.cfg.SIP.Authenticate(req, tx); !ok {
		return // challenged
	}
	sub := s.newSubscription(req, conf, expires)
	s.respond(tx, req, 200, "OK", func(res *sipmsg.Response) {
		res.To().Params.Add("tag", sub.dlg.localTag)
		res.AppendHeader(s.cfg.SIP.Contact(req.Transport()))
		res.AppendHeader(sipmsg.NewHeader("Expires", strconv.Itoa(int(expires/time.Second))))
	})
	s.start(sub)
}

// eventPackage is the package of an Event header value, without its
// parameters (RFC 6665 §8.2.1: "conference;id=1").
func eventPackage(v string) string {
	p, _, _ := strings.Cut(v, ";")
	return strings.TrimSpace(p)
}

// requestedExpires is the duration asked for, shortened to ours; none
// asked: DefaultExpires.
func requestedExpires(req *sipmsg.Request) (time.Duration, error) {
	h := req.GetHeader("Expires")
	if h == nil {
		return DefaultExpires, nil
	}
	n, err := strconv.ParseUint(strings.TrimSpace(h.Value()), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("Expires: %q is not a number of seconds", h.Value())
	}
	d := time.Duration(n) * time.Second
	return min(d, DefaultExpires), nil
}

func warning(text string) sipmsg.Header {
	return sipmsg.NewHeader("Warning", `399 b2bua "`+strings.ReplaceAll(text, `"`, `'`)+`"`)
}

func (s *Service) respond(tx sipmsg.ServerTransaction, req *sipmsg.Request, status int, phrase string, edit func(*sipmsg.Response), hdrs ...sipmsg.Header) {
	res := sipmsg.NewResponseFromRequest(req, status, phrase, nil)
	res.AppendHeader(sipmsg.NewHeader("Server", s.cfg.SIP.UserAgent()))
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	if edit != nil {
		edit(res)
	}
	if err := tx.Respond(res); err != nil {
		s.log.Debug("confevent: respond failed", "status", status, "err", err)
	}
}

func newTag() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand does not fail on Linux
	return hex.EncodeToString(b[:])
}
