package sip

import "context"

// Side names a leg of a call for the media anchor.
type Side int

// Sides of a call.
const (
	Caller Side = iota // the leg the call came in on
	Callee             // the leg towards the terminal
)

// other is the opposite side.
func (s Side) other() Side {
	if s == Callee {
		return Caller
	}
	return Callee
}

func (s Side) String() string {
	if s == Callee {
		return "callee"
	}
	return "caller"
}

// MediaAnchor is the seam where the RTP proxy plugs in: it gives every call
// a media session that rewrites the SDP passing through the B2BUA.
type MediaAnchor interface {
	NewSession(ctx context.Context, callID string) (MediaSession, error)
}

// MediaSession anchors the media of one call. Offer rewrites an SDP offer
// that came from side from before it goes to the other side; Answer does
// the same for the answer. Close releases the session's ports; it is
// called exactly once, when the call ends.
type MediaSession interface {
	Offer(ctx context.Context, from Side, sdp []byte) ([]byte, error)
	Answer(ctx context.Context, from Side, sdp []byte) ([]byte, error)
	Close() error
}

// Passthrough is the MediaAnchor that leaves SDP untouched: media flows
// directly between the caller and the terminal.
type Passthrough struct{}

// NewSession returns a session that changes nothing.
func (Passthrough) NewSession(context.Context, string) (MediaSession, error) {
	return passthroughSession{}, nil
}

type passthroughSession struct{}

func (passthroughSession) Offer(_ context.Context, _ Side, sdp []byte) ([]byte, error) {
	return sdp, nil
}

func (passthroughSession) Answer(_ context.Context, _ Side, sdp []byte) ([]byte, error) {
	return sdp, nil
}

func (passthroughSession) Close() error { return nil }

var _ MediaAnchor = Passthrough{}
