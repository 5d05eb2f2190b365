package main

import (
	"errors"
	"time"

	"github.com/imcall/b2bua/daemon"
)

// fitDualPath shortens the path timeouts the user left at their defaults
// to fit under a short --media-timeout (half of it for --leg-timeout, and
// --leg-media-timeout no longer than that), so that setting only
// --media-timeout never fails on flags the user did not give. Given
// values are kept, and checkDualPath judges them.
func fitDualPath(d daemon.DualPath, mediaTimeout time.Duration, legTimeoutSet, legMediaSet bool) daemon.DualPath {
	if d.Window <= 0 || mediaTimeout <= 0 || d.LegTimeout < mediaTimeout || legTimeoutSet {
		return d
	}
	d.LegTimeout = mediaTimeout / 2
	if !legMediaSet && d.LegMediaTimeout > d.LegTimeout {
		d.LegMediaTimeout = d.LegTimeout
	}
	return d
}

// checkDualPath validates the dual-path flags against the media timeout:
// a silent path must be ended (--leg-timeout) before the RTP proxy ends
// the whole call for that path's silence (--media-timeout).
func checkDualPath(d daemon.DualPath, mediaTimeout time.Duration) error {
	switch {
	case d.Window < 0:
		return errors.New("--dual-path-window: must not be negative (0 turns dual-path calls off)")
	case d.LegMediaTimeout <= 0 || d.LegTimeout <= 0:
		return errors.New("--leg-media-timeout, --leg-timeout: must be positive")
	case d.ProbeInterval < 0:
		return errors.New("--leg-probe-interval: must not be negative")
	case d.LegTimeout < d.LegMediaTimeout:
		return errors.New("--leg-timeout: must not be shorter than --leg-media-timeout")
	case d.Window > 0 && mediaTimeout > 0 && d.LegTimeout >= mediaTimeout:
		return errors.New("--leg-timeout: must be shorter than --media-timeout, or the silence of one path ends the whole call")
	}
	return nil
}
