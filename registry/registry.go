// Package registry holds the domain of the terminal registry: IM users,
// their terminals and contacts, registrations, call records, stored media
// and deferred messages; the parsers and validators every writer uses; and
// the Store interfaces the rest of the product programs against. It links
// no database: the implementations live below it (registry/sqlite), opened
// by scheme through registry/stores, so that a simulator or a QR codec that
// needs only MobileID or Caps never links a database driver.
package registry

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Errors that callers check with errors.Is.
var (
	// ErrNotFound: the user, terminal or contact does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists: a user with this IM ID, or a terminal with this mobile
	// identity, already exists.
	ErrExists = errors.New("already exists")
	// ErrNoActiveTerminal: the user exists but has no active terminal.
	ErrNoActiveTerminal = errors.New("no active terminal")
	// ErrUnavailable: the store could not be asked (its server is down or
	// unreachable, or did not answer in time); the request itself may be
	// fine and worth repeating later.
	ErrUnavailable = errors.New("registry unavailable")
)

// ValidationError names the field that is wrong and the rule it broke. The
// CLI prints it as one line and the HTTP API returns it as JSON, so both
// report the same words for the same mistake.
type ValidationError struct {
	Field string // e.g. "imsi"
	Rule  string // e.g. "must be 6 to 15 digits"
}

func (e *ValidationError) Error() string { return e.Field + ": " + e.Rule }

func invalid(field, rule string) error { return &ValidationError{Field: field, Rule: rule} }

// MobileIDType is the kind of mobile identity a terminal has.
type MobileIDType string

// Mobile identity types.
const (
	IMSI   MobileIDType = "imsi"
	MAC    MobileIDType = "mac"
	MSISDN MobileIDType = "msisdn"
)

// MobileID is a terminal's mobile identity in normalised form: an IMSI as
// its digits, a MAC as lower-case colon-separated EUI-48, an MSISDN as E.164
// with its leading '+'.
type MobileID struct {
	Type  MobileIDType `json:"type"`
	Value string       `json:"value"`
}

// String gives the identity as "type:value", e.g. "imsi:001010000000001".
func (m MobileID) String() string { return string(m.Type) + ":" + m.Value }

// IsZero reports whether no identity is set.
func (m MobileID) IsZero() bool { return m.Value == "" }

var (
	imsiPattern   = regexp.MustCompile(`^[0-9]{6,15}$`)
	msisdnPattern = regexp.MustCompile(`^\+[1-9][0-9]{5,14}$`)
	hexOnly       = regexp.MustCompile(`^[0-9a-f]{12}$`)
)

// ParseIMSI validates an IMSI: 6 to 15 decimal digits (ITU-T E.212 allows at
// most 15; shorter test IMSIs are common in labs).
func ParseIMSI(s string) (MobileID, error) {
	s = strings.TrimSpace(s)
	if !imsiPattern.MatchString(s) {
		return MobileID{}, invalid("imsi", "must be 6 to 15 digits")
	}
	return MobileID{Type: IMSI, Value: s}, nil
}

// ParseMAC validates an EUI-48 in any common notation (aa:bb:cc:dd:ee:ff,
// aa-bb-cc-dd-ee-ff, aabb.ccdd.eeff, aabbccddeeff) and normalises it to
// lower-case colon form.
func ParseMAC(s string) (MobileID, error) {
	raw := strings.ToLower(strings.TrimSpace(s))
	var hex string
	switch {
	case len(raw) == 17 && (strings.Count(raw, ":") == 5 || strings.Count(raw, "-") == 5):
		sep := raw[2:3]
		for i := 2; i < 17; i += 3 {
			if raw[i:i+1] != sep {
				return MobileID{}, invalid("mac", "must be an EUI-48 address such as 00:1a:2b:3c:4d:5e")
			}
		}
		hex = strings.NewReplacer(":", "", "-", "").Replace(raw)
	case len(raw) == 14 && raw[4] == '.' && raw[9] == '.':
		hex = strings.ReplaceAll(raw, ".", "")
	case len(raw) == 12:
		hex = raw
	}
	if !hexOnly.MatchString(hex) {
		return MobileID{}, invalid("mac", "must be an EUI-48 address such as 00:1a:2b:3c:4d:5e")
	}
	var b strings.Builder
	for i := 0; i < 12; i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(hex[i : i+2])
	}
	return MobileID{Type: MAC, Value: b.String()}, nil
}

// ParseMSISDN validates an E.164 number written with its leading '+'.
func ParseMSISDN(s string) (MobileID, error) {
	s = strings.TrimSpace(s)
	if !msisdnPattern.MatchString(s) {
		return MobileID{}, invalid("msisdn", "must be an E.164 number such as +441632960001")
	}
	return MobileID{Type: MSISDN, Value: s}, nil
}

// ParseMobileID parses the "type:value" form that MobileID.String gives.
func ParseMobileID(s string) (MobileID, error) {
	typ, val, ok := strings.Cut(s, ":")
	if !ok {
		return MobileID{}, invalid("mobile_id", "must be imsi:DIGITS, mac:EUI-48 or msisdn:+E164")
	}
	switch MobileIDType(strings.ToLower(typ)) {
	case IMSI:
		return ParseIMSI(val)
	case MAC:
		return ParseMAC(val)
	case MSISDN:
		return ParseMSISDN(val)
	}
	return MobileID{}, invalid("mobile_id", "type must be imsi, mac or msisdn")
}

// Kind says how a terminal is reached.
type Kind string

// Terminal kinds.
const (
	// Legacy terminals are located through the SCP by their mobile identity.
	Legacy Kind = "legacy"
	// Smart terminals register over SIP and are called at their binding.
	Smart Kind = "smart"
)

// ParseKind validates a terminal kind; the empty string means Legacy.
func ParseKind(s string) (Kind, error) {
	switch Kind(strings.ToLower(strings.TrimSpace(s))) {
	case "", Legacy:
		return Legacy, nil
	case Smart:
		return Smart, nil
	}
	return "", invalid("kind", "must be legacy or smart")
}

// Caps is the set of media a terminal can render.
type Caps uint8

// Capabilities.
const (
	CapAudio Caps = 1 << iota
	CapText
	CapImage
	CapVideo
)

var capNames = []struct {
	c    Caps
	name string
}{{CapAudio, "audio"}, {CapText, "text"}, {CapImage, "image"}, {CapVideo, "video"}}

// ParseCaps parses a comma-separated list such as "audio,text". The empty
// string means audio only: every terminal can at least take a call.
func ParseCaps(s string) (Caps, error) {
	if strings.TrimSpace(s) == "" {
		return CapAudio, nil
	}
	var c Caps
	for _, part := range strings.Split(s, ",") {
		p := strings.ToLower(strings.TrimSpace(part))
		found := false
		for _, n := range capNames {
			if n.name == p {
				c |= n.c
				found = true
			}
		}
		if !found {
			return 0, invalid("caps", fmt.Sprintf("unknown capability %q: must be a list of audio, text, image, video", p))
		}
	}
	return c, nil
}

// Has reports whether every capability in o is in c.
func (c Caps) Has(o Caps) bool { return c&o == o }

// Names lists the capabilities in a fixed order.
func (c Caps) Names() []string {
	out := []string{}
	for _, n := range capNames {
		if c.Has(n.c) {
			out = append(out, n.name)
		}
	}
	return out
}

// String gives the comma-separated form ParseCaps reads.
func (c Caps) String() string { return strings.Join(c.Names(), ",") }

// Credentials are what digest authentication needs, never the password:
// HA1 = H(username ":" realm ":" password) for MD5 and for SHA-256 (RFC 8760).
type Credentials struct {
	Realm     string
	HA1MD5    string // lower-case hex
	HA1SHA256 string // lower-case hex
}

// NewCredentials computes the digest credentials of imID for password in
// realm: HA1 = H(username ":" realm ":" password) with H = MD5 and H =
// SHA-256 (RFC 7616 section 3.4.2; RFC 8760 section 2.1). The username is the
// IM ID lower-cased as ParseIMID stores it, so the HA1 matches the username a
// UA sends for the stored user. The password itself is never kept.
func NewCredentials(imID, realm, password string) Credentials {
	a1 := strings.ToLower(strings.TrimSpace(imID)) + ":" + realm + ":" + password
	m := md5.Sum([]byte(a1))
	s := sha256.Sum256([]byte(a1))
	return Credentials{Realm: realm, HA1MD5: hex.EncodeToString(m[:]), HA1SHA256: hex.EncodeToString(s[:])}
}

// User is an IM user.
type User struct {
	IMID      string
	Display   string
	Creds     Credentials
	CreatedAt time.Time
}

// NewTerminal is what a caller supplies to create a terminal. ValidateTerminal
// checks it; the store checks it again so that no path skips validation.
type NewTerminal struct {
	IMID     string
	MobileID MobileID
	Kind     Kind
	Caps     Caps
	Active   bool
}

// Terminal is a terminal as stored.
type Terminal struct {
	ID        int64
	IMID      string
	MobileID  MobileID
	Kind      Kind
	Caps      Caps
	Active    bool
	CreatedAt time.Time
}

// Contact is an entry in a user's address book, typically imported from a
// terminal's QR code.
type Contact struct {
	ID        int64
	Owner     string   // IM ID of the address book's owner
	IMID      string   // the contact's IM ID
	Domain    string   // the contact's IM domain, may be empty
	MobileID  MobileID // may be zero
	Display   string
	CreatedAt time.Time
}

// Store is the registry as the rest of the product uses it. Implementations
// must enforce "at most one active terminal per IM ID" in the database.
type Store interface {
	AddUser(ctx context.Context, u User) (User, error)
	User(ctx context.Context, imID string) (User, error)
	Users(ctx context.Context) ([]User, error)
	SetCredentials(ctx context.Context, imID string, c Credentials) error
	RemoveUser(ctx context.Context, imID string) error

	AddTerminal(ctx context.Context, t NewTerminal) (Terminal, error)
	Terminal(ctx context.Context, id int64) (Terminal, error)
	// Terminals lists the terminals of imID, or all terminals when imID is "".
	Terminals(ctx context.Context, imID string) ([]Terminal, error)
	// Activate makes id the active terminal of its user and deactivates the
	// user's other terminals in the same transaction.
	Activate(ctx context.Context, id int64) (Terminal, error)
	Deactivate(ctx context.Context, id int64) (Terminal, error)
	RemoveTerminal(ctx context.Context, id int64) error
	// ActiveTerminal is the call path's lookup: ErrNotFound for an unknown
	// user, ErrNoActiveTerminal for a user with none.
	ActiveTerminal(ctx context.Context, imID string) (Terminal, error)

	AddContact(ctx context.Context, c Contact) (Contact, error)
	Contacts(ctx context.Context, owner string) ([]Contact, error)

	Close() error
}

// Binding is a SIP registration of a smart terminal (RFC 3261 section 10):
// the user's address of record is sip:<IMID>@<domain>, Contact is where the
// terminal asked to be called, Source is the address the REGISTER came from
// (used when the Contact is unreachable behind NAT).
type Binding struct {
	IMID       string
	TerminalID int64  // the smart terminal this binding belongs to; 0 if not matched
	Contact    string // the Contact URI as registered
	Instance   string // +sip.instance (RFC 5626), may be empty
	Source     string // ip:port the REGISTER arrived from
	Transport  string // udp, tcp, tls
	Expires    time.Time
	UpdatedAt  time.Time
}

// Key identifies a binding among its user's: the instance ID when the UA
// sent one, since one client is one instance whichever Contact it registers
// from (RFC 5626 §4.1, §6), else the Contact URI (RFC 3261 §10.3). A binding
// is a logged-in client: a user has as many as clients it is logged in on.
func (b Binding) Key() string {
	if b.Instance != "" {
		return b.Instance
	}
	return b.Contact
}

// CallRecord is one call attempt, written when the call starts and updated
// when it is answered and when it ends.
type CallRecord struct {
	ID         int64
	CallID     string // the caller's Call-ID
	Caller     string // the caller's URI
	Callee     string // the callee's IM ID
	TerminalID int64  // 0 when no terminal was chosen
	SCPOutcome string // e.g. "online 127.0.0.1:5062", "busy", "unknown", "timeout"; empty for smart terminals
	StartedAt  time.Time
	RingingAt  time.Time // the first 180 or 183 relayed to the caller; zero if none
	AnsweredAt time.Time // zero if never answered, or the caller never ACKed the answer
	EndedAt    time.Time // zero while the call is up
	EndCause   string    // e.g. "caller BYE", "486 busy", "media timeout"
	SIPStatus  int       // the failure answer the caller got, 0 if none was sent (answered, or the caller left first)
	Q850Cause  int       // the Q.850 cause of that answer's Reason header, 0 with none
	Stats      string    // JSON with per-leg media counters, may be empty
	Node       string    // the node that handled the call (nodes may share a store); written at the start only
}

// SignalStore is the part of the registry the SIP server needs besides
// ActiveTerminal and User: registrations and call records.
type SignalStore interface {
	// PutBinding inserts or refreshes the binding keyed by (IMID, b.Key()),
	// replacing another of the user's bindings with the same Contact.
	PutBinding(ctx context.Context, b Binding) error
	// RemoveBinding deletes the binding whose Key is key; removing a
	// missing one is not an error.
	RemoveBinding(ctx context.Context, imID, key string) error
	// Bindings lists imID's bindings that have not expired at now, newest
	// first: the clients the user is logged in on at now.
	Bindings(ctx context.Context, imID string, now time.Time) ([]Binding, error)
	// StartCall inserts a record and returns its ID.
	StartCall(ctx context.Context, r CallRecord) (int64, error)
	// UpdateCall writes RingingAt, AnsweredAt, EndedAt, EndCause, SIPStatus,
	// Q850Cause, TerminalID, SCPOutcome and Stats of record r.ID.
	UpdateCall(ctx context.Context, r CallRecord) error
	// Calls lists the most recent call records, newest first.
	Calls(ctx context.Context, limit int) ([]CallRecord, error)
}
