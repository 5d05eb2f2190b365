// Package confcall answers calls to conference URIs (sip:conf-ID@DOMAIN):
// the caller joins the conference as a participant (dialed-in), its
// media is anchored on the RTP proxy and mixed (confmedia), and the call's
// end (a BYE either way) ends the participant with its cause. It also
// hangs up a participant the owner kicks, with a Reason (RFC 3326).
//
// The call core hands it the INVITEs and the requests of its dialogs
// (sip.Server.HandleConferences).
package confcall

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/conference"
	"github.com/imcall/b2bua/confmedia"
	"github.com/imcall/b2bua/rtpproxy"
	"github.com/imcall/b2bua/sip"
)

// SIP is what the service needs of the SIP server (sip.Server has it).
type SIP interface {
	Request(ctx context.Context, req *sipmsg.Request) (sipmsg.ClientTransaction, error)
	WriteRequest(req *sipmsg.Request) error
	Domain() string
	LocalAddr(transport string) sipmsg.Addr
	Contact(transport string) *sipmsg.ContactHeader
	UserAgent() string
}

// Conferences is the conferences' state (conference.Manager): a caller
// put on a roster, a conference created by its factory URI, a participant
// added by REFER.
type Conferences interface {
	Join(confID, target, display string) (conference.Leg, error)
	Create(ctx context.Context, owner string, dial []string) (conference.Created, error)
	Add(ctx context.Context, confID, target, display string) (conference.Participant, error)
	Conference(id string) (*conference.Conference, error)
}

// Media anchors a call's media (rtpproxy.Proxy).
type Media interface {
	NewCall(ctx context.Context, cc rtpproxy.CallConfig) (*rtpproxy.Call, error)
}

// Mix is the conferences' mixers (confmedia.Bridge).
type Mix interface {
	Join(confID, pid string, relay confmedia.Relay, leg, bridgeLeg rtpproxy.Leg, c confmedia.Codec) error
	Leave(confID, pid string) error
}

// Config is what New needs; SIP, Conferences, Media and Mix are
// required.
type Config struct {
	SIP         SIP
	Conferences Conferences
	Media       Media
	Mix         Mix
	// Router routes dial-outs to IM users; nil: no dial-out.
	Router Router
	// Trunk is host:port where dial-outs to +E.164 numbers go; "": none.
	Trunk string
	// RingTimeout is how long a dial-out rings before it is CANCELed; 0: 60s.
	RingTimeout time.Duration
	// MediaTimeout ends a member's call that sent no RTP this long; 0: 60s.
	MediaTimeout time.Duration
	// Records keeps each member's call record; nil: none kept.
	Records Records
	// T1 is the SIP timer T1 the 2xx of a dial-in is retransmitted on
	// until its ACK (RFC 3261 §13.3.1.4); 0: 500ms.
	T1     time.Duration
	Logger *slog.Logger
}

// The member's and the bridge's legs on the member's relay call.
const (
	memberLeg rtpproxy.Leg = "member"
	bridgeLeg rtpproxy.Leg = "bridge"
)

// Service holds the conference calls of this node.
type Service struct {
	cfg  Config
	log  *slog.Logger
	ctx  context.Context // ends at Close: dial-outs give up
	stop context.CancelFunc

	mu      sync.Mutex
	byKey   map[string]*member // Call-ID and our tag
	byPart  map[string]*member // conference ID and participant ID
	wg      sync.WaitGroup
	closing bool
}

// New checks cfg and returns a Service without calls.
func New(cfg Config) (*Service, error) {
	if cfg.SIP == nil || cfg.Conferences == nil || cfg.Media == nil || cfg.Mix == nil {
		return nil, errors.New("confcall: SIP, Conferences, Media and Mix are required")
	}
	if cfg.Trunk != "" {
		if _, _, err := net.SplitHostPort(cfg.Trunk); err != nil {
			return nil, fmt.Errorf("confcall: trunk %q: %w", cfg.Trunk, err)
		}
	}
	if cfg.RingTimeout <= 0 {
		cfg.RingTimeout = 60 * time.Second
	}
	if cfg.MediaTimeout <= 0 {
		cfg.MediaTimeout = 60 * time.Second
	}
	if cfg.T1 <= 0 {
		cfg.T1 = sipmsg.T1
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Service{cfg: cfg, log: log, ctx: ctx, stop: cancel, byKey: map[string]*member{}, byPart: map[string]*member{}}, nil
}

// member is one participant's call.
type member struct {
	confID, pid string
	leg         conference.Leg
	out         *outCall // a dial-out's INVITE; nil for a dial-in
	once        sync.Once
	done        chan struct{} // closed when the member has ended
	ackSeq      atomic.Uint32 // CSeq of the latest ACK from the member
	ackCh       chan struct{} // told of each ACK (one pending at most)
	held        atomic.Bool

	mu   sync.Mutex // guards what follows once the call is shared
	call *rtpproxy.Call
	dlg  dialog
	key  string
	rec  record
}

func newMember(confID, pid string, leg conference.Leg) *member {
	return &member{confID: confID, pid: pid, leg: leg, done: make(chan struct{}), ackCh: make(chan struct{}, 1)}
}

func partKey(confID, pid string) string { return confID + "\x00" + pid }

// HandleInvite answers an INVITE to sip:conf-ID@DOMAIN from caller.
func (s *Service) HandleInvite(req *sipmsg.Request, tx sipmsg.ServerTransaction, caller string) {
	confID := strings.TrimPrefix(req.Recipient.User, sip.ConferencePrefix)
	offer := req.Body()
	if len(offer) == 0 {
		// A delayed offer (RFC 3261 §13.2.1) would need our offer in the
		// 200 and the answer in the ACK; not taken yet.
		s.fail(tx, req, 488, "an SDP offer is required to join a conference")
		return
	}
	if _, _, err := confmedia.Answer(offer); err != nil {
		s.fail(tx, req, 488, "no G.711 audio offered")
		return
	}
	if req.Recipient.User == sip.ConferenceFactory {
		// RFC 4579 §5.2: the factory makes a conference, the caller its
		// owner and first participant.
		c, err := s.cfg.Conferences.Create(context.Background(), caller, nil)
		if err != nil {
			s.fail(tx, req, 403, "only an IM user may create a conference: "+err.Error())
			return
		}
		confID = c.ID
		s.log.Info("conference created by its factory URI", "conference", confID, "owner", caller)
	}
	display := req.From().DisplayName
	leg, err := s.cfg.Conferences.Join(confID, caller, display)
	if err != nil {
		if errors.Is(err, conference.ErrNotFound) {
			s.fail(tx, req, 404, "no such conference")
		} else {
			s.fail(tx, req, 480, err.Error())
		}
		return
	}
	m := newMember(confID, leg.ParticipantID(), leg)
	answer, err := s.anchor(m, req, offer)
	if err != nil {
		s.log.Warn("confcall: media", "conference", confID, "err", err)
		_ = leg.Ended(conference.Ending{Method: conference.Failed, SIPCode: 503, Q850: 47, Reason: "no media resources"})
		s.fail(tx, req, 503, "no media resources")
		return
	}
	m.dlg = newDialog(req)
	m.key = m.dlg.callID + "\x00" + m.dlg.localTag
	now := time.Now().UTC()
	m.rec = record{callID: m.dlg.callID, caller: req.From().Address.Addr(), callee: sip.ConferencePrefix + confID, started: now, answered: now}
	res := sipmsg.NewResponseFromRequest(req, 200, "OK", answer)
	res.To().Params.Add("tag", m.dlg.localTag)
	res.AppendHeader(s.focusContact(confID, req.Transport()))
	res.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
	res.AppendHeader(sipmsg.NewHeader("Server", s.cfg.SIP.UserAgent()))
	s.mu.Lock()
	s.byKey[m.key], s.byPart[partKey(confID, m.pid)] = m, m
	s.mu.Unlock()
	// Connected before the 200 leaves, so that whoever got the 200 sees
	// the participant connected.
	_ = leg.Connected()
	if err := tx.Respond(res); err != nil {
		s.end(m, conference.Ending{Method: conference.Failed, Reason: "answer not sent: " + err.Error()})
		return
	}
	s.expectAck(m, tx, res, true)
	s.log.Info("conference call joined", "conference", confID, "participant", m.pid, "caller", caller)
}

// anchor opens the member's relay call, runs the offer/answer with the
// bridge's side (confmedia.Answer) and joins the mix.
func (s *Service) anchor(m *member, req *sipmsg.Request, offer []byte) ([]byte, error) {
	call, err := s.cfg.Media.NewCall(context.Background(), rtpproxy.CallConfig{ID: req.CallID().Value()})
	if err != nil {
		return nil, err
	}
	ours, codec, err := confmedia.Answer(offer)
	if err == nil {
		_, err = call.RewriteOffer(memberLeg, bridgeLeg, offer)
	}
	var answer []byte
	if err == nil {
		answer, err = call.RewriteAnswer(bridgeLeg, memberLeg, ours)
	}
	if err == nil {
		call.Answered()
		err = s.cfg.Mix.Join(m.confID, m.pid, call, memberLeg, bridgeLeg, codec)
	}
	if err != nil {
		call.Close()
		return nil, err
	}
	m.call = call
	return answer, nil
}

func (s *Service) fail(tx sipmsg.ServerTransaction, req *sipmsg.Request, status int, text string) {
	res := sipmsg.NewResponseFromRequest(req, status, sip.ReasonPhrase(status), nil)
	res.AppendHeader(sipmsg.NewHeader("Server", s.cfg.SIP.UserAgent()))
	res.AppendHeader(sipmsg.NewHeader("Warning", `399 b2bua "`+strings.ReplaceAll(text, `"`, `'`)+`"`))
	_ = tx.Respond(res)
}

// Hangup ends a participant's call (kick, end): BYE with Reason once
// answered, CANCEL while a dial-out rings.
func (s *Service) Hangup(ctx context.Context, confID, pid string, why conference.Ending) error {
	s.mu.Lock()
	m := s.byPart[partKey(confID, pid)]
	s.mu.Unlock()
	if m == nil {
		return fmt.Errorf("confcall: %s in %s: %w", pid, confID, conference.ErrNotLive)
	}
	if m.out != nil && s.cancel(m, why) {
		return nil // the 487 (or a 2xx racing the CANCEL) ends it
	}
	// The call is over whether or not the BYE is answered (RFC 3261
	// §15.1.1: no answer ends the dialog too).
	if err := s.bye(ctx, m, why); err != nil {
		s.log.Info("confcall: BYE not answered", "conference", confID, "participant", pid, "err", err)
	}
	s.end(m, why)
	return nil
}

// end releases a member once: out of the mix, its relay call closed, its
// participant ended.
func (s *Service) end(m *member, why conference.Ending) {
	m.once.Do(func() {
		s.mu.Lock()
		if s.byKey[m.key] == m {
			delete(s.byKey, m.key)
		}
		delete(s.byPart, partKey(m.confID, m.pid))
		s.mu.Unlock()
		close(m.done)
		if err := s.cfg.Mix.Leave(m.confID, m.pid); err != nil {
			s.log.Debug("confcall: leave", "err", err)
		}
		s.writeRecord(m, why, legStats(m))
		m.mu.Lock()
		call := m.call
		m.mu.Unlock()
		if call != nil {
			call.Close()
		}
		_ = m.leg.Ended(why)
		s.log.Info("conference call ended", "conference", m.confID, "participant", m.pid, "method", why.Method, "sip", why.SIPCode, "cause", why.Q850, "reason", why.Reason)
	})
}

// Talking passes the mixer's speech detection to the participant's state
// (confmedia.BridgeConfig.Talking); it does not block.
func (s *Service) Talking(confID, pid string, on bool) {
	s.mu.Lock()
	m := s.byPart[partKey(confID, pid)]
	s.mu.Unlock()
	if m != nil {
		_ = m.leg.Talking(on)
	}
}

// Close hangs up every call, CANCELs every dial-out still ringing, and
// waits for the calls' goroutines.
func (s *Service) Close() error {
	s.mu.Lock()
	s.closing = true
	ms := make([]*member, 0, len(s.byPart))
	for _, m := range s.byPart {
		ms = append(ms, m)
	}
	s.mu.Unlock()
	s.stop()
	// All at once: a shutdown waits for the slowest BYE, not their sum.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var hung sync.WaitGroup
	for _, m := range ms {
		hung.Add(1)
		go func() {
			defer hung.Done()
			_ = s.Hangup(ctx, m.confID, m.pid, conference.Ending{Method: conference.Booted, Q850: 16, Reason: "service shutting down"})
		}()
	}
	hung.Wait()
	s.wg.Wait()
	return nil
}

// focusContact is our Contact in a conference's dialogs: the conference
// URI at our address, marked isfocus (RFC 4579 §3, RFC 3840), so that a
// participant's UA knows it talks to a conference and can REFER to it.
func (s *Service) focusContact(confID, transport string) *sipmsg.ContactHeader {
	c := s.cfg.SIP.Contact(transport)
	c.Address.User = sip.ConferencePrefix + confID
	if c.Params == nil {
		c.Params = sipmsg.NewParams()
	}
	c.Params.Add("isfocus", "")
	return c
}

func newCallID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func newTag() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
