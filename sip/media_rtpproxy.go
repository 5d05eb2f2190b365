package sip

import (
	"context"
	"errors"
	"fmt"

	"github.com/imcall/b2bua/rtpproxy"
)

// RTPProxy is the MediaAnchor that anchors every call's media in the
// rtpproxy relay: both parties send their RTP to the proxy's ports.
type RTPProxy struct {
	Proxy *rtpproxy.Proxy
}

// NewSession opens a relay call bounded by ctx (the call's context).
func (a RTPProxy) NewSession(ctx context.Context, callID string) (MediaSession, error) {
	c, err := a.Proxy.NewCall(ctx, rtpproxy.CallConfig{ID: callID})
	if err != nil {
		return nil, &Failure{Status: 503, Cause: CauseCongestion, Text: "no media resources", RetryAfter: 5, Err: err}
	}
	return &RTPSession{call: c}, nil
}

// RTPSession is the MediaSession of one anchored session: every leg has
// its own endpoints on the relay, named by its LegID, and an answer
// connects the two legs of the exchange both ways. Beyond MediaSession it
// is a MediaSupervisor (Err wraps ErrMediaTimeout and
// rtpproxy.ErrMediaTimeout for dead media) and a MediaStatser (the per-leg
// counters for the call record).
type RTPSession struct {
	call *rtpproxy.Call
}

// Offer rewrites an offer from leg from for leg to.
func (s *RTPSession) Offer(_ context.Context, from, to LegID, sdp []byte) ([]byte, error) {
	out, err := s.call.RewriteOffer(rtpproxy.Leg(from), rtpproxy.Leg(to), sdp)
	return out, mediaFailure(err)
}

// Answer rewrites an answer from leg from for leg to.
func (s *RTPSession) Answer(_ context.Context, from, to LegID, sdp []byte) ([]byte, error) {
	out, err := s.call.RewriteAnswer(rtpproxy.Leg(from), rtpproxy.Leg(to), sdp)
	return out, mediaFailure(err)
}

// Release frees the endpoints of a leg that has gone (a fork branch that
// lost); its counters stay in Stats.
func (s *RTPSession) Release(id LegID) {
	_ = s.call.RemoveLeg(rtpproxy.Leg(id)) // a leg that never had media has nothing to free
}

// Close releases the call's ports.
func (s *RTPSession) Close() error { return s.call.Close() }

// Answered starts media supervision; call it when the final 2xx is relayed.
func (s *RTPSession) Answered() { s.call.Answered() }

// Done is closed when the media session ends by itself (dead media) or
// its context ends.
func (s *RTPSession) Done() <-chan struct{} { return s.call.Done() }

// Context is closed with Done; the session waits on it without a
// goroutine of its own.
func (s *RTPSession) Context() context.Context { return s.call.Context() }

// Err tells why Done was closed.
func (s *RTPSession) Err() error {
	err := s.call.Err()
	if errors.Is(err, rtpproxy.ErrMediaTimeout) {
		return fmt.Errorf("%w: %w", ErrMediaTimeout, err)
	}
	return err
}

// Stats gives the per-leg media counters.
func (s *RTPSession) Stats() []rtpproxy.LegStats { return s.call.Stats() }

// MediaStats is Stats for the call record.
func (s *RTPSession) MediaStats() any { return s.call.Stats() }

// MediaTimeoutFailure is how a call ended by dead media is reported: BYE to
// both sides with this Reason (RFC 3326), and "media timeout" as the end
// cause of the call record.
func MediaTimeoutFailure(err error) *Failure {
	return &Failure{Status: 408, Cause: CauseRecoveryOnTimer, Text: "media timeout", Err: err}
}

// mediaFailure turns a relay error into a Failure carrying its own SIP
// status: 400 for malformed SDP, 488 for SDP the relay cannot anchor, 503
// when the port pool is exhausted. The relay's text suits a Warning header
// (rtpproxy.Error.Warning).
func mediaFailure(err error) error {
	var e *rtpproxy.Error
	if !errors.As(err, &e) {
		return err
	}
	f := &Failure{Status: e.StatusCode(), Text: e.Text, Err: err}
	switch e.StatusCode() {
	case 400:
		f.Cause = 95 // Q.850: invalid message, unspecified
	case 503:
		f.Cause, f.RetryAfter = CauseCongestion, 5
	default:
		f.Cause = 65 // Q.850: bearer capability not implemented
	}
	return f
}

var (
	_ MediaAnchor     = RTPProxy{}
	_ MediaSession    = (*RTPSession)(nil)
	_ MediaSupervisor = (*RTPSession)(nil)
	_ MediaStatser    = (*RTPSession)(nil)
)
