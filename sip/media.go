package sip

import (
	"context"
	"errors"
)

// LegID names a leg of a session for the media anchor; unique within the session.
type LegID string

// MediaAnchor is the seam where the RTP proxy plugs in: it gives every
// session a media session that rewrites the SDP passing through the B2BUA.
type MediaAnchor interface {
	NewSession(ctx context.Context, callID string) (MediaSession, error)
}

// MediaSession anchors the media of one session, leg by leg. The session
// calls it from its loop only. Close releases what is left; it is called
// exactly once, when the session ends.
type MediaSession interface {
	// Offer rewrites an SDP offer that leg from sent, for delivery to leg to.
	Offer(ctx context.Context, from, to LegID, sdp []byte) ([]byte, error)
	// Answer rewrites the SDP answer leg from sent to to's offer, for delivery to to;
	// afterwards from and to hear each other.
	Answer(ctx context.Context, from, to LegID, sdp []byte) ([]byte, error)
	// Release frees one leg's media (a fork that lost, a path that ended).
	Release(leg LegID)
	Close() error
}

// MediaSupervisor is a MediaSession that watches its media and can end by
// itself; the session discovers it by type assertion (Passthrough is not
// one).
type MediaSupervisor interface {
	// Answered starts supervision; the session calls it when the call is
	// answered.
	Answered()
	// Done is closed when the media ended by itself or its context ended.
	Done() <-chan struct{}
	// Err tells why Done was closed: ErrMediaTimeout in its chain for
	// dead media, anything else for a relay that went away.
	Err() error
}

// MediaStatser is a MediaSession that counts its media; the session writes
// MediaStats, marshalled as JSON, into the call record.
type MediaStatser interface {
	MediaStats() any
}

// ErrMediaTimeout is in the chain of MediaSupervisor.Err when no media
// flowed for too long.
var ErrMediaTimeout = errors.New("media timeout")

// Passthrough is the MediaAnchor that leaves SDP untouched: media flows
// directly between the parties.
type Passthrough struct{}

// NewSession returns a session that changes nothing.
func (Passthrough) NewSession(context.Context, string) (MediaSession, error) {
	return passthroughSession{}, nil
}

type passthroughSession struct{}

func (passthroughSession) Offer(_ context.Context, _, _ LegID, sdp []byte) ([]byte, error) {
	return sdp, nil
}

func (passthroughSession) Answer(_ context.Context, _, _ LegID, sdp []byte) ([]byte, error) {
	return sdp, nil
}

func (passthroughSession) Release(LegID) {}

func (passthroughSession) Close() error { return nil }

var (
	_ MediaAnchor  = Passthrough{}
	_ MediaSession = passthroughSession{}
)
