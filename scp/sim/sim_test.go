package sim

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"

	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/scp"
)

var (
	addrA = netip.MustParseAddrPort("127.0.0.1:5062")
	addrB = netip.MustParseAddrPort("[::1]:5070")
)

func newSim(t *testing.T, subs ...Subscriber) *Simulator {
	t.Helper()
	s, err := New(Config{Subscribers: subs})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLocate(t *testing.T) {
	s := newSim(t,
		Subscriber{ID: "imsi:001010000000001", Addr: addrA, State: scp.Online},
		Subscriber{ID: "imsi:001010000000002", Addr: addrB, State: scp.Busy},
		Subscriber{ID: "mac:00:1a:2b:3c:4d:5e", State: scp.Absent},
		Subscriber{ID: "msisdn:+441632960001", Addr: addrB, State: scp.Online},
	)
	tests := []struct {
		id      string
		want    scp.Location
		wantErr error
	}{
		{"imsi:001010000000001", scp.Location{Addr: addrA, State: scp.Online}, nil},
		{"imsi:001010000000002", scp.Location{Addr: addrB, State: scp.Busy}, nil},
		{"mac:00:1a:2b:3c:4d:5e", scp.Location{State: scp.Absent}, nil},
		{"MAC:00-1A-2B-3C-4D-5E", scp.Location{State: scp.Absent}, nil}, // normalised on a miss
		{"001010000000001", scp.Location{Addr: addrA, State: scp.Online}, nil},
		{"imsi:001010000000009", scp.Location{}, scp.ErrUnknownSubscriber},
		{"msisdn:+441632960001", scp.Location{Addr: addrB, State: scp.Online}, nil},
		{"MSISDN: +441632960001", scp.Location{Addr: addrB, State: scp.Online}, nil}, // normalised on a miss
		{"msisdn:+441632960002", scp.Location{}, scp.ErrUnknownSubscriber},
		{"msisdn:441632960001", scp.Location{}, scp.ErrUnknownSubscriber}, // E.164 needs its '+'
		{"imei:490154203237518", scp.Location{}, scp.ErrUnknownSubscriber},
		{"garbage", scp.Location{}, scp.ErrUnknownSubscriber},
		{"", scp.Location{}, scp.ErrUnknownSubscriber},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			got, err := s.Locate(context.Background(), tt.id)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestLocateCanceled(t *testing.T) {
	s := newSim(t, Subscriber{ID: "imsi:001010000000001", Addr: addrA, State: scp.Online})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Locate(ctx, "imsi:001010000000001"); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name  string
		subs  []Subscriber
		field string
	}{
		{"bad imsi", []Subscriber{{ID: "imsi:12", Addr: addrA, State: scp.Online}}, "imsi"},
		{"bad mac", []Subscriber{{ID: "mac:zz", State: scp.Absent}}, "mac"},
		{"bad msisdn", []Subscriber{{ID: "msisdn:+0441632960001", Addr: addrA, State: scp.Online}}, "msisdn"},
		{"unknown type", []Subscriber{{ID: "imei:490154203237518", Addr: addrA, State: scp.Online}}, "id"},
		{"bad state", []Subscriber{{ID: "imsi:001010000000001", Addr: addrA, State: "sleeping"}}, "state"},
		{"online without addr", []Subscriber{{ID: "imsi:001010000000001", State: scp.Online}}, "addr"},
		{"port zero", []Subscriber{{ID: "imsi:001010000000001", Addr: netip.MustParseAddrPort("127.0.0.1:0"), State: scp.Online}}, "addr"},
		{"unspecified", []Subscriber{{ID: "imsi:001010000000001", Addr: netip.MustParseAddrPort("0.0.0.0:5060"), State: scp.Online}}, "addr"},
		{"duplicate", []Subscriber{{ID: "imsi:001010000000001", Addr: addrA, State: scp.Online}, {ID: "001010000000001", Addr: addrB, State: scp.Busy}}, "id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(Config{Subscribers: tt.subs})
			var ve *registry.ValidationError
			if !errors.As(err, &ve) || ve.Field != tt.field {
				t.Fatalf("err = %v, want a validation error on %q", err, tt.field)
			}
		})
	}
}

func TestChanges(t *testing.T) {
	const id = "imsi:001010000000001"
	type step struct {
		name    string
		do      func(s *Simulator) error
		wantErr error
		want    scp.Location // checked when wantErr is nil and want is set
		gone    bool
	}
	steps := []step{
		{name: "move unknown", do: func(s *Simulator) error { _, err := s.Move(id, addrB); return err }, wantErr: scp.ErrUnknownSubscriber},
		{name: "state unknown", do: func(s *Simulator) error { _, err := s.SetState(id, scp.Busy); return err }, wantErr: scp.ErrUnknownSubscriber},
		{name: "detach unknown", do: func(s *Simulator) error { return s.Detach(id) }, wantErr: scp.ErrUnknownSubscriber},
		{name: "attach", do: func(s *Simulator) error {
			created, err := s.Attach(Subscriber{ID: id, Addr: addrA, State: scp.Online})
			if err == nil && !created {
				err = errors.New("not reported as created")
			}
			return err
		}, want: scp.Location{Addr: addrA, State: scp.Online}},
		{name: "move", do: func(s *Simulator) error { _, err := s.Move(id, addrB); return err }, want: scp.Location{Addr: addrB, State: scp.Online}},
		{name: "move to port 0", do: func(s *Simulator) error { _, err := s.Move(id, netip.MustParseAddrPort("127.0.0.1:0")); return err }, wantErr: &registry.ValidationError{}},
		{name: "busy", do: func(s *Simulator) error { _, err := s.SetState(id, scp.Busy); return err }, want: scp.Location{Addr: addrB, State: scp.Busy}},
		{name: "absent", do: func(s *Simulator) error { _, err := s.SetState(id, "ABSENT"); return err }, want: scp.Location{Addr: addrB, State: scp.Absent}},
		{name: "bad state", do: func(s *Simulator) error { _, err := s.SetState(id, "dead"); return err }, wantErr: &registry.ValidationError{}},
		{name: "re-attach replaces", do: func(s *Simulator) error {
			created, err := s.Attach(Subscriber{ID: id, Addr: addrA, State: scp.Busy})
			if err == nil && created {
				err = errors.New("reported as created")
			}
			return err
		}, want: scp.Location{Addr: addrA, State: scp.Busy}},
		{name: "detach", do: func(s *Simulator) error { return s.Detach(id) }, gone: true},
		{name: "attach absent without addr", do: func(s *Simulator) error {
			_, err := s.Attach(Subscriber{ID: id, State: scp.Absent})
			return err
		}, want: scp.Location{State: scp.Absent}},
		{name: "online without addr", do: func(s *Simulator) error { _, err := s.SetState(id, scp.Online); return err }, wantErr: &registry.ValidationError{}},
	}
	s := newSim(t)
	for _, st := range steps {
		err := st.do(s)
		if st.wantErr != nil {
			var ve *registry.ValidationError
			if _, isVE := st.wantErr.(*registry.ValidationError); isVE && !errors.As(err, &ve) {
				t.Fatalf("%s: err = %v, want a validation error", st.name, err)
			} else if !isVE && !errors.Is(err, st.wantErr) {
				t.Fatalf("%s: err = %v, want %v", st.name, err, st.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		loc, err := s.Locate(context.Background(), id)
		if st.gone {
			if !errors.Is(err, scp.ErrUnknownSubscriber) {
				t.Fatalf("%s: locate err = %v, want unknown", st.name, err)
			}
			continue
		}
		if err != nil || loc != st.want {
			t.Fatalf("%s: locate = %+v, %v; want %+v", st.name, loc, err, st.want)
		}
	}
}

func TestPersistSeesEveryChange(t *testing.T) {
	var snaps [][]Subscriber
	s, err := New(Config{Persist: func(subs []Subscriber) error {
		snaps = append(snaps, subs)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	const id = "imsi:001010000000001"
	s.Attach(Subscriber{ID: id, Addr: addrA, State: scp.Online})
	s.Move(id, addrB)
	s.Move(id, addrB) // no change, no write
	s.SetState(id, scp.Busy)
	s.Detach(id)
	if len(snaps) != 4 {
		t.Fatalf("persisted %d times, want 4", len(snaps))
	}
	if last := snaps[len(snaps)-1]; len(last) != 0 {
		t.Fatalf("last snapshot = %v, want empty", last)
	}
	if got := snaps[2][0]; got.Addr != addrB || got.State != scp.Busy {
		t.Fatalf("third snapshot = %+v", got)
	}

	failing, _ := New(Config{Persist: func([]Subscriber) error { return errors.New("disk full") }})
	if _, err := failing.Attach(Subscriber{ID: id, Addr: addrA, State: scp.Online}); err == nil {
		t.Fatal("a failed save must be reported")
	}
}

// TestConcurrent is for the race detector: lookups run while the table
// changes.
func TestConcurrent(t *testing.T) {
	s := newSim(t)
	var wg sync.WaitGroup
	ctx := context.Background()
	for w := 0; w < 4; w++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				id := fmt.Sprintf("imsi:00101%010d", (w*1000+i)%50)
				s.Attach(Subscriber{ID: id, Addr: addrA, State: scp.Online})
				s.Move(id, addrB)
				s.SetState(id, scp.Busy)
				if i%3 == 0 {
					s.Detach(id)
				}
			}
		}()
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				s.Locate(ctx, fmt.Sprintf("imsi:00101%010d", i%50))
				if i%50 == 0 {
					s.List()
				}
			}
		}()
	}
	wg.Wait()
}
