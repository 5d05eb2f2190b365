package provision

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/imcall/b2bua/registry"
)

// This file is the validation path the CLI and the HTTP API share: both turn
// their input into these request types and call the same methods, which use
// the registry's Parse functions, so the same mistake gives the same words.

// TerminalRequest is a new terminal as a client describes it: over HTTP the
// JSON body of POST /api/v1/users/{im}/terminals, on the command line the
// flags of `b2bua terminal add`.
type TerminalRequest struct {
	IMSI   string   `json:"imsi,omitempty"`
	MAC    string   `json:"mac,omitempty"`
	MSISDN string   `json:"msisdn,omitempty"`
	Kind   string   `json:"kind,omitempty"`
	Caps   []string `json:"caps,omitempty"`
	Active bool     `json:"active,omitempty"`
}

// ruleOneMobileID is the rule a TerminalRequest breaks when it names no
// mobile identity, or more than one.
const ruleOneMobileID = "exactly one of imsi, mac or msisdn is required"

// NewTerminal validates r for the user imID and gives what the store takes.
func (r TerminalRequest) NewTerminal(imID string) (registry.NewTerminal, error) {
	id, err := registry.ParseIMID(imID)
	if err != nil {
		return registry.NewTerminal{}, err
	}
	var (
		mid registry.MobileID
		n   int
	)
	for _, c := range []struct {
		v     string
		parse func(string) (registry.MobileID, error)
	}{{r.IMSI, registry.ParseIMSI}, {r.MAC, registry.ParseMAC}, {r.MSISDN, registry.ParseMSISDN}} {
		if c.v == "" {
			continue
		}
		n++
		if mid, err = c.parse(c.v); err != nil {
			return registry.NewTerminal{}, err
		}
	}
	if n != 1 {
		return registry.NewTerminal{}, &registry.ValidationError{Field: "mobile_id", Rule: ruleOneMobileID}
	}
	kind, err := registry.ParseKind(r.Kind)
	if err != nil {
		return registry.NewTerminal{}, err
	}
	var caps registry.Caps
	if len(r.Caps) == 0 {
		caps = registry.CapAudio
	} else {
		// Parse each element on its own so that "" and "audio,text" inside
		// a JSON array are errors rather than silently accepted.
		for _, c := range r.Caps {
			if strings.TrimSpace(c) == "" || strings.Contains(c, ",") {
				return registry.NewTerminal{}, &registry.ValidationError{Field: "caps", Rule: fmt.Sprintf(
					"unknown capability %q: must be a list of audio, text, image, video", strings.ToLower(strings.TrimSpace(c)))}
			}
			one, err := registry.ParseCaps(c)
			if err != nil {
				return registry.NewTerminal{}, err
			}
			caps |= one
		}
	}
	return registry.ValidateTerminal(registry.NewTerminal{IMID: id, MobileID: mid, Kind: kind, Caps: caps, Active: r.Active})
}

// ParseTerminalID validates a terminal ID as written in a URL path or on the
// command line.
func ParseTerminalID(s string) (int64, error) {
	id, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || id <= 0 {
		return 0, &registry.ValidationError{Field: "id", Rule: "must be a positive integer"}
	}
	return id, nil
}

// ParsePassword validates a password: non-empty, at most 1024 bytes, no line
// breaks (the CLI reads it as one line). The rule never quotes the password.
func ParsePassword(s string) (string, error) {
	switch {
	case s == "":
		return "", &registry.ValidationError{Field: "password", Rule: "must not be empty"}
	case len(s) > 1024:
		return "", &registry.ValidationError{Field: "password", Rule: "must be at most 1024 bytes"}
	case strings.ContainsAny(s, "\r\n\x00"):
		return "", &registry.ValidationError{Field: "password", Rule: "must be one line"}
	}
	return s, nil
}

// UserRequest is a new user: the JSON body of POST /api/v1/users; the CLI
// fills it from `b2bua user add`.
type UserRequest struct {
	IMID     string `json:"im_id"`
	Display  string `json:"display,omitempty"`
	Password string `json:"password"`
}

// User validates r and gives the user to store, with digest credentials for
// realm and never the password.
func (r UserRequest) User(realm string) (registry.User, error) {
	pw, err := ParsePassword(r.Password)
	if err != nil {
		return registry.User{}, err
	}
	u := registry.User{IMID: r.IMID, Display: r.Display}
	if u, err = registry.ValidateUser(u); err != nil {
		return registry.User{}, err
	}
	u.Creds = registry.NewCredentials(u.IMID, realm, pw)
	return registry.ValidateUser(u)
}

// Views: the JSON shapes of the API's answers and of the CLI's
// `--output json`. Field names are stable; new fields may be added.

// TerminalView is a terminal as the API and `--output json` show it.
type TerminalView struct {
	ID        int64             `json:"id"`
	IMID      string            `json:"im_id"`
	MobileID  registry.MobileID `json:"mobile_id"`
	Kind      string            `json:"kind"`
	Caps      []string          `json:"caps"`
	Active    bool              `json:"active"`
	CreatedAt time.Time         `json:"created_at"`
}

// NewTerminalView gives t's view.
func NewTerminalView(t registry.Terminal) TerminalView {
	return TerminalView{ID: t.ID, IMID: t.IMID, MobileID: t.MobileID, Kind: string(t.Kind), Caps: t.Caps.Names(), Active: t.Active, CreatedAt: t.CreatedAt.UTC()}
}

// UserView is a user as the API and `--output json` show it: never the
// digest credentials, only the realm they were made for.
type UserView struct {
	IMID      string    `json:"im_id"`
	Display   string    `json:"display"`
	Realm     string    `json:"realm"`
	CreatedAt time.Time `json:"created_at"`
}

// NewUserView gives u's view.
func NewUserView(u registry.User) UserView {
	return UserView{IMID: u.IMID, Display: u.Display, Realm: u.Creds.Realm, CreatedAt: u.CreatedAt.UTC()}
}

// ContactView is an address book entry as the API and `--output json` show
// it. MobileID is null when the contact has none.
type ContactView struct {
	ID        int64              `json:"id"`
	Owner     string             `json:"owner"`
	IMID      string             `json:"im_id"`
	Domain    string             `json:"domain"`
	MobileID  *registry.MobileID `json:"mobile_id"`
	Display   string             `json:"display"`
	CreatedAt time.Time          `json:"created_at"`
}

// NewContactView gives c's view.
func NewContactView(c registry.Contact) ContactView {
	v := ContactView{ID: c.ID, Owner: c.Owner, IMID: c.IMID, Domain: c.Domain, Display: c.Display, CreatedAt: c.CreatedAt.UTC()}
	if !c.MobileID.IsZero() {
		m := c.MobileID
		v.MobileID = &m
	}
	return v
}
