package rtpproxy

import (
	"errors"
	"fmt"
)

// ErrNoRemote: Send found no address for the party yet (its SDP gave none
// and it has sent nothing to latch on).
var ErrNoRemote = errors.New("no remote address for the party")

// Send sends one RTP packet of the given media to leg to's party, out of
// that leg's endpoint (so the party sees it from the port its SDP was
// given), to the address the latch learned or, before any packet came,
// the one its SDP names. It is how a sink that produces media (the
// conference mixer, one mix per member) answers: the packet is not
// rewritten, the producer owns its SSRC, sequence and timestamps. It does
// not block: a full socket buffer drops the packet with an error. Safe for
// use from any goroutine.
func (c *Call) Send(to Leg, media string, pkt []byte) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	var ep *endpoint
	for _, st := range c.streams {
		if st.media == media {
			if ep = st.endpointOf(to); ep != nil {
				break
			}
		}
	}
	c.mu.Unlock()
	if ep == nil {
		return fmt.Errorf("rtpproxy: leg %s has no %s endpoint", to, media)
	}
	dst := ep.dstRTP.Load()
	if dst == nil {
		return fmt.Errorf("rtpproxy: leg %s: %w", to, ErrNoRemote)
	}
	if err := sendOne(ep.rtp, dst, pkt); err != nil {
		return fmt.Errorf("rtpproxy: send to leg %s: %w", to, err)
	}
	return nil
}
