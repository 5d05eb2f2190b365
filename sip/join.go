package sip

import (
	"errors"
	"strings"
	"time"
)

// Correlation of dual-path calls: whether a new INVITE is a second path of
// a device into a session that exists, or a call of its own. A plain
// function of what the INVITE says and what the live sessions look like,
// so that the rules are tested without a network.

// CauseInvalidCallRef is Q.850 cause 81, invalid call reference value: a
// Join that names no dialog we can join.
const CauseInvalidCallRef = 81

// pathKind says how a near leg reached us.
type pathKind uint8

const (
	pathUnknown pathKind = iota // neither: a trusted peer, no authentication
	pathData                    // digest-authenticated as an IM user
	pathCarrier                 // from a trunk, with an asserted caller number
)

func (k pathKind) String() string {
	switch k {
	case pathData:
		return "data"
	case pathCarrier:
		return "carrier"
	}
	return "unknown"
}

// device is who a near leg speaks for.
type device struct {
	Path    pathKind
	User    string   // pathData: the authenticated IM ID
	MSISDNs []string // pathData: the MSISDNs of User's terminals
	Number  string   // pathCarrier: the trunk's asserted caller number, E.164
}

// pairable tells whether d can be one of a device's two paths without a
// Join header (sameDevice): a data path with the MSISDNs of its user's
// terminals, or a carrier path with its asserted number.
func (d device) pairable() bool {
	return (d.Path == pathData && len(d.MSISDNs) > 0) || (d.Path == pathCarrier && d.Number != "")
}

// sameDevice tells whether a and b are the two paths of one device: one
// from a trunk whose asserted number is an MSISDN of the user the other
// authenticated as. Two legs of one path kind never are: two clients of a
// user, or two calls from one number, are two calls.
func sameDevice(a, b device) bool {
	if a.Path == pathCarrier {
		a, b = b, a
	}
	if a.Path != pathData || b.Path != pathCarrier || b.Number == "" {
		return false
	}
	for _, n := range a.MSISDNs {
		if n == b.Number {
			return true
		}
	}
	return false
}

// speaksFor tells whether d is the device of a session leg l: the same
// user, the same number, or its other path.
func speaksFor(d, l device) bool {
	switch {
	case d.Path == pathData && l.Path == pathData:
		return d.User != "" && d.User == l.User
	case d.Path == pathCarrier && l.Path == pathCarrier:
		return d.Number != "" && d.Number == l.Number
	}
	return sameDevice(d, l)
}

// joinRef is a Join header (RFC 3911 §7): the dialog to join.
type joinRef struct {
	CallID, ToTag, FromTag string
}

// parseJoin parses a Join header value: callid;to-tag=…;from-tag=…, both
// tags required (RFC 3911 §7.1).
func parseJoin(v string) (joinRef, error) {
	parts := strings.Split(v, ";")
	j := joinRef{CallID: strings.TrimSpace(parts[0])}
	for _, p := range parts[1:] {
		name, val, _ := strings.Cut(p, "=")
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "to-tag":
			j.ToTag = strings.TrimSpace(val)
		case "from-tag":
			j.FromTag = strings.TrimSpace(val)
		}
	}
	if j.CallID == "" || j.ToTag == "" || j.FromTag == "" {
		return joinRef{}, errors.New("Join needs a Call-ID, a to-tag and a from-tag")
	}
	return j, nil
}

// nearView is what correlation needs of one near leg of a session.
type nearView struct {
	CallID, LocalTag, RemoteTag string
	Device                      device
	Up                          bool // confirmed: our 2xx was sent
	Live                        bool // not ended
}

// sessionView is what correlation needs of one session.
type sessionView struct {
	Far     string    // the far party: the callee's IM ID
	FirstAt time.Time // when the first near leg arrived
	Ending  bool
	Near    []nearView
}

func (v sessionView) liveNear() (n int, only device) {
	for _, l := range v.Near {
		if l.Live {
			n++
			only = l.Device
		}
	}
	return n, only
}

// maxPaths is how many live near legs a session takes: a device's carrier
// and data paths.
const maxPaths = 2

// joinQuery is a new INVITE as correlation sees it.
type joinQuery struct {
	Far    string
	Device device
	Join   *joinRef // its Join header, nil without one
	At     time.Time
	Window time.Duration // --dual-path-window
}

// correlate says whether q joins one of ss: the index of the session it
// joins, -1 for a call of its own, or a failure to answer it with.
//
// A Join header must name a confirmed near dialog of a live session (RFC
// 3911 §3: no such dialog, or an early one we did not initiate, is 481)
// whose device the new leg speaks for and whose far party it calls, else
// 403. Without one, the new leg joins a ringing or answered session to the
// same far party whose one live near leg is the other path of the same
// device, within the window of the session's first leg. Anything else is a
// new call, so a stranger calling the same far party never joins.
func correlate(q joinQuery, ss []sessionView) (int, *Failure) {
	if q.Join != nil {
		return correlateJoin(q, ss)
	}
	for i, s := range ss {
		if s.Ending || s.Far != q.Far {
			continue
		}
		if d := q.At.Sub(s.FirstAt); d < 0 || d > q.Window {
			continue
		}
		if n, only := s.liveNear(); n == 1 && sameDevice(q.Device, only) {
			return i, nil
		}
	}
	return -1, nil
}

func correlateJoin(q joinQuery, ss []sessionView) (int, *Failure) {
	j := *q.Join
	for i, s := range ss {
		for _, l := range s.Near {
			if l.CallID != j.CallID || l.LocalTag != j.ToTag || l.RemoteTag != j.FromTag {
				continue
			}
			if s.Ending || !l.Live || !l.Up {
				return -1, &Failure{Status: 481, Cause: CauseInvalidCallRef, Text: "Join names no confirmed dialog"}
			}
			if s.Far != q.Far || !speaksFor(q.Device, l.Device) {
				return -1, &Failure{Status: 403, Cause: CauseCallRejected, Text: "Join names another caller's call"}
			}
			if n, _ := s.liveNear(); n >= maxPaths {
				return -1, &Failure{Status: 486, Cause: CauseUserBusy, Text: "both paths of the call are in use"}
			}
			return i, nil
		}
	}
	return -1, &Failure{Status: 481, Cause: CauseInvalidCallRef, Text: "Join names no dialog"}
}
