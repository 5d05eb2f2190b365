package sip

import "github.com/imcall/b2bua/registry"

// Observer is told what the server did, for metrics. Its methods run on
// call loops and request handlers: they must be quick and must not block.
type Observer interface {
	// CallEnded gets the summary of every call's final record.
	CallEnded(registry.CallSummary)
	// Registered is one REGISTER answered 200: a login, a refresh or a
	// logout.
	Registered()
	// LimitEvent is one per-source limit at work (ratelimit.go): LimitRate
	// (a request refused over the rate), LimitLockedOut (a request refused
	// by a lock-out) or LimitLockoutStarted (failed authentications started
	// one).
	LimitEvent(kind string)
}

// Kinds of Observer.LimitEvent.
const (
	LimitRate           = "rate_limited"
	LimitLockedOut      = "locked_out"
	LimitLockoutStarted = "lockout_started"
)

// nopObserver is the Observer of a server configured without one.
type nopObserver struct{}

func (nopObserver) CallEnded(registry.CallSummary) {}
func (nopObserver) Registered()                    {}
func (nopObserver) LimitEvent(string)              {}
