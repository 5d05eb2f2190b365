package sip

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Q.850 cause values the B2BUA puts in Reason headers (ITU-T Q.850 Table 1).
const (
	CauseUnallocated         = 1   // unallocated (unassigned) number
	CauseNoRoute             = 3   // no route to destination
	CauseNormalClearing      = 16  // normal call clearing
	CauseUserBusy            = 17  // user busy
	CauseNoUserResponding    = 18  // no user responding
	CauseNoAnswer            = 19  // no answer from user (user alerted)
	CauseSubscriberAbsent    = 20  // subscriber absent
	CauseCallRejected        = 21  // call rejected
	CauseDestinationOutOfOrd = 27  // destination out of order
	CauseNormalUnspecified   = 31  // normal, unspecified
	CauseNetworkOutOfOrder   = 38  // network out of order
	CauseTemporaryFailure    = 41  // temporary failure
	CauseCongestion          = 42  // switching equipment congestion
	CauseRecoveryOnTimer     = 102 // recovery on timer expiry
	CauseInterworking        = 127 // interworking, unspecified
)

// Failure is a call attempt that ended without a connection. It knows the
// SIP answer the caller gets, the Q.850 cause carried in the Reason header
// (RFC 3326) and a text a person can read, so no central switch has to map
// errors to answers.
type Failure struct {
	Status     int    // SIP status code, e.g. 486
	Cause      int    // Q.850 cause value, e.g. 17
	Text       string // human-readable reason, e.g. "user busy"
	RetryAfter int    // seconds for a Retry-After header (RFC 3261 §20.33); 0: none
	Err        error  // underlying error, if any
}

func (f *Failure) Error() string {
	s := fmt.Sprintf("%d %s (Q.850 cause %d)", f.Status, f.Text, f.Cause)
	if f.Err != nil {
		s += ": " + f.Err.Error()
	}
	return s
}

// Unwrap gives the underlying error to errors.Is and errors.As.
func (f *Failure) Unwrap() error { return f.Err }

// Reason is the value of the Reason header for this failure (RFC 3326 §2).
func (f *Failure) Reason() string { return reasonValue(f.Cause, f.Text) }

// AsFailure finds the Failure in err's chain, or wraps err as a generic 500
// so every error still gives the caller an answer with a cause.
func AsFailure(err error) *Failure {
	var f *Failure
	if errors.As(err, &f) {
		return f
	}
	return &Failure{Status: 500, Cause: CauseTemporaryFailure, Text: "internal error", Err: err}
}

func reasonValue(cause int, text string) string {
	text = strings.NewReplacer(`"`, `'`, "\\", "/", "\r", " ", "\n", " ").Replace(text)
	return "Q.850;cause=" + strconv.Itoa(cause) + `;text="` + text + `"`
}

// reasonPhrase is the standard phrase for the status codes the B2BUA
// originates (RFC 3261 §21).
func reasonPhrase(status int) string {
	switch status {
	case 200:
		return "OK"
	case 400:
		return "Bad Request"
	case 401:
		return "Unauthorized"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 405:
		return "Method Not Allowed"
	case 407:
		return "Proxy Authentication Required"
	case 408:
		return "Request Timeout"
	case 423:
		return "Interval Too Brief"
	case 480:
		return "Temporarily Unavailable"
	case 481:
		return "Call/Transaction Does Not Exist"
	case 482:
		return "Loop Detected"
	case 483:
		return "Too Many Hops"
	case 486:
		return "Busy Here"
	case 487:
		return "Request Terminated"
	case 488:
		return "Not Acceptable Here"
	case 491:
		return "Request Pending"
	case 500:
		return "Server Internal Error"
	case 502:
		return "Bad Gateway"
	case 503:
		return "Service Unavailable"
	case 504:
		return "Server Time-out"
	}
	switch {
	case status < 300:
		return "OK"
	case status < 500:
		return "Request Failure"
	case status < 600:
		return "Server Failure"
	}
	return "Global Failure"
}

// causeForStatus maps a SIP failure answer from a terminal to a Q.850 cause
// when the terminal sent no Reason header (RFC 3398 §8.2.6.1, the SIP to
// ISUP table).
func causeForStatus(status int) int {
	switch status {
	case 400, 405, 415, 416, 420, 421, 482, 483, 485, 501, 505, 513:
		return CauseInterworking
	case 401, 402, 403, 407:
		return CauseCallRejected
	case 404, 604:
		return CauseUnallocated
	case 406, 603:
		return CauseCallRejected
	case 408:
		return CauseRecoveryOnTimer
	case 410:
		return 22
	case 414, 484:
		return 28
	case 480:
		return CauseNoUserResponding
	case 486, 600:
		return CauseUserBusy
	case 487:
		return CauseNormalClearing
	case 488, 606:
		return 65
	case 500:
		return CauseTemporaryFailure
	case 502:
		return CauseNetworkOutOfOrder
	case 503:
		return CauseTemporaryFailure
	case 504:
		return CauseRecoveryOnTimer
	}
	return CauseNormalUnspecified
}

// parseReasonCause reads the cause of a "Q.850;cause=N;text=..." value; 0
// when the header is absent or carries another protocol.
func parseReasonCause(v string) (int, string) {
	proto, params, ok := strings.Cut(v, ";")
	if !ok || !strings.EqualFold(strings.TrimSpace(proto), "Q.850") {
		return 0, ""
	}
	cause, text := 0, ""
	for _, p := range strings.Split(params, ";") {
		k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		switch strings.ToLower(k) {
		case "cause":
			cause, _ = strconv.Atoi(val)
		case "text":
			text = strings.Trim(val, `"`)
		}
	}
	return cause, text
}
