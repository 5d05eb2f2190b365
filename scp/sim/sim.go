// Package sim is the SCP simulator: an in-memory table of subscribers, keyed
// by mobile identity, each with an address and a state, that answers
// scp.Locator lookups. It is the embedded default SCP of the B2BUA and the
// core of the scpsim server, which controls it over the HTTP protocol served
// by NewHandler.
package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"strings"
	"sync"

	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/scp"
)

// Subscriber is one entry of the simulator: a mobile identity in the
// registry's "type:value" form, where the terminal is reached, and its state.
type Subscriber struct {
	ID    string         // "imsi:001010000000001", "mac:00:1a:2b:3c:4d:5e" or "msisdn:+441632960001"
	Addr  netip.AddrPort // may be zero unless State is Online
	State scp.State
}

// Config configures a Simulator. Every field is optional.
type Config struct {
	// Subscribers seeds the table; it is validated as a whole, so a bad
	// entry fails New instead of being skipped.
	Subscribers []Subscriber
	// Persist, when set, is called with a snapshot of the whole table after
	// every change, before the change is reported as done. Calls are
	// serialised and each one sees a table at least as new as the previous
	// call's, so the last write always holds the latest state.
	Persist func([]Subscriber) error
	// Logger receives one line per change; nil discards.
	Logger *slog.Logger
}

// Simulator is the in-memory SCP. It is safe for concurrent use; Locate takes
// only a read lock so lookups do not wait on each other.
type Simulator struct {
	mu   sync.RWMutex
	subs map[string]record

	persistMu sync.Mutex
	persist   func([]Subscriber) error
	log       *slog.Logger
}

type record struct {
	addr  netip.AddrPort
	state scp.State
}

// ErrExists is returned by Add for an identity that is already attached.
var ErrExists = errors.New("subscriber already attached")

// New builds a simulator seeded with cfg.Subscribers.
func New(cfg Config) (*Simulator, error) {
	s := &Simulator{subs: make(map[string]record, len(cfg.Subscribers)), persist: cfg.Persist, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	for i, sub := range cfg.Subscribers {
		n, err := sub.normalise()
		if err != nil {
			return nil, fmt.Errorf("subscribers[%d]: %w", i, err)
		}
		if _, dup := s.subs[n.ID]; dup {
			return nil, fmt.Errorf("subscribers[%d]: %w", i, &registry.ValidationError{Field: "id", Rule: "duplicate " + n.ID})
		}
		s.subs[n.ID] = record{addr: n.Addr, state: n.State}
	}
	return s, nil
}

// ParseID validates a mobile identity for the SCP and returns it in the
// registry's "type:value" form: every kind of identity a terminal can be
// registered with (IMSI, MAC, MSISDN) is located. A bare string of digits is
// taken as an IMSI for the convenience of scripts.
func ParseID(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s != "" && strings.Trim(s, "0123456789") == "" {
		id, err := registry.ParseIMSI(s)
		if err != nil {
			return "", err
		}
		return id.String(), nil
	}
	id, err := registry.ParseMobileID(s)
	if err != nil {
		if ve := (*registry.ValidationError)(nil); errors.As(err, &ve) && ve.Field == "mobile_id" {
			return "", &registry.ValidationError{Field: "id", Rule: "must be imsi:DIGITS, mac:EUI-48 or msisdn:+E164"}
		}
		return "", err
	}
	return id.String(), nil
}

// ParseAddr validates a terminal's address: an IP literal and a non-zero
// port, unicast, as SIP must be able to send to it.
func ParseAddr(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(strings.TrimSpace(s))
	if err != nil {
		return netip.AddrPort{}, &registry.ValidationError{Field: "addr", Rule: "must be IP:PORT such as 127.0.0.1:5062 or [::1]:5062"}
	}
	if err := checkAddr(ap); err != nil {
		return netip.AddrPort{}, err
	}
	return ap, nil
}

func checkAddr(ap netip.AddrPort) error {
	switch {
	case ap.Port() == 0:
		return &registry.ValidationError{Field: "addr", Rule: "port must be 1 to 65535"}
	case ap.Addr().IsUnspecified() || ap.Addr().IsMulticast():
		return &registry.ValidationError{Field: "addr", Rule: "must be a unicast address"}
	}
	return nil
}

func parseState(s string) (scp.State, error) {
	st, err := scp.ParseState(strings.ToLower(strings.TrimSpace(s)))
	if err != nil {
		return "", &registry.ValidationError{Field: "state", Rule: "must be online, busy or absent"}
	}
	return st, nil
}

// normalise validates sub and returns it in canonical form.
func (sub Subscriber) normalise() (Subscriber, error) {
	id, err := ParseID(sub.ID)
	if err != nil {
		return Subscriber{}, err
	}
	st, err := parseState(string(sub.State))
	if err != nil {
		return Subscriber{}, err
	}
	if sub.Addr.IsValid() {
		if err := checkAddr(sub.Addr); err != nil {
			return Subscriber{}, err
		}
	} else if st == scp.Online {
		return Subscriber{}, &registry.ValidationError{Field: "addr", Rule: "is required for an online subscriber"}
	}
	return Subscriber{ID: id, Addr: sub.Addr, State: st}, nil
}

// Locate answers as an SCP would: the subscriber's state and, when it has
// one, its address. An unknown or malformed identity gives an error that
// wraps scp.ErrUnknownSubscriber.
func (s *Simulator) Locate(ctx context.Context, mobileID string) (scp.Location, error) {
	if err := ctx.Err(); err != nil {
		return scp.Location{}, fmt.Errorf("%w: %w", scp.ErrTimeout, err)
	}
	s.mu.RLock()
	r, ok := s.subs[mobileID]
	s.mu.RUnlock()
	if !ok {
		// The fast path above takes the canonical form callers normally
		// pass; only a miss pays for normalising, e.g. an upper-case MAC.
		id, err := ParseID(mobileID)
		if err != nil {
			return scp.Location{}, fmt.Errorf("%q: %w (%v)", mobileID, scp.ErrUnknownSubscriber, err)
		}
		s.mu.RLock()
		r, ok = s.subs[id]
		s.mu.RUnlock()
		if !ok {
			return scp.Location{}, fmt.Errorf("%s: %w", id, scp.ErrUnknownSubscriber)
		}
	}
	return scp.Location{Addr: r.addr, State: r.state}, nil
}

// Get returns one subscriber; an unknown one gives scp.ErrUnknownSubscriber.
func (s *Simulator) Get(id string) (Subscriber, error) {
	id, err := ParseID(id)
	if err != nil {
		return Subscriber{}, err
	}
	s.mu.RLock()
	r, ok := s.subs[id]
	s.mu.RUnlock()
	if !ok {
		return Subscriber{}, fmt.Errorf("%s: %w", id, scp.ErrUnknownSubscriber)
	}
	return Subscriber{ID: id, Addr: r.addr, State: r.state}, nil
}

// List returns every subscriber, sorted by identity so output is stable.
func (s *Simulator) List() []Subscriber {
	s.mu.RLock()
	out := make([]Subscriber, 0, len(s.subs))
	for id, r := range s.subs {
		out = append(out, Subscriber{ID: id, Addr: r.addr, State: r.state})
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Len reports how many subscribers are attached.
func (s *Simulator) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.subs)
}

// Attach puts a subscriber in the table; attaching an attached identity
// replaces its address and state, as a terminal that registers again would.
// It reports whether the subscriber is new.
func (s *Simulator) Attach(sub Subscriber) (created bool, err error) {
	n, err := sub.normalise()
	if err != nil {
		return false, err
	}
	s.mu.Lock()
	_, existed := s.subs[n.ID]
	s.subs[n.ID] = record{addr: n.Addr, state: n.State}
	s.mu.Unlock()
	s.log.Info("subscriber attached", "id", n.ID, "addr", addrString(n.Addr), "state", n.State)
	return !existed, s.changed()
}

// Move gives an attached subscriber a new address (roaming), keeping its
// state.
func (s *Simulator) Move(id string, addr netip.AddrPort) (Subscriber, error) {
	if err := checkAddr(addr); err != nil {
		return Subscriber{}, err
	}
	return s.update(id, func(r *record) { r.addr = addr }, "subscriber moved")
}

// SetState changes an attached subscriber's state. Going online needs an
// address, so a subscriber attached without one must be moved first.
func (s *Simulator) SetState(id string, st scp.State) (Subscriber, error) {
	st, err := parseState(string(st))
	if err != nil {
		return Subscriber{}, err
	}
	var noAddr bool
	sub, err := s.update(id, func(r *record) {
		if st == scp.Online && !r.addr.IsValid() {
			noAddr = true
			return
		}
		r.state = st
	}, "subscriber state set")
	if noAddr {
		return Subscriber{}, &registry.ValidationError{Field: "addr", Rule: "is required for an online subscriber: move it to an address first"}
	}
	return sub, err
}

func (s *Simulator) update(id string, f func(*record), msg string) (Subscriber, error) {
	id, err := ParseID(id)
	if err != nil {
		return Subscriber{}, err
	}
	s.mu.Lock()
	r, ok := s.subs[id]
	if !ok {
		s.mu.Unlock()
		return Subscriber{}, fmt.Errorf("%s: %w", id, scp.ErrUnknownSubscriber)
	}
	before := r
	f(&r)
	s.subs[id] = r
	s.mu.Unlock()
	sub := Subscriber{ID: id, Addr: r.addr, State: r.state}
	if r == before {
		return sub, nil
	}
	s.log.Info(msg, "id", id, "addr", addrString(r.addr), "state", r.state)
	return sub, s.changed()
}

// Detach removes a subscriber; an unknown one gives scp.ErrUnknownSubscriber.
func (s *Simulator) Detach(id string) error {
	id, err := ParseID(id)
	if err != nil {
		return err
	}
	s.mu.Lock()
	_, ok := s.subs[id]
	delete(s.subs, id)
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("%s: %w", id, scp.ErrUnknownSubscriber)
	}
	s.log.Info("subscriber detached", "id", id)
	return s.changed()
}

// changed hands the latest table to Persist. Taking the snapshot after
// persistMu is held is what keeps an older snapshot from being written after
// a newer one.
func (s *Simulator) changed() error {
	if s.persist == nil {
		return nil
	}
	s.persistMu.Lock()
	defer s.persistMu.Unlock()
	if err := s.persist(s.List()); err != nil {
		return fmt.Errorf("change applied but state not saved: %w", err)
	}
	return nil
}

func addrString(ap netip.AddrPort) string {
	if !ap.IsValid() {
		return ""
	}
	return ap.String()
}

var _ scp.Locator = (*Simulator)(nil)
