package sip

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/imcall/b2bua/registry"
)

// fakeNumbers is a NumberDirectory whose trunk list the test sets.
type fakeNumbers struct {
	trunks []registry.Trunk
	err    error
	reads  int
}

func (f *fakeNumbers) Trunks(context.Context) ([]registry.Trunk, error) {
	f.reads++
	return f.trunks, f.err
}

func (f *fakeNumbers) DID(context.Context, string) (registry.DID, error) {
	return registry.DID{}, registry.ErrNotFound
}

// The trunk list is read once per TTL, an edit is seen after it, and a
// failed re-read keeps the last list rather than challenging the trunk.
func TestTrunkCache(t *testing.T) {
	carrier := registry.Trunk{Name: "carrier", CIDRs: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}
	other := registry.Trunk{Name: "other", CIDRs: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}}
	src := netip.MustParseAddr("192.0.2.7")
	type step struct {
		advance time.Duration
		trunks  []registry.Trunk // the directory's list from this step on
		err     error
		want    string // trunk matched, "" none
		reads   int    // directory reads so far
		wantErr bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"read once within the TTL", []step{
			{trunks: []registry.Trunk{carrier}, want: "carrier", reads: 1},
			{advance: time.Second, trunks: []registry.Trunk{other}, want: "carrier", reads: 1},
		}},
		{"an edit is seen after the TTL", []step{
			{trunks: []registry.Trunk{carrier}, want: "carrier", reads: 1},
			{advance: 2 * time.Second, trunks: []registry.Trunk{other}, want: "", reads: 2},
		}},
		{"a failed re-read keeps the last list", []step{
			{trunks: []registry.Trunk{carrier}, want: "carrier", reads: 1},
			{advance: 3 * time.Second, err: errors.New("database locked"), want: "carrier", reads: 2},
			{advance: time.Second, err: errors.New("database locked"), want: "carrier", reads: 2},
		}},
		{"never read is an error", []step{
			{err: errors.New("database locked"), wantErr: true, reads: 1},
			{err: nil, trunks: []registry.Trunk{carrier}, want: "carrier", reads: 2},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Unix(1_000_000, 0)
			dir := &fakeNumbers{}
			c := newTrunkCache(dir, 2*time.Second, func() time.Time { return now }, slog.New(slog.DiscardHandler))
			for i, s := range tt.steps {
				now = now.Add(s.advance)
				if s.trunks != nil {
					dir.trunks = s.trunks
				}
				dir.err = s.err
				tr, ok, err := c.match(context.Background(), src)
				if (err != nil) != s.wantErr {
					t.Fatalf("step %d: err %v, want error %v", i, err, s.wantErr)
				}
				got := ""
				if ok {
					got = tr.Name
				}
				if got != s.want || dir.reads != s.reads {
					t.Errorf("step %d: matched %q after %d reads, want %q after %d", i, got, dir.reads, s.want, s.reads)
				}
			}
		})
	}
}
