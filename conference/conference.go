// Package conference holds the state of n-way conferences: who is in each,
// how far their call has got, who is muted and who is talking. Every change
// goes through a Conference's methods, which bump its version and publish
// the new state to watchers (the RFC 4575 notifier, the web page's event
// stream). The media and SIP sides act through the small Dialer and Audio
// interfaces the Manager is given, and report back through a Leg.
package conference

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Status is how far a participant's call has got. The names follow the
// dial-out progress a person sees; Status.Endpoint gives the RFC 4575 name.
type Status string

// Participant statuses.
const (
	StatusPending      Status = "pending"      // added, not yet dialed
	StatusDialing      Status = "dialing"      // INVITE sent (dialing-out) or received (dialing-in)
	StatusRinging      Status = "ringing"      // 180 Ringing / PSTN ALERTING
	StatusConnected    Status = "connected"    // in the mix
	StatusOnHold       Status = "on-hold"      // dialog up, participant put us on hold
	StatusDisconnected Status = "disconnected" // no dialog; Ended says why
)

// Live reports whether the participant still has (or is getting) a call.
func (s Status) Live() bool { return s != StatusDisconnected }

// JoinMethod is how a participant came in (RFC 4575 section 5.7.3).
type JoinMethod string

// Joining methods.
const (
	DialedOut JoinMethod = "dialed-out"
	DialedIn  JoinMethod = "dialed-in"
)

// EndMethod is how a participant left (RFC 4575 section 5.7.5).
type EndMethod string

// Disconnection methods.
const (
	Departed EndMethod = "departed" // the participant hung up
	Booted   EndMethod = "booted"   // kicked, removed, or the conference ended
	Failed   EndMethod = "failed"   // the call never connected (or the dial could not start)
	Busy     EndMethod = "busy"     // 486/600: the callee was busy
)

// Ending is why a participant's call ended: the SIP answer (a final
// response code for a call that never connected, 0 for a BYE) and the Q.850
// cause that came with it (RFC 3326 Reason), in words for people.
type Ending struct {
	Method  EndMethod `json:"method"`
	SIPCode int       `json:"sip_code,omitempty"`
	Q850    int       `json:"q850_cause,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	At      time.Time `json:"at"`
}

// Participant is one member of a conference as watchers see it.
type Participant struct {
	ID        string     `json:"id"`
	Target    string     `json:"target"` // an IM ID or a +E.164 number
	Display   string     `json:"display,omitempty"`
	Status    Status     `json:"status"`
	Joined    JoinMethod `json:"joining_method"`
	Muted     bool       `json:"muted"`
	Talking   bool       `json:"talking"`
	Added     time.Time  `json:"added"`
	Connected *time.Time `json:"connected,omitempty"`
	Ended     *Ending    `json:"ended,omitempty"`
}

// Snapshot is a conference's whole state at one version.
type Snapshot struct {
	ID           string        `json:"id"`
	Owner        string        `json:"owner"`
	URI          string        `json:"uri"`
	Created      time.Time     `json:"created"`
	Version      uint64        `json:"version"`
	Ended        bool          `json:"ended"`
	Participants []Participant `json:"participants"`
}

// Participant returns the participant with id, if present.
func (s Snapshot) Participant(id string) (Participant, bool) {
	for _, p := range s.Participants {
		if p.ID == id {
			return p, true
		}
	}
	return Participant{}, false
}

// Event is one published change: the state after it, which participants it
// touched (Changed) or took off the roster (Removed), and Full when the
// watcher must treat State as a fresh start (its first event, or a resync
// after it fell behind and events were dropped).
type Event struct {
	State   Snapshot
	Changed []string
	Removed []string
	Full    bool
}

// ErrNotFound is returned for an unknown conference or participant.
var ErrNotFound = errors.New("not found")

// ErrEnded is returned for a change to a conference that has ended.
var ErrEnded = errors.New("conference has ended")

// watchBuffer bounds each watcher's queue. A watcher that lets it fill is
// resynced with one full event instead of blocking the conference.
const watchBuffer = 32

// Conference is one conference's state. It is safe for concurrent use; its
// lock is held only to change and copy state, never while calling out.
type Conference struct {
	now func() time.Time

	mu       sync.Mutex
	state    Snapshot
	byID     map[string]int // participant ID -> index in state.Participants
	nextP    int
	watchers map[*Watcher]struct{}
	onEmpty  func() // called (outside the lock) when the last connected participant leaves
	ending   bool   // End is hanging everyone up: the last leaving is not the reason
}

func newConference(id, owner, uri string, now func() time.Time) *Conference {
	return &Conference{
		now:      now,
		state:    Snapshot{ID: id, Owner: owner, URI: uri, Created: now(), Version: 1, Participants: []Participant{}},
		byID:     map[string]int{},
		watchers: map[*Watcher]struct{}{},
	}
}

// ID returns the conference's ID.
func (c *Conference) ID() string { return c.state.ID } // immutable after creation

// Snapshot returns a copy of the current state.
func (c *Conference) Snapshot() Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.copyLocked()
}

func (c *Conference) copyLocked() Snapshot {
	s := c.state
	s.Participants = make([]Participant, len(c.state.Participants))
	for i, p := range c.state.Participants {
		if p.Ended != nil {
			e := *p.Ended
			p.Ended = &e
		}
		if p.Connected != nil {
			t := *p.Connected
			p.Connected = &t
		}
		s.Participants[i] = p
	}
	return s
}

// Watcher receives a conference's events. The first event is Full.
type Watcher struct {
	c    chan Event
	conf *Conference
	stop func() bool
}

// Events returns the channel of events; it is closed when the watch ends
// (its context is done, or the conference has ended and its last event was
// queued).
func (w *Watcher) Events() <-chan Event { return w.c }

// Watch starts a watch that lasts until ctx is done or the conference ends.
func (c *Conference) Watch(ctx context.Context) *Watcher {
	w := &Watcher{c: make(chan Event, watchBuffer), conf: c}
	c.mu.Lock()
	defer c.mu.Unlock()
	w.c <- Event{State: c.copyLocked(), Full: true}
	if c.state.Ended {
		close(w.c)
		return w
	}
	c.watchers[w] = struct{}{}
	// AfterFunc rather than a goroutine per watcher: nothing runs until
	// the context is done.
	w.stop = context.AfterFunc(ctx, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if _, ok := c.watchers[w]; ok {
			delete(c.watchers, w)
			close(w.c)
		}
	})
	return w
}

// publishLocked bumps the version and queues the event for every watcher.
// A watcher whose queue is full loses what it has not read and gets one
// full event in its place: the RFC 4575 notifier then sends a full
// document, as section 4.6 expects after a gap, and the conference never
// waits for a reader.
func (c *Conference) publishLocked(changed, removed []string) {
	c.state.Version++
	ev := Event{State: c.copyLocked(), Changed: changed, Removed: removed}
	for w := range c.watchers {
		select {
		case w.c <- ev:
			continue
		default:
		}
		for len(w.c) > 0 {
			select {
			case <-w.c:
			default:
			}
		}
		full := ev
		full.Full = true
		w.c <- full
	}
	if c.state.Ended {
		for w := range c.watchers {
			w.stop()
			close(w.c)
		}
		clear(c.watchers)
	}
}

// add puts a new participant on the roster.
func (c *Conference) add(target, display string, how JoinMethod) (Participant, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state.Ended {
		return Participant{}, ErrEnded
	}
	c.nextP++
	p := Participant{
		ID: fmt.Sprintf("p%d", c.nextP), Target: target, Display: display,
		Status: StatusPending, Joined: how, Added: c.now(),
	}
	if how == DialedIn {
		p.Status = StatusDialing
	}
	c.byID[p.ID] = len(c.state.Participants)
	c.state.Participants = append(c.state.Participants, p)
	c.publishLocked([]string{p.ID}, nil)
	return p, nil
}

// update applies f to participant id and publishes the change. f returns
// false to leave the state as it was (no event, no new version).
func (c *Conference) update(id string, f func(p *Participant) (bool, error)) (Participant, error) {
	var empty func()
	defer func() {
		if empty != nil {
			empty()
		}
	}()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state.Ended {
		return Participant{}, ErrEnded
	}
	i, ok := c.byID[id]
	if !ok {
		return Participant{}, fmt.Errorf("participant %s: %w", id, ErrNotFound)
	}
	p := &c.state.Participants[i]
	wasConnected := p.Connected != nil && p.Status.Live()
	changed, err := f(p)
	if err != nil || !changed {
		return *p, err
	}
	c.publishLocked([]string{id}, nil)
	if wasConnected && !p.Status.Live() && !c.ending && !c.anyLiveLocked() {
		empty = c.onEmpty
	}
	return *p, nil
}

func (c *Conference) anyLiveLocked() bool {
	return slices.ContainsFunc(c.state.Participants, func(p Participant) bool { return p.Status.Live() })
}

// remove takes a participant off the roster (RFC 4575 state="deleted").
func (c *Conference) remove(id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	i, ok := c.byID[id]
	if !ok {
		return fmt.Errorf("participant %s: %w", id, ErrNotFound)
	}
	c.state.Participants = slices.Delete(c.state.Participants, i, i+1)
	delete(c.byID, id)
	for j := i; j < len(c.state.Participants); j++ {
		c.byID[c.state.Participants[j].ID] = j
	}
	c.publishLocked(nil, []string{id})
	return nil
}

// end marks the conference ended; every watcher gets the last event and its
// channel closes.
func (c *Conference) end() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state.Ended {
		return
	}
	c.state.Ended = true
	c.publishLocked(nil, nil)
}
