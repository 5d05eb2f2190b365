package messaging

import (
	"context"
	"errors"
	"fmt"

	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/sip"
)

// CallMissed keeps an IM for the owner of a number nobody could answer,
// delivered like any kept message: at once when one of the user's clients
// next logs in (Registered), else by the retry sweep. The notice is from
// the caller's number, so that a reply reaches the caller's IM address in
// our domain when it has one; nobody is told of its delivery.
func (m *Messenger) CallMissed(ctx context.Context, c sip.MissedCall) error {
	if m.rules == nil {
		return errors.New("messaging: no store for kept messages")
	}
	sender := c.Caller
	if sender == "" {
		sender = "anonymous"
	}
	if _, err := m.keep(ctx, registry.PendingMessage{
		Recipient: c.Callee, Sender: sender, SenderDisplay: c.CallerName,
		ContentType: "text/plain;charset=utf-8", Body: []byte(MissedCallText(c)),
	}); err != nil {
		return fmt.Errorf("keep missed-call notice: %w", err)
	}
	m.log.Info("missed-call notice kept", "to", c.Callee, "number", c.Number)
	return nil
}

// MissedCallText is the IM a user receives about a missed call.
func MissedCallText(c sip.MissedCall) string {
	from := c.Caller
	if from == "" {
		from = "a withheld number"
	}
	return fmt.Sprintf("Missed call from %s to %s at %s UTC", from, c.Number, c.At.UTC().Format("2006-01-02 15:04"))
}

var _ sip.MissedCallNotifier = (*Messenger)(nil)
