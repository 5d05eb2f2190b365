package sip

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/scp"
)

// TerminalFinder gives an IM user's active terminal: registry.ErrNotFound for
// an unknown user, registry.ErrNoActiveTerminal for a user without one.
type TerminalFinder interface {
	ActiveTerminal(ctx context.Context, imID string) (registry.Terminal, error)
}

// BindingLister gives a user's live SIP registrations, newest first.
type BindingLister interface {
	Bindings(ctx context.Context, imID string, now time.Time) ([]registry.Binding, error)
}

// Target is where a call to an IM user goes.
type Target struct {
	Terminal   registry.Terminal
	URI        sipmsg.Uri // Request-URI of the INVITE towards the terminal
	Dest       string     // host:port the INVITE is sent to
	Transport  string     // "UDP", "TCP" or "TLS"
	SCPOutcome string     // what the SCP said, for the call record; "" for smart terminals
	// Client is the key of the logged-in client's binding (its
	// +sip.instance or Contact), Expires when that login ends; zero for a
	// target that is no login.
	Client  string
	Expires time.Time
}

// Router makes the routing decision: callee IM ID → registry → active
// terminal → a smart terminal's newest binding, or the SCP's Location of a
// legacy terminal. It opens no sockets of its own, so it is tested with
// in-memory fakes and used as is by the Server.
type Router struct {
	Terminals  TerminalFinder
	Bindings   BindingLister
	Locator    scp.Locator
	SCPTimeout time.Duration    // deadline of one Locate; 0: 2s
	Now        func() time.Time // nil: time.Now
}

// Route decides where a call to imID goes. Every error it returns is a
// *Failure that knows the caller's answer; the Target's SCPOutcome is also
// set on failure paths that asked the SCP, for the call record.
func (r *Router) Route(ctx context.Context, imID string) (Target, error) {
	t, err := r.Terminals.ActiveTerminal(ctx, imID)
	switch {
	case errors.Is(err, registry.ErrNotFound):
		return Target{}, &Failure{Status: 404, Cause: CauseUnallocated, Text: "unknown IM user " + imID, Err: err}
	case errors.Is(err, registry.ErrNoActiveTerminal):
		// Q.850 20 "subscriber absent": the user exists but has no terminal
		// that could ring, which is what absence means to the caller.
		return Target{}, &Failure{Status: 480, Cause: CauseSubscriberAbsent, Text: "no active terminal", Err: err}
	case err != nil:
		return Target{}, registryFailure(err)
	}
	if t.Kind == registry.Smart {
		return r.routeSmart(ctx, t)
	}
	return r.routeLegacy(ctx, t)
}

// registryFailure is the answer to a call the registry could not serve: 503
// with Retry-After when the store could not be asked at all (its server is
// down or unreachable, RFC 3261 §21.5.4: the condition is temporary, and a
// proxy in front such as Kamailio tries another node), else 500.
func registryFailure(err error) *Failure {
	return &Failure{Status: registryStatus(err), Cause: CauseTemporaryFailure, Text: "registry unavailable", RetryAfter: 30, Err: err}
}

// registryStatus is 503 for a store that could not be asked, else 500.
func registryStatus(err error) int {
	if errors.Is(err, registry.ErrUnavailable) {
		return 503
	}
	return 500
}

func (r *Router) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Router) routeSmart(ctx context.Context, t registry.Terminal) (Target, error) {
	target := Target{Terminal: t}
	if r.Bindings == nil {
		return target, &Failure{Status: 480, Cause: CauseSubscriberAbsent, Text: "terminal not registered"}
	}
	bs, err := r.Bindings.Bindings(ctx, t.IMID, r.now())
	if err != nil {
		return target, registryFailure(err)
	}
	// Prefer a binding of this very terminal; otherwise the newest of the
	// user's bindings (a UA that did not identify its terminal).
	var chosen *registry.Binding
	for i := range bs {
		if bs[i].TerminalID == t.ID {
			chosen = &bs[i]
			break
		}
	}
	if chosen == nil && len(bs) > 0 {
		chosen = &bs[0]
	}
	if chosen == nil {
		return target, &Failure{Status: 480, Cause: CauseSubscriberAbsent, Text: "terminal not registered"}
	}
	bt, err := bindingTarget(*chosen)
	bt.Terminal, bt.Client, bt.Expires = t, "", time.Time{}
	return bt, err
}

func (r *Router) routeLegacy(ctx context.Context, t registry.Terminal) (Target, error) {
	target := Target{Terminal: t}
	if r.Locator == nil {
		target.SCPOutcome = "unavailable"
		return target, &Failure{Status: 503, Cause: CauseNetworkOutOfOrder, Text: "no SCP configured", RetryAfter: 30}
	}
	timeout := r.SCPTimeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	lctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	loc, err := r.Locator.Locate(lctx, t.MobileID.String())
	switch {
	case errors.Is(err, scp.ErrUnknownSubscriber):
		target.SCPOutcome = "unknown"
		// The user exists but the network has no record of the terminal:
		// to the caller that is a callee who cannot be reached now.
		return target, &Failure{Status: 480, Cause: CauseSubscriberAbsent, Text: "terminal unknown to the network", Err: err}
	case errors.Is(err, scp.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) || (err != nil && lctx.Err() != nil && ctx.Err() == nil):
		target.SCPOutcome = "timeout"
		// Q.850 41 "temporary failure": the SCP may answer on a retry.
		return target, &Failure{Status: 503, Cause: CauseTemporaryFailure, Text: "SCP did not answer in time", RetryAfter: 30, Err: err}
	case err != nil:
		target.SCPOutcome = "unavailable"
		return target, &Failure{Status: 503, Cause: CauseNetworkOutOfOrder, Text: "SCP unavailable", RetryAfter: 30, Err: err}
	}
	switch loc.State {
	case scp.Busy:
		target.SCPOutcome = "busy"
		return target, &Failure{Status: 486, Cause: CauseUserBusy, Text: "user busy"}
	case scp.Absent:
		target.SCPOutcome = "absent"
		return target, &Failure{Status: 480, Cause: CauseSubscriberAbsent, Text: "subscriber absent"}
	case scp.Online:
	default:
		target.SCPOutcome = string(loc.State)
		return target, &Failure{Status: 503, Cause: CauseNetworkOutOfOrder, Text: fmt.Sprintf("SCP answered unknown state %q", loc.State), RetryAfter: 30}
	}
	if !loc.Addr.IsValid() || loc.Addr.Port() == 0 {
		target.SCPOutcome = "online without address"
		return target, &Failure{Status: 503, Cause: CauseNetworkOutOfOrder, Text: "SCP gave no address", RetryAfter: 30}
	}
	target.SCPOutcome = "online " + loc.Addr.String()
	target.URI = sipmsg.Uri{Scheme: "sip", User: t.IMID, Host: hostForURI(loc.Addr.Addr()), Port: int(loc.Addr.Port())}
	target.Dest = loc.Addr.String()
	target.Transport = "UDP"
	return target, nil
}

// hostForURI gives the host part sipgo expects: an IPv6 address without
// brackets (sipgo adds them when it writes the URI).
func hostForURI(a netip.Addr) string { return a.Unmap().String() }
