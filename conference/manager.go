package conference

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/imcall/b2bua/registry"
)

// Dialer is what the SIP side does for the conference: place a call to a
// participant and end one. Dial starts the call and returns; the call's
// progress comes back through leg. A Dial error means the call could not
// be started at all.
type Dialer interface {
	Dial(ctx context.Context, confID string, p Participant, leg Leg) error
	Hangup(ctx context.Context, confID, participantID string, why Ending) error
}

// Audio is what the mixer does for the conference: stop or resume mixing a
// participant's audio (the participant keeps hearing the others).
type Audio interface {
	SetMuted(ctx context.Context, confID, participantID string, muted bool) error
}

// ErrNotLive is returned for an action that needs a live call (mute, kick)
// on a participant whose call has ended.
var ErrNotLive = errors.New("participant has no call")

// tokenBytes is the web link token's entropy: 256 bits.
const tokenBytes = 32

// Config is what NewManager needs.
type Config struct {
	// Domain is the host part of conference URIs (sip:conf-ID@Domain); required.
	Domain string
	// Dialer places and ends participants' calls; required.
	Dialer Dialer
	// Audio mutes and unmutes in the mixer; required.
	Audio Audio
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Rand is the source of IDs and tokens; nil means crypto/rand.
	Rand io.Reader
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Manager holds the conferences of this node by ID.
type Manager struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	confs   map[string]*Conference
	byToken map[[32]byte]string // SHA-256 of the web token -> conference ID
	tokens  map[string][32]byte // conference ID -> SHA-256 of its web token
}

// NewManager checks cfg and returns an empty Manager.
func NewManager(cfg Config) (*Manager, error) {
	d, err := registry.ParseDomain(cfg.Domain)
	if err != nil || d == "" {
		return nil, fmt.Errorf("conference: domain %q: required, a DNS name", cfg.Domain)
	}
	cfg.Domain = d
	if cfg.Dialer == nil || cfg.Audio == nil {
		return nil, errors.New("conference: Dialer and Audio are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Manager{cfg: cfg, log: log, confs: map[string]*Conference{},
		byToken: map[[32]byte]string{}, tokens: map[string][32]byte{}}, nil
}

// Created is what Create returns: the conference and the token of its web
// page, which only the owner gets (it is not kept, only its hash).
type Created struct {
	Snapshot
	Token string `json:"token"`
}

// Create starts a conference owned by the IM user owner and dials every
// target in dial.
func (m *Manager) Create(ctx context.Context, owner string, dial []string) (Created, error) {
	owner, err := registry.ParseIMID(owner)
	if err != nil {
		return Created{}, fmt.Errorf("owner: %w", err)
	}
	for _, t := range dial {
		if _, err := ParseTarget(t); err != nil {
			return Created{}, err
		}
	}
	var raw [8 + tokenBytes]byte
	if _, err := io.ReadFull(m.cfg.Rand, raw[:]); err != nil {
		return Created{}, fmt.Errorf("conference: random: %w", err)
	}
	id := hex.EncodeToString(raw[:8])
	token := base64.RawURLEncoding.EncodeToString(raw[8:])
	c := newConference(id, owner, "sip:conf-"+id+"@"+m.cfg.Domain, m.cfg.Now)
	c.onEmpty = func() { m.finish(id, "last participant left") }
	h := sha256.Sum256([]byte(token))
	m.mu.Lock()
	m.confs[id], m.byToken[h], m.tokens[id] = c, id, h
	m.mu.Unlock()
	m.log.Info("conference created", "conference", id, "owner", owner)
	for _, t := range dial {
		if _, err := m.Add(ctx, id, t, ""); err != nil {
			return Created{}, err
		}
	}
	return Created{Snapshot: c.Snapshot(), Token: token}, nil
}

// ParseTarget validates whom to dial: a +E.164 number or an IM ID.
func ParseTarget(s string) (string, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "+") {
		return registry.ParseE164(s)
	}
	id, err := registry.ParseIMID(s)
	if err != nil {
		return "", &registry.ValidationError{Field: "target", Rule: "must be an IM ID or an E.164 number with its leading +"}
	}
	return id, nil
}

// Conference returns the conference with id.
func (m *Manager) Conference(id string) (*Conference, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.confs[id]
	if !ok {
		return nil, fmt.Errorf("conference %q: %w", id, ErrNotFound)
	}
	return c, nil
}

// ByToken returns the conference whose web token is token. An unknown and a
// known token take the same path: a map lookup on the token's hash, then a
// constant-time compare (as mediastore does for media links).
func (m *Manager) ByToken(token string) (*Conference, bool) {
	want := sha256.Sum256([]byte(token))
	m.mu.Lock()
	defer m.mu.Unlock()
	id, ok := m.byToken[want]
	got := m.tokens[id]
	if !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		return nil, false
	}
	return m.confs[id], true
}

// List returns every conference, oldest first.
func (m *Manager) List() []Snapshot {
	m.mu.Lock()
	confs := make([]*Conference, 0, len(m.confs))
	for _, c := range m.confs {
		confs = append(confs, c)
	}
	m.mu.Unlock()
	out := make([]Snapshot, len(confs))
	for i, c := range confs {
		out[i] = c.Snapshot()
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Add puts target on the conference's roster and dials it out.
func (m *Manager) Add(ctx context.Context, confID, target, display string) (Participant, error) {
	c, err := m.Conference(confID)
	if err != nil {
		return Participant{}, err
	}
	if target, err = ParseTarget(target); err != nil {
		return Participant{}, err
	}
	if display, err = registry.ParseDisplay(display); err != nil {
		return Participant{}, err
	}
	p, err := c.add(target, display, DialedOut)
	if err != nil {
		return Participant{}, err
	}
	leg := Leg{conf: c, id: p.ID}
	if err := m.cfg.Dialer.Dial(ctx, confID, p, leg); err != nil {
		m.log.Warn("conference dial failed", "conference", confID, "participant", p.ID, "err", err)
		_ = leg.Ended(Ending{Method: Failed, Reason: err.Error()})
	}
	return m.participant(c, p.ID)
}

// Join puts a participant who called the conference URI on the roster and
// returns the Leg the SIP side reports its call through.
func (m *Manager) Join(confID, target, display string) (Leg, error) {
	c, err := m.Conference(confID)
	if err != nil {
		return Leg{}, err
	}
	p, err := c.add(target, display, DialedIn)
	if err != nil {
		return Leg{}, err
	}
	return Leg{conf: c, id: p.ID}, nil
}

// SetMuted mutes or unmutes a participant in the mixer, then in the state.
func (m *Manager) SetMuted(ctx context.Context, confID, pid string, muted bool) (Participant, error) {
	c, err := m.Conference(confID)
	if err != nil {
		return Participant{}, err
	}
	p, err := m.participant(c, pid)
	if err != nil {
		return Participant{}, err
	}
	if !p.Status.Live() {
		return p, fmt.Errorf("participant %s: %w", pid, ErrNotLive)
	}
	if err := m.cfg.Audio.SetMuted(ctx, confID, pid, muted); err != nil {
		return p, fmt.Errorf("conference %s: mute %s: %w", confID, pid, err)
	}
	return c.update(pid, func(p *Participant) (bool, error) {
		if p.Muted == muted {
			return false, nil
		}
		p.Muted = muted
		if muted {
			p.Talking = false // its audio no longer reaches anyone
		}
		return true, nil
	})
}

// Kick hangs up a participant's call; the participant stays on the roster
// as disconnected (booted).
func (m *Manager) Kick(ctx context.Context, confID, pid string) (Participant, error) {
	return m.hangup(ctx, confID, pid, "kicked by the owner")
}

func (m *Manager) hangup(ctx context.Context, confID, pid, reason string) (Participant, error) {
	c, err := m.Conference(confID)
	if err != nil {
		return Participant{}, err
	}
	p, err := m.participant(c, pid)
	if err != nil {
		return Participant{}, err
	}
	if !p.Status.Live() {
		return p, fmt.Errorf("participant %s: %w", pid, ErrNotLive)
	}
	// RFC 3326: the BYE says why, Q.850 16 normal call clearing.
	why := Ending{Method: Booted, Q850: 16, Reason: reason}
	if err := m.cfg.Dialer.Hangup(ctx, confID, pid, why); err != nil {
		return p, fmt.Errorf("conference %s: hang up %s: %w", confID, pid, err)
	}
	now := m.cfg.Now()
	return c.update(pid, func(p *Participant) (bool, error) { return endLocked(p, why, now), nil })
}

// Remove takes a participant off the roster, hanging up its call first.
func (m *Manager) Remove(ctx context.Context, confID, pid string) error {
	c, err := m.Conference(confID)
	if err != nil {
		return err
	}
	if _, err := m.hangup(ctx, confID, pid, "removed by the owner"); err != nil && !errors.Is(err, ErrNotLive) {
		return err
	}
	return c.remove(pid)
}

// End hangs up every live participant and ends the conference.
func (m *Manager) End(ctx context.Context, confID string) (Snapshot, error) {
	c, err := m.Conference(confID)
	if err != nil {
		return Snapshot{}, err
	}
	c.mu.Lock()
	c.ending = true
	c.mu.Unlock()
	var errs []error
	for _, p := range c.Snapshot().Participants {
		if p.Status.Live() {
			if _, err := m.hangup(ctx, confID, p.ID, "conference ended"); err != nil && !errors.Is(err, ErrEnded) {
				errs = append(errs, err)
			}
		}
	}
	m.finish(confID, "ended by the owner")
	return c.Snapshot(), errors.Join(errs...)
}

// finish ends the conference's state and forgets it.
func (m *Manager) finish(confID, why string) {
	m.mu.Lock()
	c, ok := m.confs[confID]
	delete(m.confs, confID)
	delete(m.byToken, m.tokens[confID])
	delete(m.tokens, confID)
	m.mu.Unlock()
	if ok {
		c.end()
		m.log.Info("conference ended", "conference", confID, "why", why)
	}
}

func (m *Manager) participant(c *Conference, pid string) (Participant, error) {
	p, ok := c.Snapshot().Participant(pid)
	if !ok {
		return Participant{}, fmt.Errorf("participant %s: %w", pid, ErrNotFound)
	}
	return p, nil
}
