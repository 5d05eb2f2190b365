package confmedia

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/imcall/b2bua/mixer"
	"github.com/imcall/b2bua/rtpproxy"
)

// TestBridgeMuteAndTalking: members joined through the Bridge are mixed,
// talking is reported for each, muting one takes its tone out of what the
// others hear, and the conference's mixer goes with its last member.
func TestBridgeMuteAndTalking(t *testing.T) {
	proxy, err := rtpproxy.New(rtpproxy.Config{BindAddr: netip.MustParseAddr("127.0.0.1"), PortMin: 43800, PortMax: 43999, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	call, err := proxy.NewCall(context.Background(), rtpproxy.CallConfig{ID: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	defer call.Close()
	var mu sync.Mutex
	talking := map[string]bool{}
	tick := make(chan time.Time)
	b := NewBridge(BridgeConfig{Tick: tick, Talking: func(conf, pid string, on bool) {
		mu.Lock()
		defer mu.Unlock()
		if conf == "c1" {
			talking[pid] = on
		}
	}})
	defer b.Close()
	parties := newParties(t, call, func(p *party, bridge rtpproxy.Leg, c Codec) error {
		return b.Join("c1", string(p.leg), call, p.leg, bridge, c)
	})
	state := func() []mixer.ParticipantState { return b.State("c1") }
	start := time.Now()
	run(t, parties, state, tick, start, 40)
	for _, p := range parties {
		receive(t, p, 40) // what they heard before the mute
	}
	mu.Lock()
	for _, p := range parties {
		if !talking[string(p.leg)] {
			t.Errorf("%s is not reported talking", p.leg)
		}
	}
	mu.Unlock()

	if err := b.SetMuted(context.Background(), "c1", "m2", true); err != nil {
		t.Fatal(err)
	}
	run(t, parties, state, tick, start.Add(40*mixer.FrameDuration), 40)
	tail := receive(t, parties[0], 40)[160*10:]
	if a := amplitude(tail, 500); a > 200 {
		t.Errorf("m1 still hears muted m2 (500 Hz at %.0f)", a)
	}
	if a := amplitude(tail, 700); a < 2000 {
		t.Errorf("m1 no longer hears m3 (700 Hz at %.0f)", a)
	}

	for _, p := range parties {
		if err := b.Leave("c1", string(p.leg)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.SetMuted(context.Background(), "c1", "m1", true); !errors.Is(err, ErrNotMixed) {
		t.Errorf("mute after the last left: %v, want ErrNotMixed", err)
	}
	if b.State("c1") != nil {
		t.Error("the conference's mixer outlived its members")
	}
}
