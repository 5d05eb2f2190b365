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
	"strings"
	"sync"
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
	LocalAddr(transport string) sipmsg.Addr
	Contact(transport string) *sipmsg.ContactHeader
	UserAgent() string
}

// Conferences puts a caller on a conference's roster (conference.Manager).
type Conferences interface {
	Join(confID, target, display string) (conference.Leg, error)
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

// Config is what New needs; every field but Logger is required.
type Config struct {
	SIP         SIP
	Conferences Conferences
	Media       Media
	Mix         Mix
	Logger      *slog.Logger
}

// The member's and the bridge's legs on the member's relay call.
const (
	memberLeg rtpproxy.Leg = "member"
	bridgeLeg rtpproxy.Leg = "bridge"
)

// Service holds the conference calls of this node.
type Service struct {
	cfg Config
	log *slog.Logger

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
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Service{cfg: cfg, log: log, byKey: map[string]*member{}, byPart: map[string]*member{}}, nil
}

// member is one participant's call.
type member struct {
	confID, pid string
	leg         conference.Leg
	call        *rtpproxy.Call
	dlg         dialog
	key         string
	once        sync.Once
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
	m := &member{confID: confID, pid: leg.ParticipantID(), leg: leg}
	answer, err := s.anchor(m, req, offer)
	if err != nil {
		s.log.Warn("confcall: media", "conference", confID, "err", err)
		_ = leg.Ended(conference.Ending{Method: conference.Failed, SIPCode: 503, Q850: 47, Reason: "no media resources"})
		s.fail(tx, req, 503, "no media resources")
		return
	}
	m.dlg = newDialog(req)
	m.key = m.dlg.callID + "\x00" + m.dlg.localTag
	res := sipmsg.NewResponseFromRequest(req, 200, "OK", answer)
	res.To().Params.Add("tag", m.dlg.localTag)
	res.AppendHeader(s.cfg.SIP.Contact(req.Transport()))
	res.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
	res.AppendHeader(sipmsg.NewHeader("Server", s.cfg.SIP.UserAgent()))
	s.mu.Lock()
	s.byKey[m.key], s.byPart[partKey(confID, m.pid)] = m, m
	s.mu.Unlock()
	if err := tx.Respond(res); err != nil {
		s.end(m, conference.Ending{Method: conference.Failed, Reason: "answer not sent: " + err.Error()})
		return
	}
	_ = leg.Connected()
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

// HandleInDialog answers the requests of a conference call's dialog.
func (s *Service) HandleInDialog(req *sipmsg.Request, tx sipmsg.ServerTransaction) bool {
	tag, _ := req.To().Params.Get("tag")
	s.mu.Lock()
	m := s.byKey[req.CallID().Value()+"\x00"+tag]
	s.mu.Unlock()
	if m == nil {
		return false
	}
	switch req.Method {
	case sipmsg.ACK:
	case sipmsg.BYE:
		res := sipmsg.NewResponseFromRequest(req, 200, "OK", nil)
		_ = tx.Respond(res)
		cause := 16 // RFC 3326: the caller's Reason, else normal clearing
		if h := req.GetHeader("Reason"); h != nil {
			if c := sip.ReasonCause(h.Value()); c > 0 {
				cause = c
			}
		}
		s.end(m, conference.Ending{Method: conference.Departed, Q850: cause, Reason: "the participant hung up"})
	default:
		// A re-INVITE (hold, codec change) is not taken yet: the call
		// goes on as it was (RFC 3261 §14.2).
		s.fail(tx, req, 488, "not taken in a conference call")
	}
	return true
}

// Hangup ends a participant's call with BYE and Reason (kick, end).
func (s *Service) Hangup(ctx context.Context, confID, pid string, why conference.Ending) error {
	s.mu.Lock()
	m := s.byPart[partKey(confID, pid)]
	s.mu.Unlock()
	if m == nil {
		return fmt.Errorf("confcall: %s in %s: %w", pid, confID, conference.ErrNotLive)
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
		delete(s.byKey, m.key)
		delete(s.byPart, partKey(m.confID, m.pid))
		s.mu.Unlock()
		if err := s.cfg.Mix.Leave(m.confID, m.pid); err != nil {
			s.log.Debug("confcall: leave", "err", err)
		}
		if m.call != nil {
			m.call.Close()
		}
		_ = m.leg.Ended(why)
		s.log.Info("conference call ended", "conference", m.confID, "participant", m.pid, "method", why.Method)
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

// Close hangs up every call.
func (s *Service) Close() error {
	s.mu.Lock()
	ms := make([]*member, 0, len(s.byKey))
	for _, m := range s.byKey {
		ms = append(ms, m)
	}
	s.mu.Unlock()
	for _, m := range ms {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = s.Hangup(ctx, m.confID, m.pid, conference.Ending{Method: conference.Booted, Q850: 16, Reason: "service shutting down"})
		cancel()
	}
	return nil
}

func newTag() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
