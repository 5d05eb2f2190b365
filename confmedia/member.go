package confmedia

import (
	"errors"
	"fmt"

	"github.com/imcall/b2bua/mixer"
	"github.com/imcall/b2bua/rtpproxy"
)

// Relay is what a member needs of the RTP proxy's call (rtpproxy.Call).
type Relay interface {
	SetSink(from rtpproxy.Leg, media string, s rtpproxy.Sink)
	Send(to rtpproxy.Leg, media string, pkt []byte) error
	Disconnect(from, to rtpproxy.Leg)
}

// Mixer is what a member needs of the conference's mixer (mixer.Mixer).
type Mixer interface {
	Add(id string, p mixer.Participant) error
	Remove(id string) error
	WriteRTP(id string, pkt []byte) error
}

// Member is one participant's media in the mix.
type Member struct {
	relay Relay
	leg   rtpproxy.Leg
	mix   Mixer
	id    string
}

// Join puts the audio of leg (a member's endpoint on relay) into mix as
// participant id with codec c, and the mix for id back out to the member.
// bridge is the leg that stood for the bridge in the SDP exchange (Answer
// or Offer): it is disconnected both ways, the mixer takes its place.
func Join(relay Relay, leg, bridge rtpproxy.Leg, mix Mixer, id string, c Codec) (*Member, error) {
	m := &Member{relay: relay, leg: leg, mix: mix, id: id}
	if err := mix.Add(id, mixer.Participant{Law: c.Law, PayloadType: c.PT, EventPT: c.EventPT, Output: output{m}}); err != nil {
		return nil, fmt.Errorf("confmedia: join %s: %w", id, err)
	}
	relay.Disconnect(leg, bridge)
	relay.Disconnect(bridge, leg)
	relay.SetSink(leg, "audio", sink{m})
	return m, nil
}

// Leave takes the member out of the mix; the relay no longer feeds it.
func (m *Member) Leave() error {
	m.relay.SetSink(m.leg, "audio", nil)
	if err := m.mix.Remove(m.id); err != nil && !errors.Is(err, mixer.ErrUnknownParticipant) {
		return fmt.Errorf("confmedia: leave %s: %w", m.id, err)
	}
	return nil
}

// sink is the relay's side: what the member sends goes into the mixer.
type sink struct{ m *Member }

func (s sink) WriteRTP(_ rtpproxy.Leg, pkt []byte) { _ = s.m.mix.WriteRTP(s.m.id, pkt) }

// output is the mixer's side: the member's mix leaves from its endpoint.
type output struct{ m *Member }

func (o output) WriteRTP(pkt []byte) error { return o.m.relay.Send(o.m.leg, "audio", pkt) }

var (
	_ Relay = (*rtpproxy.Call)(nil)
	_ Mixer = (*mixer.Mixer)(nil)
)
