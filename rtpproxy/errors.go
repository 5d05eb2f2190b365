package rtpproxy

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Sentinel errors, checked with errors.Is. Every error the proxy returns from
// a rewrite is an *Error that wraps one of them.
var (
	// ErrMalformedSDP: the body is not parseable SDP (RFC 8866). The SIP
	// layer answers 400 Bad Request.
	ErrMalformedSDP = errors.New("malformed SDP")
	// ErrUnsupportedSDP: the SDP parses but asks for something the relay
	// cannot anchor (IPv6 media without Config.BindV6, FQDN media, port
	// ranges, an address family change of a leg, more m-lines in an
	// answer than in the offer). The SIP layer answers 488 Not Acceptable Here.
	ErrUnsupportedSDP = errors.New("unsupported SDP")
	// ErrNoPorts: the port pool is exhausted. The SIP layer answers 503.
	ErrNoPorts = errors.New("no free media ports")
	// ErrClosed: the call or the proxy was closed.
	ErrClosed = errors.New("closed")
	// ErrMediaTimeout is the cause of a call ended by media supervision.
	ErrMediaTimeout = errors.New("media timeout")
)

// Error is a failure that knows its SIP answer: the status code and a Warning
// header (RFC 3261 §20.43), so the SIP layer needs no central switch.
type Error struct {
	Status   int    // SIP status code: 400, 488 or 503
	WarnCode int    // RFC 3261 §20.43 warn-code, e.g. 399, 301, 305
	Text     string // human-readable, safe to put in a Warning header
	Err      error  // one of the sentinels above
}

func (e *Error) Error() string {
	return fmt.Sprintf("%v: %s", e.Err, e.Text)
}

// Unwrap gives the sentinel, for errors.Is.
func (e *Error) Unwrap() error { return e.Err }

// StatusCode is the SIP status code to answer with.
func (e *Error) StatusCode() int { return e.Status }

// Warning formats the Warning header value with agent as the warn-agent
// (typically the B2BUA's host:port), quoting the text as RFC 3261 §25.1
// quoted-string requires.
func (e *Error) Warning(agent string) string {
	t := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\r", " ", "\n", " ").Replace(e.Text)
	return strconv.Itoa(e.WarnCode) + " " + agent + ` "` + t + `"`
}

func malformed(format string, a ...any) *Error {
	return &Error{Status: 400, WarnCode: 399, Text: "malformed SDP: " + fmt.Sprintf(format, a...), Err: ErrMalformedSDP}
}

func unsupported(warn int, format string, a ...any) *Error {
	return &Error{Status: 488, WarnCode: warn, Text: fmt.Sprintf(format, a...), Err: ErrUnsupportedSDP}
}

func noPorts(err error) *Error {
	return &Error{Status: 503, WarnCode: 399, Text: "media port pool exhausted", Err: fmt.Errorf("%w: %v", ErrNoPorts, err)}
}
