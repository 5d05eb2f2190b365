// Package msgpolicy decides what happens to an instant message (a SIP
// MESSAGE, RFC 3428) addressed to an IM user: forward it to the user's
// terminal, store its content and send the terminal a link instead, keep
// it until the terminal is back, or refuse it with a SIP status. The
// decision is a plain function of the message and the terminal, so every
// case is tested without sockets.
package msgpolicy

import (
	"errors"
	"fmt"
	"mime"
	"strings"

	"github.com/imcall/b2bua/cpim"
	"github.com/imcall/b2bua/registry"
)

// MaxUDPMessage is the largest request sent or taken over UDP: RFC 3261
// §18.1.1 sends anything larger than 1300 bytes (path MTU unknown) over a
// congestion-controlled transport such as TCP.
const MaxUDPMessage = 1300

// Accept lists the bodies a MESSAGE may carry; it goes in the Accept header
// of a 415 answer (RFC 3261 §21.4.13).
const Accept = "text/plain, image/*, audio/*, video/*, message/cpim"

// Action is what to do with a message.
type Action int

// Actions.
const (
	// Forward sends the MESSAGE to the terminal as it came.
	Forward Action = iota + 1
	// StoreLink stores the content and sends the terminal a text/plain
	// MESSAGE with a link to it.
	StoreLink
	// Defer keeps the message and delivers it when the terminal is next
	// found online; the sender gets 202 Accepted.
	Defer
	// Reject answers the sender with Decision.Status.
	Reject
)

func (a Action) String() string {
	switch a {
	case Forward:
		return "forward"
	case StoreLink:
		return "store-and-link"
	case Defer:
		return "defer"
	case Reject:
		return "reject"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// Reach is what routing found out about the recipient's terminal.
type Reach int

// Reaches.
const (
	Online      Reach = iota // a terminal can be sent to now
	Busy                     // the SCP says busy, or the terminal answered 486
	Absent                   // no active terminal, not registered, absent, not answering
	Unreachable              // routing failed for good or for now (404, 503): refuse
)

// Content is the part of a message a person sees: for message/cpim the
// encapsulated object, otherwise the body itself.
type Content struct {
	Type    string // media type without parameters, lower case, e.g. "image/png"
	RawType string // the Content-Type value as sent, with parameters
	Data    []byte
	CPIM    *cpim.Message // the wrapper, when the body was message/cpim
}

// ErrUnsupported is wrapped by Unwrap's errors: the answer is 415.
var ErrUnsupported = errors.New("unsupported message body")

// Unwrap finds the content of a MESSAGE body with Content-Type ctype,
// looking inside message/cpim (RFC 3862) one level deep.
func Unwrap(ctype string, body []byte) (Content, error) {
	mt, _, err := mime.ParseMediaType(ctype)
	if err != nil {
		return Content{}, fmt.Errorf("%w: Content-Type %q", ErrUnsupported, ctype)
	}
	if mt != cpim.MediaType {
		return Content{Type: mt, RawType: ctype, Data: body}, nil
	}
	m, err := cpim.Parse(body)
	if err != nil {
		return Content{}, fmt.Errorf("%w: %w", ErrUnsupported, err)
	}
	inner := m.ContentType()
	if inner == "" || inner == cpim.MediaType {
		return Content{}, fmt.Errorf("%w: message/cpim wrapping %q", ErrUnsupported, m.RawContentType())
	}
	return Content{Type: inner, RawType: m.RawContentType(), Data: m.Body, CPIM: m}, nil
}

// Needs gives the capability a terminal must have to render media type
// mt; ok is false for a type no terminal is sent.
func Needs(mt string) (need registry.Caps, ok bool) {
	major, _, _ := strings.Cut(mt, "/")
	switch {
	case mt == "text/plain":
		return registry.CapText, true
	case major == "image":
		return registry.CapImage, true
	case major == "audio":
		return registry.CapAudio, true
	case major == "video":
		return registry.CapVideo, true
	}
	return 0, false
}

// Input is everything the decision depends on.
type Input struct {
	ContentType string // of the content (Content.Type)
	BodySize    int    // bytes of the MESSAGE body
	MaxSize     int    // configured limit of a body
	// Transport and WireSize describe the MESSAGE as it arrived.
	Transport string // "UDP", "TCP", "TLS"
	WireSize  int
	// InDialog: the message came inside a call's dialog, so the terminal
	// is the call's and is online.
	InDialog bool

	Reach       Reach
	RouteStatus int    // for Unreachable: the answer routing gave
	RouteText   string // for Unreachable
	Caps        registry.Caps
	// ForwardFits reports whether the MESSAGE, as it would be forwarded,
	// fits the transport towards the terminal (over UDP at most
	// MaxUDPMessage bytes).
	ForwardFits bool
}

// Decision is the outcome.
type Decision struct {
	Action Action
	Status int    // for Reject: the SIP answer
	Text   string // why, for the Warning header and the log
}

// Decide applies the rules, in this order:
//
//  1. a body over MaxSize: 413 (no transport helps);
//  2. over UDP and larger than MaxUDPMessage: 513, so that the sender
//     retries over TCP (RFC 3261 §18.1.1, §21.5.14);
//  3. a content type no terminal is sent: 415;
//  4. a recipient who cannot be routed to: the routing answer (404, 503);
//  5. busy or absent: keep it (Defer);
//  6. a terminal that renders the type and whose transport fits the
//     message: Forward;
//  7. a terminal that shows text: StoreLink;
//  8. otherwise 488: the terminal can show nothing of it.
func Decide(in Input) Decision {
	if in.MaxSize > 0 && in.BodySize > in.MaxSize {
		return Decision{Action: Reject, Status: 413, Text: fmt.Sprintf("message body over %d bytes", in.MaxSize)}
	}
	if strings.EqualFold(in.Transport, "UDP") && in.WireSize > MaxUDPMessage {
		return Decision{Action: Reject, Status: 513, Text: fmt.Sprintf("over %d bytes on UDP: send over TCP", MaxUDPMessage)}
	}
	need, ok := Needs(in.ContentType)
	if !ok {
		return Decision{Action: Reject, Status: 415, Text: "unsupported content type " + in.ContentType}
	}
	if !in.InDialog {
		switch in.Reach {
		case Unreachable:
			status := in.RouteStatus
			if status < 300 {
				status = 500
			}
			return Decision{Action: Reject, Status: status, Text: in.RouteText}
		case Busy:
			return Decision{Action: Defer, Text: "recipient busy"}
		case Absent:
			return Decision{Action: Defer, Text: "recipient absent"}
		}
	}
	switch {
	case in.Caps.Has(need) && in.ForwardFits:
		return Decision{Action: Forward}
	case in.Caps.Has(registry.CapText):
		why := "terminal cannot render " + in.ContentType
		if in.Caps.Has(need) {
			why = "too large for the terminal's transport"
		}
		return Decision{Action: StoreLink, Text: why}
	}
	return Decision{Action: Reject, Status: 488, Text: "terminal cannot display messages"}
}

// LinkText is the short text a terminal receives instead of content it
// cannot render: who sent what, and where to fetch it.
func LinkText(sender, contentType string, size int, link string) string {
	return fmt.Sprintf("%s sent you %s (%s, %s): %s", sender, what(contentType), contentType, humanSize(size), link)
}

func what(mt string) string {
	major, _, _ := strings.Cut(mt, "/")
	switch major {
	case "image":
		return "an image"
	case "audio":
		return "an audio clip"
	case "video":
		return "a video"
	case "text":
		return "a message"
	}
	return "a file"
}

func humanSize(n int) string {
	switch {
	case n < 1000:
		return fmt.Sprintf("%d bytes", n)
	case n < 1000*1000:
		return fmt.Sprintf("%.1f kB", float64(n)/1000)
	}
	return fmt.Sprintf("%.1f MB", float64(n)/1e6)
}

// DeliveredText is the notice the sender of a deferred message receives
// when it has been delivered.
func DeliveredText(recipient string) string {
	return fmt.Sprintf("Your message to %s has been delivered.", recipient)
}

// ExpiredText is the notice the sender receives when a deferred message is
// given up.
func ExpiredText(recipient string) string {
	return fmt.Sprintf("Your message to %s could not be delivered: %s was not reachable in time.", recipient, recipient)
}
