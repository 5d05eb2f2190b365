// Package scp asks a Service Control Point where a terminal is: it maps a
// mobile identity (IMSI, MAC or MSISDN) to the address the terminal can be reached at
// now and whether it is online, busy or absent. Backends (the in-process
// simulator, HTTP, CAP over SS7) implement Locator.
package scp

import (
	"context"
	"errors"
	"net/netip"
	"time"
)

// DefaultTimeout is the one deadline of a lookup unless configured
// otherwise (b2bua serve --scp-timeout), the same for every backend: past it
// the caller gets 503. It leaves room for an SCP across a SIGTRAN network,
// and after a few timeouts in a row the http backend's breaker answers at
// once, so a hanging SCP costs only the first callers the wait.
const DefaultTimeout = 2 * time.Second

// State is a subscriber's reachability as the SCP reports it.
type State string

// States.
const (
	Online State = "online"
	Busy   State = "busy"
	Absent State = "absent"
)

// ParseState validates a state name.
func ParseState(s string) (State, error) {
	switch State(s) {
	case Online, Busy, Absent:
		return State(s), nil
	}
	return "", errors.New("state: must be online, busy or absent")
}

// Location is the SCP's answer for one subscriber.
type Location struct {
	Addr  netip.AddrPort // where SIP reaches the terminal; valid when State is Online
	State State
}

// Errors every backend returns, wrapped, so that callers can pick the SIP
// answer with errors.Is whatever backend runs.
var (
	// ErrUnknownSubscriber: the SCP has no record of this mobile identity.
	ErrUnknownSubscriber = errors.New("scp: unknown subscriber")
	// ErrUnavailable: the SCP cannot be reached, refused the dialogue, or
	// answered something that is not a valid answer.
	ErrUnavailable = errors.New("scp: unavailable")
	// ErrTimeout: the SCP did not answer within the deadline.
	ErrTimeout = errors.New("scp: timeout")
)

// Locator is the one question the B2BUA asks an SCP. mobileID is in the
// registry's "type:value" form, e.g. "imsi:001010000000001",
// "mac:00:1a:2b:3c:4d:5e" or "msisdn:+441632960001".
type Locator interface {
	Locate(ctx context.Context, mobileID string) (Location, error)
}
