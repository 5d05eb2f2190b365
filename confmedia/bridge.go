package confmedia

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/imcall/b2bua/mixer"
	"github.com/imcall/b2bua/rtpproxy"
)

// Bridge holds the mixers of a node's conferences: one per conference
// with members, its loop running from the first member's join to the last
// one's leave. It is the conference manager's Audio (SetMuted).
type Bridge struct {
	log     *slog.Logger
	talking func(confID, pid string, talking bool)
	tick    <-chan time.Time

	mu    sync.Mutex
	rooms map[string]*room
	wg    sync.WaitGroup
}

type room struct {
	mix     *mixer.Mixer
	cancel  context.CancelFunc
	members map[string]*Member
}

// BridgeConfig is what NewBridge needs.
type BridgeConfig struct {
	// Talking is told when a member starts or stops talking (the mixer's
	// speech detection); called from a mixer loop, it must not block. Nil:
	// not told.
	Talking func(confID, pid string, talking bool)
	// Tick drives every mixer (tests); nil: each runs its own 20 ms ticker.
	Tick   <-chan time.Time
	Logger *slog.Logger
}

// NewBridge returns a Bridge without conferences.
func NewBridge(cfg BridgeConfig) *Bridge {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Bridge{log: log, talking: cfg.Talking, tick: cfg.Tick, rooms: map[string]*room{}}
}

// ErrNotMixed: the participant has no media in the conference's mixer.
var ErrNotMixed = errors.New("confmedia: participant not in the mix")

// Join puts a member's leg into the conference's mixer (see Join).
func (b *Bridge) Join(confID, pid string, relay Relay, leg, bridgeLeg rtpproxy.Leg, c Codec) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.rooms[confID]
	if r == nil {
		onTalking := func(id string, on bool) {
			if b.talking != nil {
				b.talking(confID, id, on)
			}
		}
		mix, err := mixer.New(mixer.Config{Tick: b.tick, Log: b.log.With("conference", confID), OnTalking: onTalking})
		if err != nil {
			return err
		}
		ctx, cancel := context.WithCancel(context.Background())
		r = &room{mix: mix, cancel: cancel, members: map[string]*Member{}}
		b.rooms[confID] = r
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			if err := mix.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				b.log.Error("conference mixer stopped", "conference", confID, "err", err)
			}
		}()
	}
	m, err := Join(relay, leg, bridgeLeg, r.mix, pid, c)
	if err != nil {
		b.closeIfEmptyLocked(confID, r)
		return err
	}
	r.members[pid] = m
	return nil
}

// Leave takes a member out; the conference's mixer stops with its last.
func (b *Bridge) Leave(confID, pid string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.rooms[confID]
	if r == nil || r.members[pid] == nil {
		return fmt.Errorf("%s in %s: %w", pid, confID, ErrNotMixed)
	}
	err := r.members[pid].Leave()
	delete(r.members, pid)
	b.closeIfEmptyLocked(confID, r)
	return err
}

func (b *Bridge) closeIfEmptyLocked(confID string, r *room) {
	if len(r.members) == 0 {
		r.cancel()
		delete(b.rooms, confID)
	}
}

// SetMuted stops or resumes mixing a member's audio.
func (b *Bridge) SetMuted(_ context.Context, confID, pid string, muted bool) error {
	b.mu.Lock()
	r := b.rooms[confID]
	b.mu.Unlock()
	if r == nil {
		return fmt.Errorf("%s in %s: %w", pid, confID, ErrNotMixed)
	}
	var err error
	if muted {
		err = r.mix.Mute(pid)
	} else {
		err = r.mix.Unmute(pid)
	}
	if errors.Is(err, mixer.ErrUnknownParticipant) {
		return fmt.Errorf("%s in %s: %w", pid, confID, ErrNotMixed)
	}
	return err
}

// State is the mixer's view of a conference's members, nil without any.
func (b *Bridge) State(confID string) []mixer.ParticipantState {
	b.mu.Lock()
	r := b.rooms[confID]
	b.mu.Unlock()
	if r == nil {
		return nil
	}
	return r.mix.State()
}

// Close stops every mixer and waits for their loops.
func (b *Bridge) Close() error {
	b.mu.Lock()
	for id, r := range b.rooms {
		r.cancel()
		delete(b.rooms, id)
	}
	b.mu.Unlock()
	b.wg.Wait()
	return nil
}
