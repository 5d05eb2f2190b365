package sip

import (
	"errors"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/rtpproxy"
)

// How the call loop uses a media session beyond Offer and Answer. The
// optional methods are discovered by type assertion, so Passthrough needs
// none of them.

// mediaWatcher is a session that can end by itself (the RTP proxy's
// supervision found dead media).
type mediaWatcher interface {
	Done() <-chan struct{}
	Err() error
}

// watchMedia ends the call when its media session dies on its own: BYE to
// both legs with Reason Q.850 cause 102, recovery on timer expiry (RFC
// 3326), and "media timeout" as the record's end cause. The goroutine ends
// with the call.
func (c *call) watchMedia(m MediaSession) {
	w, ok := m.(mediaWatcher)
	if !ok {
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

func (c *call) onMediaDone(err error) {
	if c.ending || c.ctx.Err() != nil {
		return // the call ended first; its context closed the session
	}
	f := MediaTimeoutFailure(err)
	if !errors.Is(err, rtpproxy.ErrMediaTimeout) {
		// The relay went away under a live call (it was closed).
		f = &Failure{Status: 503, Cause: CauseTemporaryFailure, Text: "media relay closed", Err: err}
	}
	c.log.Info("media ended: ending call", "err", err)
	c.byeCause = f.Cause
	if !c.aFinal {
		c.respondCaller(f)
	}
	c.end(f.Text)
}

// offerFailure is the answer to an offer the media anchor refused: its own
// status (400 malformed SDP, 488 SDP it cannot anchor, 503 no ports) with
// the Warning the anchor wrote.
func offerFailure(err error) *Failure {
	return AsFailure(mediaFailure(err))
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

// addWarning adds the media anchor's Warning header (RFC 3261 §20.43) to a
// response carrying f, when f came from the anchor.
func addWarning(res *sipmsg.Response, f *Failure) {
	var e *rtpproxy.Error
	if errors.As(f, &e) {
		res.AppendHeader(sipmsg.NewHeader("Warning", e.Warning("b2bua")))
	}
}
