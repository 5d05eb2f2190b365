// Package confmedia joins the legs of calls to a conference mixer: the
// relay hands what a member sends to the mixer (rtpproxy sink), the mixer's
// mix for that member goes back out of the member's own endpoint
// (rtpproxy Call.Send), and the SDP the bridge offers or answers as the
// member's far end names only what the mixer takes: G.711 (PCMU or PCMA)
// and telephone-event (RFC 4733).
package confmedia

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"

	"github.com/imcall/b2bua/mixer"
)

// Codec is what a member and the mixer agreed on.
type Codec struct {
	Law     mixer.Law
	PT      uint8 // audio payload type
	EventPT uint8 // telephone-event payload type; 0: none
}

// ErrNoG711 is an offer or answer without PCMU or PCMA: the SIP side
// answers 488 (RFC 3264 §6).
var ErrNoG711 = errors.New("confmedia: no G.711 audio offered")

// discard is the address the bridge's own SDP names: the relay replaces it
// with its own endpoint's before the member sees it, and never sends to it
// (the mixer's leg is disconnected from the member once the exchange is
// done).
const discard = "127.0.0.1"

// Answer is the bridge's answer to a member's offer: the first G.711 of
// the offer's first audio stream, and telephone-event if offered.
func Answer(offer []byte) ([]byte, Codec, error) {
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(offer); err != nil {
		return nil, Codec{}, fmt.Errorf("confmedia: offer: %w", err)
	}
	for _, m := range sd.MediaDescriptions {
		if m.MediaName.Media != "audio" || m.MediaName.Port.Value == 0 {
			continue
		}
		c, err := pick(m)
		if err != nil {
			return nil, Codec{}, err
		}
		return build(c), c, nil
	}
	return nil, Codec{}, ErrNoG711
}

// Offer is the bridge's offer to a member it dials out to: PCMU, PCMA and
// telephone-event.
func Offer() []byte {
	return []byte("v=0\r\no=- 1 1 IN IP4 " + discard + "\r\ns=conference\r\nc=IN IP4 " + discard + "\r\nt=0 0\r\n" +
		"m=audio 9 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n" +
		"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n")
}

// FromAnswer is the codec of a member's answer to Offer.
func FromAnswer(answer []byte) (Codec, error) {
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(answer); err != nil {
		return Codec{}, fmt.Errorf("confmedia: answer: %w", err)
	}
	for _, m := range sd.MediaDescriptions {
		if m.MediaName.Media == "audio" && m.MediaName.Port.Value != 0 {
			return pick(m)
		}
	}
	return Codec{}, ErrNoG711
}

func pick(m *sdp.MediaDescription) (Codec, error) {
	names := map[uint8]string{0: "pcmu/8000", 8: "pcma/8000"}
	for _, a := range m.Attributes {
		if a.Key != "rtpmap" {
			continue
		}
		pt, name, ok := strings.Cut(a.Value, " ")
		if n, err := strconv.ParseUint(pt, 10, 7); ok && err == nil {
			names[uint8(n)] = strings.ToLower(strings.TrimSpace(name))
		}
	}
	var c Codec
	for _, f := range m.MediaName.Formats {
		n, err := strconv.ParseUint(f, 10, 7)
		if err != nil {
			continue
		}
		pt := uint8(n)
		switch name := names[pt]; {
		case c.Law == 0 && name == "pcmu/8000":
			c.Law, c.PT = mixer.PCMU, pt
		case c.Law == 0 && name == "pcma/8000":
			c.Law, c.PT = mixer.PCMA, pt
		case c.EventPT == 0 && name == "telephone-event/8000":
			c.EventPT = pt
		}
	}
	if c.Law == 0 {
		return Codec{}, ErrNoG711
	}
	return c, nil
}

func build(c Codec) []byte {
	name := "PCMU"
	if c.Law == mixer.PCMA {
		name = "PCMA"
	}
	pts := strconv.Itoa(int(c.PT))
	maps := "a=rtpmap:" + pts + " " + name + "/8000\r\n"
	if c.EventPT != 0 {
		ev := strconv.Itoa(int(c.EventPT))
		pts += " " + ev
		maps += "a=rtpmap:" + ev + " telephone-event/8000\r\na=fmtp:" + ev + " 0-15\r\n"
	}
	return []byte("v=0\r\no=- 1 1 IN IP4 " + discard + "\r\ns=conference\r\nc=IN IP4 " + discard + "\r\nt=0 0\r\n" +
		"m=audio 9 RTP/AVP " + pts + "\r\n" + maps + "a=ptime:20\r\na=sendrecv\r\n")
}

// Hold reads whether an offer puts the call on hold (RFC 3264 §8.4): its
// first audio stream sendonly or inactive, or at 0.0.0.0 (RFC 2543). dir is
// the direction the answer then takes: recvonly for sendonly, else
// inactive.
func Hold(offer []byte) (held bool, dir string) {
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(offer); err != nil {
		return false, ""
	}
	session := "sendrecv"
	for _, a := range sd.Attributes {
		if isDirection(a.Key) {
			session = a.Key
		}
	}
	zero := sd.ConnectionInformation != nil && sd.ConnectionInformation.Address != nil && sd.ConnectionInformation.Address.Address == "0.0.0.0"
	for _, m := range sd.MediaDescriptions {
		if m.MediaName.Media != "audio" || m.MediaName.Port.Value == 0 {
			continue
		}
		d := session
		for _, a := range m.Attributes {
			if isDirection(a.Key) {
				d = a.Key
			}
		}
		if m.ConnectionInformation != nil && m.ConnectionInformation.Address != nil {
			zero = m.ConnectionInformation.Address.Address == "0.0.0.0"
		}
		switch {
		case d == "sendonly":
			return true, "recvonly"
		case d == "inactive" || zero:
			return true, "inactive"
		}
		return false, ""
	}
	return false, ""
}

func isDirection(k string) bool {
	return k == "sendrecv" || k == "sendonly" || k == "recvonly" || k == "inactive"
}
