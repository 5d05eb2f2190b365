package sip

// bridgePolicy decides what one leg's fate does to the rest of its
// session. The session asks it and acts on the answer; the policy changes
// nothing itself. Dual-path (the session lives while a near leg and the
// far leg live) and conference (while members remain) are further
// policies of the same shape.
type bridgePolicy interface {
	// answered is told that l answered first; it returns the placed legs
	// that lost, which the session CANCELs (or ACKs and BYEs should they
	// answer too).
	answered(c *session, l *uacLeg) (losers []*uacLeg)
	// legEnded is told that l ended (BYE, CANCEL, a failure); true ends
	// the whole session with l's end reason.
	legEnded(c *session, l *leg) bool
}

// twoParty is today's call: the caller's leg and one answered leg towards
// the callee, placed as one leg or forked to several. Either side's BYE
// ends both; a failed fork branch ends the call only when no other branch
// can still answer (RFC 3261 §16.7 step 6's "no more branches").
type twoParty struct{}

func (twoParty) answered(c *session, l *uacLeg) []*uacLeg {
	var losers []*uacLeg
	for _, o := range c.uac {
		if o != l && o.tx != nil && !o.final {
			losers = append(losers, o)
		}
	}
	return losers
}

func (twoParty) legEnded(c *session, l *leg) bool {
	if l.uas != nil || l.up {
		return true
	}
	if c.winner != nil {
		return false // a branch that lost
	}
	for _, o := range c.uac {
		if &o.leg != l && o.trying() {
			return false
		}
	}
	return true
}

var _ bridgePolicy = twoParty{}
