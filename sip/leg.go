package sip

import (
	"context"
	"errors"
	"sync"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

// leg is what every signalling leg of a session has, whichever way its
// INVITE went: its dialog, its media name, its context and why it ended.
// A leg is owned by its session's loop; nothing else reads or writes it.
type leg struct {
	dialogState
	id   LegID
	name string // "caller" or "callee": the end causes of the call record

	uas *uasLeg // set on a leg whose INVITE reached us
	uac *uacLeg // set on a leg whose INVITE we sent

	// ctx lives while the leg does; its cause is the leg's end reason
	// (CONVENTIONS 8), which becomes the session's end cause when the
	// bridge policy ends the session with it.
	ctx    context.Context
	cancel context.CancelCauseFunc

	up      bool // confirmed: a 2xx to its INVITE was sent or received
	byeSent bool // we sent BYE on it, or took the peer's: none (more) from us

	await   *await2xx   // our 2xx on this leg waiting for its ACK
	delayed *delayedAck // our ACK held for the answer in this leg's ACK

	st *sessTimer // its session timer (sessiontimer.go); nil: none
	// localSDP and remoteSDP are the last SDP each side sent on the leg:
	// a refresh repeats ours and recognises an unchanged one of the peer.
	localSDP, remoteSDP []byte
}

func newLeg(id LegID, name string, d dialogState) leg {
	ctx, cancel := context.WithCancelCause(context.Background())
	return leg{dialogState: d, id: id, name: name, ctx: ctx, cancel: cancel}
}

// end records why the leg ended; the first reason stays.
func (l *leg) end(reason string) {
	l.cancel(errors.New(reason))
	l.st.stop()
	if l.await != nil {
		l.await.timer.Stop()
		l.await = nil
	}
}

// ended tells whether the leg is over.
func (l *leg) ended() bool { return l.ctx.Err() != nil }

// endReason is why the leg ended, "" while it lives.
func (l *leg) endReason() string {
	if err := context.Cause(l.ctx); err != nil {
		return err.Error()
	}
	return ""
}

// uasLeg is a leg whose INVITE reached us: we answer it.
type uasLeg struct {
	leg
	inv   *sipmsg.Request // the INVITE, with our To tag
	tx    sipmsg.ServerTransaction
	final bool     // its INVITE has our final response
	rel   reliable // our reliable provisionals to it (prack.go)
}

// uacLeg is a leg whose INVITE we sent: a terminal, a fork branch.
type uacLeg struct {
	leg
	target Target
	inv    *sipmsg.Request
	tx     sipmsg.ClientTransaction
	ack    *sipmsg.Request  // our ACK of its 2xx, for the 2xx's retransmissions
	ok     *sipmsg.Response // the 2xx that confirmed it

	provisional, alerted bool
	final                bool // its INVITE has a final response
	// txFinal: the INVITE transaction has taken its final response; for
	// a non-2xx one it has ACKed it (RFC 3261 §17.1.1.3) and stays to
	// ACK retransmissions until Timer D.
	txFinal, txFailed, txDone bool
	cancelWanted, cancelSent  bool

	// se and minSE are the Session-Expires and Min-SE of our INVITE;
	// retriedSE: it was sent again after a 422 (RFC 4028 §7.4).
	se, minSE time.Duration
	retriedSE bool

	// rseqs is the last RSeq we PRACKed, by early dialog (To tag).
	rseqs map[string]uint32
	// earlyAnswer is the answer of an 18x as we relayed it to the
	// caller, for a 2xx that does not repeat it (RFC 3262: the
	// exchange may end in a reliable provisional).
	earlyAnswer []byte

	// strays are the ACKs of 2xx from other dialogs of this INVITE (a
	// forking proxy downstream), by To tag, for their retransmissions.
	strays map[string]*sipmsg.Request
}

// trying tells whether the leg may still answer.
func (l *uacLeg) trying() bool { return !l.final && !l.cancelWanted }

// serverReq is an in-dialog request waiting for the session's answer. Its
// handler goroutine blocks on done, because sipgo ends a transaction whose
// handler has returned.
type serverReq struct {
	req  *sipmsg.Request
	tx   sipmsg.ServerTransaction
	done chan struct{}

	mu       sync.Mutex
	answered bool
}

func (r *serverReq) respond(res *sipmsg.Response) {
	final := res.StatusCode >= 200
	r.mu.Lock()
	if r.answered {
		r.mu.Unlock()
		return
	}
	if final {
		r.answered = true
	}
	r.mu.Unlock()
	_ = r.tx.Respond(res)
	if final {
		close(r.done)
	}
}

// await2xx retransmits a 2xx to an INVITE until its ACK arrives (RFC 3261
// §13.3.1.4; RFC 6026 makes this the job of the transaction user).
type await2xx struct {
	tx       sipmsg.ServerTransaction
	res      *sipmsg.Response
	seq      uint32
	interval time.Duration
	deadline time.Time
	timer    *time.Timer
}
