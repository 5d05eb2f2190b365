package registry

import "time"

// DialogLeg is what a node needs to end one leg of a confirmed call with
// BYE after it restarted (RFC 3261 §12.2.1.1): the dialog's identifiers,
// our last CSeq on it, the remote target and route set, and where requests
// on it go.
type DialogLeg struct {
	CallID     string
	LocalURI   string // our URI on this dialog (From of our requests)
	LocalName  string
	LocalTag   string
	RemoteURI  string // the peer's URI (To of our requests)
	RemoteName string
	RemoteTag  string
	LocalSeq   uint32   // the CSeq of our last request on the dialog when it was kept
	Target     string   // the remote target: the peer's Contact URI
	RouteSet   []string // Route values, in the order they are sent
	Dest       string   // host:port requests go to when RouteSet is empty
	Transport  string   // "UDP", "TCP", "TLS"
	// Invite is set on a leg whose INVITE had no final answer yet when
	// the snapshot was kept (the call was ringing): such a leg is ended
	// with CANCEL, not BYE.
	Invite *PendingInvite `json:",omitempty"`
	// Answer is set on a caller's leg whose INVITE had no final answer
	// from us yet: such a leg gets a final response, not a BYE.
	Answer *PendingAnswer `json:",omitempty"`
}

// PendingAnswer is what a response to a caller's INVITE repeats of it
// (RFC 3261 §8.2.6.2), and where it came from (§18.2.2).
type PendingAnswer struct {
	Vias     []string // every Via value, top first
	From, To string   // To with the tag of our provisional answers
	CallID   string
	CSeq     uint32
	Source   string // host:port the INVITE came from
}

// PendingInvite is what a CANCEL must repeat of the INVITE it cancels
// beside the leg's From, To (without a tag) and Call-ID (RFC 3261 §9.1):
// the Request-URI, the top Via (its branch matches the INVITE's
// transaction, §9.2), the CSeq number and the Route header fields.
type PendingInvite struct {
	RequestURI string
	Via        string // the top Via value, as sent
	CSeq       uint32
	RouteSet   []string
	Dest       string // host:port it was sent to
}

// DialogSnapshot is one call a node holds: every leg of it with a
// dialog, or with an INVITE still unanswered, the caller's Call-ID that
// names its call record, and the node that holds it.
type DialogSnapshot struct {
	Node      string // the node that held the call (nodes may share a store)
	Key       string // the session's key: unique per node
	CallID    string // the caller's Call-ID, as in the call record
	StartedAt time.Time
	Legs      []DialogLeg
}

// DialogKey names one snapshot.
type DialogKey struct{ Node, Key string }
