package scphttp

import (
	"log/slog"
	"sync"
	"time"
)

// breaker is a consecutive-failure circuit breaker. Closed, every lookup
// goes to the SCP. After threshold failures in a row it opens and lookups
// fail at once; after cooldown it lets one lookup through as a probe
// (half-open) and closes on its success or opens again on its failure.
type breaker struct {
	threshold int
	cooldown  time.Duration
	now       func() time.Time
	log       *slog.Logger

	mu       sync.Mutex
	state    breakerState
	failures int
	openedAt time.Time
}

type breakerState int

const (
	closed breakerState = iota
	open
	halfOpen
)

// verdict is what a lookup says about the SCP's health.
type verdict int

const (
	healthy verdict = iota // the SCP answered: found, unknown, or busy
	failed                 // the SCP could not be reached, timed out or answered garbage
	neutral                // says nothing: the caller gave up, or the request was refused as malformed
)

// allow reports whether a lookup may go to the SCP and whether it is the
// half-open probe.
func (b *breaker) allow() (ok, probe bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case closed:
		return true, false
	case open:
		if b.now().Sub(b.openedAt) >= b.cooldown {
			b.state = halfOpen
			return true, true
		}
	}
	return false, false
}

// done records a lookup's outcome.
func (b *breaker) done(probe bool, v verdict) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch v {
	case healthy:
		if b.state != closed {
			b.log.Info("scp circuit closed: SCP answers again")
		}
		b.state, b.failures = closed, 0
	case failed:
		b.failures++
		if probe || (b.state == closed && b.failures >= b.threshold) {
			if b.state == closed {
				b.log.Warn("scp circuit open: lookups fail fast until a probe succeeds", "consecutive_failures", b.failures, "probe_after", b.cooldown)
			}
			b.state, b.openedAt = open, b.now()
		}
	case neutral:
		if probe {
			// The probe proved nothing; let the next lookup probe.
			b.state = open
		}
	}
}

// BreakerOpen reports whether the circuit breaker refuses lookups now
// (open, or half-open while one probe is out), for readiness.
func (c *Client) BreakerOpen() bool { return c.br.isOpen() }

// isOpen reports whether lookups are currently refused.
func (b *breaker) isOpen() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state != closed
}
