package conference

import "time"

// Leg is the SIP side's handle on one participant: it reports the call's
// progress, and the conference publishes each real change. Reports that
// would move a participant backwards (a late 180 after the 200, anything
// after the end) are ignored, so the status shown is always the call's
// furthest true state even when SIP messages are handled out of order.
// A Leg is safe for use from any goroutine.
type Leg struct {
	conf *Conference
	id   string
}

// ParticipantID returns the ID of the participant the leg reports for.
func (l Leg) ParticipantID() string { return l.id }

// Dialing reports that the INVITE has been sent (RFC 4575 dialing-out).
func (l Leg) Dialing() error {
	return l.transition(func(p *Participant) bool {
		if p.Status != StatusPending {
			return false
		}
		p.Status = StatusDialing
		return true
	})
}

// Alerting reports a 180 Ringing (or a PSTN ALERTING behind a trunk).
func (l Leg) Alerting() error {
	return l.transition(func(p *Participant) bool {
		if p.Status != StatusPending && p.Status != StatusDialing {
			return false
		}
		p.Status = StatusRinging
		return true
	})
}

// Connected reports that the call was answered (or taken off hold) and the
// participant's media goes to the mixer.
func (l Leg) Connected() error {
	now := l.conf.now()
	return l.transition(func(p *Participant) bool {
		switch p.Status {
		case StatusPending, StatusDialing, StatusRinging, StatusOnHold:
		default:
			return false
		}
		p.Status = StatusConnected
		if p.Connected == nil {
			p.Connected = &now
		}
		return true
	})
}

// Held reports that the participant put the call on hold (true, an SDP
// sendonly or inactive offer) or resumed it (false).
func (l Leg) Held(held bool) error {
	return l.transition(func(p *Participant) bool {
		switch {
		case held && p.Status == StatusConnected:
			p.Status, p.Talking = StatusOnHold, false
		case !held && p.Status == StatusOnHold:
			p.Status = StatusConnected
		default:
			return false
		}
		return true
	})
}

// Talking reports the mixer's speech detection for the participant.
func (l Leg) Talking(talking bool) error {
	return l.transition(func(p *Participant) bool {
		if p.Talking == talking || (talking && p.Status != StatusConnected) {
			return false
		}
		p.Talking = talking
		return true
	})
}

// Ended reports that the call is over: a BYE either way, or a final
// failure answer to the INVITE. A call that never connected cannot have
// "departed": it is recorded as failed (busy stays busy).
func (l Leg) Ended(e Ending) error {
	now := l.conf.now()
	return l.transition(func(p *Participant) bool { return endLocked(p, e, now) })
}

func endLocked(p *Participant, e Ending, now time.Time) bool {
	if !p.Status.Live() {
		return false
	}
	if e.At.IsZero() {
		e.At = now
	}
	if p.Connected == nil && e.Method == Departed {
		e.Method = Failed
	}
	p.Status, p.Talking, p.Ended = StatusDisconnected, false, &e
	return true
}

func (l Leg) transition(f func(p *Participant) bool) error {
	_, err := l.conf.update(l.id, func(p *Participant) (bool, error) { return f(p), nil })
	return err
}
