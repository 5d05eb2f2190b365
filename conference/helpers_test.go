package conference

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// fakeDialer stands in for the SIP side, which has no conference wiring
// yet: each field is optional; nil Dial reports dialing and keeps the leg.
type fakeDialer struct {
	dial   func(p Participant, leg Leg) error
	hangup func(pid string, why Ending) error

	mu      sync.Mutex
	legs    map[string]Leg
	hungUp  map[string]Ending
	mutes   map[string]bool
	muteErr error
}

func (f *fakeDialer) Dial(ctx context.Context, confID string, p Participant, leg Leg) error {
	f.mu.Lock()
	if f.legs == nil {
		f.legs = map[string]Leg{}
	}
	f.legs[confID+"/"+p.ID] = leg
	f.mu.Unlock()
	if f.dial != nil {
		return f.dial(p, leg)
	}
	return leg.Dialing()
}

func (f *fakeDialer) Hangup(ctx context.Context, confID, pid string, why Ending) error {
	f.mu.Lock()
	if f.hungUp == nil {
		f.hungUp = map[string]Ending{}
	}
	f.hungUp[confID+"/"+pid] = why
	f.mu.Unlock()
	if f.hangup != nil {
		return f.hangup(pid, why)
	}
	return nil
}

func (f *fakeDialer) SetMuted(ctx context.Context, confID, pid string, muted bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.muteErr != nil {
		return f.muteErr
	}
	if f.mutes == nil {
		f.mutes = map[string]bool{}
	}
	f.mutes[confID+"/"+pid] = muted
	return nil
}

func (f *fakeDialer) leg(t *testing.T, confID, pid string) Leg {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	l, ok := f.legs[confID+"/"+pid]
	if !ok {
		t.Fatalf("no leg dialed for %s/%s", confID, pid)
	}
	return l
}

// fixedClock is a clock tests move by hand.
type fixedClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fixedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

func newManager(t *testing.T, f *fakeDialer) *Manager {
	t.Helper()
	clk := &fixedClock{t: time.Date(2026, 12, 3, 16, 0, 0, 0, time.UTC)}
	m, err := NewManager(Config{Domain: "im.example", Dialer: f, Audio: f, Now: clk.Now, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// next reads one event or fails after a while.
func next(t *testing.T, w *Watcher) Event {
	t.Helper()
	select {
	case ev, ok := <-w.Events():
		if !ok {
			t.Fatal("watch ended")
		}
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
	return Event{}
}

// xmllintPath finds xmllint (Debian libxml2-utils); .ci/run installs it,
// so under CI=true its absence fails the test.
func xmllintPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("xmllint")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("xmllint is required under CI=true: apt-get install libxml2-utils")
		}
		t.Skip("xmllint not installed (apt-get install libxml2-utils)")
	}
	return p
}

// validate checks body against RFC 4575's schema with xmllint.
func validate(t *testing.T, body []byte) error {
	t.Helper()
	xl := xmllintPath(t)
	f := filepath.Join(t.TempDir(), "body.xml")
	if err := os.WriteFile(f, body, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(xl, "--noout", "--schema", filepath.Join("testdata", "conference-info.xsd"), f).CombinedOutput()
	if err != nil {
		return errors.New(string(out))
	}
	return nil
}

func mustValidate(t *testing.T, body []byte) {
	t.Helper()
	if err := validate(t, body); err != nil {
		t.Fatalf("body not valid against RFC 4575's schema: %v\n%s", err, body)
	}
}
