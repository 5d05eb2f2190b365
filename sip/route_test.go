package sip

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/scp"
)

// fakeRegistry is an in-memory TerminalFinder and BindingLister.
type fakeRegistry struct {
	terminals map[string]registry.Terminal // by IM ID; absent: unknown user
	noActive  map[string]bool
	bindings  map[string][]registry.Binding
	err       error
}

func (f *fakeRegistry) ActiveTerminal(_ context.Context, imID string) (registry.Terminal, error) {
	if f.err != nil {
		return registry.Terminal{}, f.err
	}
	if f.noActive[imID] {
		return registry.Terminal{}, fmt.Errorf("user %s: %w", imID, registry.ErrNoActiveTerminal)
	}
	t, ok := f.terminals[imID]
	if !ok {
		return registry.Terminal{}, fmt.Errorf("user %s: %w", imID, registry.ErrNotFound)
	}
	return t, nil
}

func (f *fakeRegistry) Bindings(_ context.Context, imID string, _ time.Time) ([]registry.Binding, error) {
	return f.bindings[imID], nil
}

type fakeLocator map[string]func(ctx context.Context) (scp.Location, error)

func (f fakeLocator) Locate(ctx context.Context, id string) (scp.Location, error) {
	if fn, ok := f[id]; ok {
		return fn(ctx)
	}
	return scp.Location{}, scp.ErrUnknownSubscriber
}

func legacy(id int64, imID, imsi string) registry.Terminal {
	return registry.Terminal{ID: id, IMID: imID, Kind: registry.Legacy, Active: true, MobileID: registry.MobileID{Type: registry.IMSI, Value: imsi}}
}

func TestRoute(t *testing.T) {
	reg := &fakeRegistry{
		terminals: map[string]registry.Terminal{
			"online":  legacy(1, "online", "001010000000001"),
			"busy":    legacy(2, "busy", "001010000000002"),
			"absent":  legacy(3, "absent", "001010000000003"),
			"nobody":  legacy(4, "nobody", "001010000000004"),
			"down":    legacy(5, "down", "001010000000005"),
			"slow":    legacy(6, "slow", "001010000000006"),
			"smart":   {ID: 7, IMID: "smart", Kind: registry.Smart, Active: true},
			"unreg":   {ID: 8, IMID: "unreg", Kind: registry.Smart, Active: true},
			"v6":      legacy(9, "v6", "001010000000009"),
			"noaddr":  legacy(10, "noaddr", "001010000000010"),
			"natted":  {ID: 11, IMID: "natted", Kind: registry.Smart, Active: true},
			"garbled": {ID: 12, IMID: "garbled", Kind: registry.Smart, Active: true},
		},
		noActive: map[string]bool{"idle": true},
		bindings: map[string][]registry.Binding{
			"smart": {
				{IMID: "smart", TerminalID: 99, Contact: "sip:other@192.0.2.9:5070"},
				{IMID: "smart", TerminalID: 7, Contact: "sip:smart@192.0.2.7:5070;transport=tcp"},
			},
			"natted":  {{IMID: "natted", Contact: "sip:n@10.0.0.5:5060", Source: "198.51.100.1:40000", Transport: "udp"}},
			"garbled": {{IMID: "garbled", Contact: "::not a uri"}},
		},
	}
	online := func(a string) func(context.Context) (scp.Location, error) {
		return func(context.Context) (scp.Location, error) {
			return scp.Location{State: scp.Online, Addr: netip.MustParseAddrPort(a)}, nil
		}
	}
	state := func(s scp.State) func(context.Context) (scp.Location, error) {
		return func(context.Context) (scp.Location, error) { return scp.Location{State: s}, nil }
	}
	loc := fakeLocator{
		"imsi:001010000000001": online("127.0.0.1:5062"),
		"imsi:001010000000002": state(scp.Busy),
		"imsi:001010000000003": state(scp.Absent),
		"imsi:001010000000005": func(context.Context) (scp.Location, error) {
			return scp.Location{}, fmt.Errorf("dial: %w", scp.ErrUnavailable)
		},
		"imsi:001010000000006": func(ctx context.Context) (scp.Location, error) {
			<-ctx.Done() // an SCP that never answers
			return scp.Location{}, ctx.Err()
		},
		"imsi:001010000000009": online("[2001:db8::7]:5062"),
		"imsi:001010000000010": state(scp.Online),
	}
	r := &Router{Terminals: reg, Bindings: reg, Locator: loc, SCPTimeout: 50 * time.Millisecond}

	tests := []struct {
		callee     string
		status     int // 0: routed
		cause      int
		retryAfter bool
		uri, dest  string
		transport  string
		outcome    string
	}{
		{callee: "online", uri: "sip:online@127.0.0.1:5062", dest: "127.0.0.1:5062", transport: "UDP", outcome: "online 127.0.0.1:5062"},
		{callee: "v6", uri: "sip:v6@[2001:db8::7]:5062", dest: "[2001:db8::7]:5062", transport: "UDP", outcome: "online [2001:db8::7]:5062"},
		{callee: "stranger", status: 404, cause: 1},
		{callee: "idle", status: 480, cause: 20},
		{callee: "busy", status: 486, cause: 17, outcome: "busy"},
		{callee: "absent", status: 480, cause: 20, outcome: "absent"},
		{callee: "nobody", status: 480, cause: 20, outcome: "unknown"},
		{callee: "down", status: 503, cause: 38, retryAfter: true, outcome: "unavailable"},
		{callee: "slow", status: 503, cause: 41, retryAfter: true, outcome: "timeout"},
		{callee: "noaddr", status: 503, cause: 38, retryAfter: true},
		{callee: "smart", uri: "sip:smart@192.0.2.7:5070;transport=tcp", dest: "192.0.2.7:5070", transport: "TCP"},
		{callee: "natted", uri: "sip:n@10.0.0.5:5060", dest: "198.51.100.1:40000", transport: "UDP"},
		{callee: "unreg", status: 480, cause: 20},
		{callee: "garbled", status: 480, cause: 20},
	}
	for _, tc := range tests {
		t.Run(tc.callee, func(t *testing.T) {
			got, err := r.Route(context.Background(), tc.callee)
			if tc.status == 0 {
				if err != nil {
					t.Fatalf("Route: %v", err)
				}
				if got.URI.String() != tc.uri || got.Dest != tc.dest || got.Transport != tc.transport {
					t.Errorf("target %s → %s over %s, want %s → %s over %s", got.URI.String(), got.Dest, got.Transport, tc.uri, tc.dest, tc.transport)
				}
			} else {
				var f *Failure
				if !errors.As(err, &f) {
					t.Fatalf("Route error %v is not a *Failure", err)
				}
				if f.Status != tc.status || f.Cause != tc.cause {
					t.Errorf("failure %d cause %d, want %d cause %d (%v)", f.Status, f.Cause, tc.status, tc.cause, f)
				}
				if (f.RetryAfter > 0) != tc.retryAfter {
					t.Errorf("Retry-After %d, want set=%v", f.RetryAfter, tc.retryAfter)
				}
				if f.Text == "" {
					t.Error("failure without text")
				}
			}
			if tc.outcome != "" && got.SCPOutcome != tc.outcome {
				t.Errorf("SCP outcome %q, want %q", got.SCPOutcome, tc.outcome)
			}
		})
	}

	for _, tc := range []struct {
		name   string
		err    error
		status int
	}{
		{"registry failed", errors.New("disk on fire"), 500},
		// A store whose server cannot be reached: a proxy in front may
		// try another node, and the caller may try again later.
		{"registry unreachable", fmt.Errorf("active terminal: %w: dial: connection refused", registry.ErrUnavailable), 503},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Router{Terminals: &fakeRegistry{err: tc.err}, Locator: loc}
			_, err := r.Route(context.Background(), "online")
			if f := AsFailure(err); f.Status != tc.status || f.Cause != CauseTemporaryFailure || f.RetryAfter == 0 {
				t.Errorf("got %v, want %d with Retry-After", err, tc.status)
			}
		})
	}
}

func TestFailureReason(t *testing.T) {
	tests := []struct {
		f    Failure
		want string
	}{
		{Failure{Status: 486, Cause: 17, Text: "user busy"}, `Q.850;cause=17;text="user busy"`},
		{Failure{Status: 480, Cause: 20, Text: `a "quoted"` + "\r\nline"}, `Q.850;cause=20;text="a 'quoted'  line"`},
	}
	for _, tc := range tests {
		if got := tc.f.Reason(); got != tc.want {
			t.Errorf("Reason() = %s, want %s", got, tc.want)
		}
		cause, text := parseReasonCause(tc.f.Reason())
		if cause != tc.f.Cause || text == "" {
			t.Errorf("parseReasonCause(%s) = %d %q", tc.f.Reason(), cause, text)
		}
	}
	if c, _ := parseReasonCause(`SIP;cause=200;text="x"`); c != 0 {
		t.Errorf("a SIP Reason read as Q.850 cause %d", c)
	}
}
