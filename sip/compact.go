package sip

// compactLater lets an answered call drop, once its INVITE transactions
// are over (Timer L and M: 64*T1 after the 2xx), what only they needed:
// the server transaction of each answered INVITE that reached us (with
// the request as parsed and our answer) and the client transaction of
// each INVITE we placed. A long call then holds its dialogs, not its
// set-up.
func (c *session) compactLater() {
	c.after(64*c.s.cfg.T1, c.compact)
}

func (c *session) compact() {
	if c.ending {
		return
	}
	for _, u := range c.uas {
		// Every later use of u.tx answers an INVITE still unanswered
		// (respondUAS, a relayed 1xx) or retransmits its 2xx (expectAck
		// keeps its own reference).
		if u.final && u.await == nil {
			u.tx = nil
		}
	}
	for _, l := range c.uac {
		// The transaction has taken its final (or ended): it neither
		// takes a CANCEL nor posts again, and sipgo has let it go.
		if l.txFinal || l.txDone {
			l.tx = nil
		}
	}
}
