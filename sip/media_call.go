package sip

import (
	"context"
	"errors"

	sipmsg "github.com/emiago/sipgo/sip"
)

// How the session uses a media session beyond Offer, Answer and Release.
// The optional interfaces (MediaSupervisor, MediaStatser) are discovered by
// type assertion, so Passthrough needs none of them, and the session never
// knows which relay is behind the seam.

// watchMedia ends the session when its media session dies on its own: BYE
// to every leg with Reason Q.850 cause 102, recovery on timer expiry (RFC
// 3326), and "media timeout" as the record's end cause. A supervisor with
// a context is watched without a goroutine (an idle call holds none);
// otherwise a goroutine waits, and ends with the session.
func (c *session) watchMedia(m MediaSession) {
	w, ok := m.(MediaSupervisor)
	if !ok {
		return
	}
	if wc, ok := w.(interface{ Context() context.Context }); ok {
		stop := context.AfterFunc(wc.Context(), func() { c.post(func() { c.onMediaDone(w.Err()) }) })
		context.AfterFunc(c.ctx, func() { stop() })
		return
	}
	c.s.wg.Add(1)
	go func() {
		defer c.s.wg.Done()
		select {
		case <-w.Done():
			c.post(func() { c.onMediaDone(w.Err()) })
		case <-c.ended:
		}
	}()
}

func (c *session) onMediaDone(err error) {
	if c.ending || c.ctx.Err() != nil {
		return // the session ended first; its context closed the media
	}
	f := MediaTimeoutFailure(err)
	if !errors.Is(err, ErrMediaTimeout) {
		// The relay went away under a live call (it was closed).
		f = &Failure{Status: 503, Cause: CauseTemporaryFailure, Text: "media relay closed", Err: err}
	}
	c.log.Info("media ended: ending call", "err", err)
	c.byeCause = f.Cause
	if !c.origin.final {
		c.respondUAS(c.origin, f)
	}
	c.end(f.Text)
}

// mediaAnswered starts the media session's supervision, if it has one.
func (c *session) mediaAnswered() {
	if w, ok := c.media.(MediaSupervisor); ok {
		w.Answered()
	}
}

// offerFailure is the answer to an offer the media anchor refused: its own
// status (400 malformed SDP, 488 SDP it cannot anchor, 503 no ports) with
// the Warning the anchor wrote.
func offerFailure(err error) *Failure {
	return AsFailure(err)
}

// answerFailure is the answer to the side whose offer was answered with SDP
// the anchor refused. A malformed answer is the other party's fault, not
// the requester's: 502 Bad Gateway (RFC 3261 §21.5.3), not 400.
func answerFailure(err error) *Failure {
	f := offerFailure(err)
	if f.Status == 400 {
		g := *f
		g.Status, g.Cause = 502, CauseInterworking
		return &g
	}
	return f
}

// warner is an error that knows its Warning header value (the media
// anchor's errors do).
type warner interface{ Warning(agent string) string }

// addWarning adds the media anchor's Warning header (RFC 3261 §20.43) to a
// response carrying f, when f came from the anchor.
func addWarning(res *sipmsg.Response, f *Failure) {
	var w warner
	if errors.As(f.Err, &w) {
		res.AppendHeader(sipmsg.NewHeader("Warning", w.Warning("b2bua")))
	}
}
