package rtpproxy

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
	"time"
)

// TestSend: a packet sent to a leg leaves from that leg's own endpoint (the
// port its party was given) to the party's address, unchanged, while the
// relay between the legs goes on; a leg without an endpoint, and a closed
// call, are errors.
func TestSend(t *testing.T) {
	_, c, a, b, cc := threeLegs(t, 41400, nil)
	// a's media latches its address and goes on reaching b and c.
	sent := sendN(a, 3)
	expectPackets(t, b.rtp, sent)
	expectPackets(t, cc.rtp, sent)

	mix := []byte{0x80, 0x00, 0x12, 0x34, 0, 0, 0, 160, 0xde, 0xad, 0xbe, 0xef, 0xff, 0xfe}
	for _, tc := range []struct {
		to Leg
		p  *party
	}{{"a", a}, {"b", b}, {"c", cc}} {
		if err := c.Send(tc.to, "audio", mix); err != nil {
			t.Fatalf("Send to %s: %v", tc.to, err)
		}
		buf := make([]byte, 2048)
		tc.p.rtp.SetReadDeadline(time.Now().Add(time.Second))
		n, from, err := tc.p.rtp.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("leg %s received nothing: %v", tc.to, err)
		}
		if !bytes.Equal(buf[:n], mix) {
			t.Errorf("leg %s got %x, want %x", tc.to, buf[:n], mix)
		}
		want := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(c.LocalPorts(tc.to)[0]))
		if from != want {
			t.Errorf("leg %s got it from %v, want its own endpoint %v", tc.to, from, want)
		}
	}
	silent(t, b.rtp, 30*time.Millisecond) // a Send is not relayed to the other legs

	if err := c.Send("nobody", "audio", mix); err == nil {
		t.Error("Send to a leg without an endpoint succeeded")
	}
	if err := c.Send("a", "video", mix); err == nil {
		t.Error("Send on a media the leg has no stream of succeeded")
	}
	c.Close()
	if err := c.Send("a", "audio", mix); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Close: %v, want ErrClosed", err)
	}
}
