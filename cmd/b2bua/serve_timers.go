package main

import "time"

// sessionTimerOptions are the flags of session timers (RFC 4028) and the
// call duration limit.
type sessionTimerOptions struct {
	expires time.Duration // --session-expires; 0: off
	minSE   time.Duration // --min-se
	maxCall time.Duration // --max-call-duration; 0: no limit
}

// sipExpires is --session-expires as sip.Config takes it: negative for
// off, since its zero means the default.
func (o sessionTimerOptions) sipExpires() time.Duration {
	if o.expires <= 0 {
		return -1
	}
	return o.expires
}
