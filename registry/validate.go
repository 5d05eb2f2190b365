package registry

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Validation shared by every writer of the registry. The stores call these
// on every write path, so a CLI, an API handler or a test that forgets to
// validate still cannot store a malformed row; callers may call them first to
// report errors before touching the store.

const maxDisplay = 128

var (
	hexMD5    = regexp.MustCompile(`^[0-9a-f]{32}$`)
	hexSHA256 = regexp.MustCompile(`^[0-9a-f]{64}$`)
	// domainPattern: a DNS name of letters, digits and hyphens (RFC 1035
	// section 2.3.1, relaxed by RFC 1123 to allow a leading digit).
	domainPattern = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

// IM IDs follow one rule everywhere (the CLI, the provisioning API, SIP
// Request-URIs, To headers and digest usernames all call ParseIMID): 1 to 64
// characters of lower-case ASCII letters, digits, '.', '_' and '-', starting
// with a letter or digit, taken exactly as written. Nothing is mapped: no
// case folding, no trimming, no Unicode normalisation, so that no lookalike
// ("\u212aate", KELVIN SIGN, which Unicode lower-cases to "kate") or variant
// ("Kate", " kate") can name another user. This matches SIP, which compares
// the user part of a URI case-sensitively (RFC 3261 section 19.1.4), and
// digest authentication, whose HA1 is computed over the exact username
// (RFC 7616 section 3.4.2). The set needs no escaping in a SIP URI, a URL
// path or a shell.
const (
	maxIMID  = 64
	ruleIMID = "must be 1 to 64 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit"
)

// ParseIMID validates an IM ID (the user part of sip:<im-id>@<domain>) and
// returns it unchanged, or an error that says which character broke the
// rule.
func ParseIMID(s string) (string, error) {
	if s == "" || len(s) > maxIMID {
		return "", invalid("im_id", ruleIMID)
	}
	for i, r := range s {
		var why string
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			continue
		case (r == '.' || r == '_' || r == '-') && i > 0:
			continue
		case r >= 'A' && r <= 'Z':
			why = fmt.Sprintf("upper-case %q is not allowed (IM IDs are taken as written, never case-folded)", r)
		case r == utf8.RuneError && !utf8.ValidString(s):
			why = "the text is not valid UTF-8"
		case r >= utf8.RuneSelf:
			why = fmt.Sprintf("character %U is not allowed (IM IDs are ASCII)", r)
		default:
			why = fmt.Sprintf("%q at position %d is not allowed", r, i+1)
		}
		return "", invalid("im_id", ruleIMID+": "+why)
	}
	return s, nil
}

// ReservedPrefix starts the user part of conference URIs
// (sip:conf-ID@DOMAIN), so no user may be named with it: a call to such a
// user would reach the conference bridge instead.
const ReservedPrefix = "conf-"

// FactoryUser is the user part of the conference factory URI
// (sip:conference@DOMAIN, RFC 4579 §5.2): an INVITE to it creates a
// conference, so no user may have the name either.
const FactoryUser = "conference"

func reserved(imID string) bool {
	return strings.HasPrefix(imID, ReservedPrefix) || imID == FactoryUser
}

// ParseDisplay validates a display name: at most 128 characters of
// printable UTF-8, surrounding space trimmed. Empty is allowed.
func ParseDisplay(s string) (string, error) {
	s = strings.TrimSpace(s)
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > maxDisplay {
		return "", invalid("display", "must be at most 128 characters of UTF-8 text")
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return "", invalid("display", "must not contain control characters")
		}
	}
	return s, nil
}

// ParseDomain validates an IM domain (the host part of sip:<im-id>@<domain>)
// and returns it lower-cased. Empty is allowed: it means the local domain.
func ParseDomain(s string) (string, error) {
	d := strings.ToLower(strings.TrimSpace(s))
	if d == "" {
		return "", nil
	}
	if len(d) > 253 || !domainPattern.MatchString(d) {
		return "", invalid("domain", "must be a DNS name such as im.example")
	}
	return d, nil
}

// ValidateCredentials checks that c holds lower-case hex digests of the
// right length. A user without credentials (all fields empty) is valid: it
// cannot authenticate until SetCredentials gives it some.
func ValidateCredentials(c Credentials) (Credentials, error) {
	if c == (Credentials{}) {
		return c, nil
	}
	c.HA1MD5 = strings.ToLower(c.HA1MD5)
	c.HA1SHA256 = strings.ToLower(c.HA1SHA256)
	if c.Realm == "" || strings.ContainsAny(c.Realm, "\"\\\r\n") {
		return Credentials{}, invalid("realm", "must be non-empty and must not contain quotes, backslashes or line breaks")
	}
	if !hexMD5.MatchString(c.HA1MD5) {
		return Credentials{}, invalid("ha1_md5", "must be 32 hex digits")
	}
	if !hexSHA256.MatchString(c.HA1SHA256) {
		return Credentials{}, invalid("ha1_sha256", "must be 64 hex digits")
	}
	return c, nil
}

// ValidateUser checks and normalises u: IM ID, display name, credentials.
func ValidateUser(u User) (User, error) {
	var err error
	if u.IMID, err = ParseIMID(u.IMID); err != nil {
		return User{}, err
	}
	if reserved(u.IMID) {
		return User{}, invalid("im_id", FactoryUser+" and names starting with "+ReservedPrefix+" are the conference bridge's (sip:conference@DOMAIN, sip:conf-ID@DOMAIN), not a user's")
	}
	if u.Display, err = ParseDisplay(u.Display); err != nil {
		return User{}, err
	}
	if u.Creds, err = ValidateCredentials(u.Creds); err != nil {
		return User{}, err
	}
	return u, nil
}

// ParseMobileIDValue re-validates a MobileID that arrived as a struct (e.g.
// from JSON) rather than through one of the Parse functions.
func ParseMobileIDValue(m MobileID) (MobileID, error) {
	return ParseMobileID(string(m.Type) + ":" + m.Value)
}

// ValidateCaps checks that c is a known set of capabilities. Zero means
// audio only, as ParseCaps("") does.
func ValidateCaps(c Caps) (Caps, error) {
	if c == 0 {
		return CapAudio, nil
	}
	if c&^(CapAudio|CapText|CapImage|CapVideo) != 0 {
		return 0, invalid("caps", "unknown capability bits: must be a list of audio, text, image, video")
	}
	return c, nil
}

// ValidateTerminal checks and normalises t: IM ID, mobile identity, kind,
// capabilities.
func ValidateTerminal(t NewTerminal) (NewTerminal, error) {
	var err error
	if t.IMID, err = ParseIMID(t.IMID); err != nil {
		return NewTerminal{}, err
	}
	if t.MobileID, err = ParseMobileIDValue(t.MobileID); err != nil {
		return NewTerminal{}, err
	}
	if t.Kind, err = ParseKind(string(t.Kind)); err != nil {
		return NewTerminal{}, err
	}
	if t.Caps, err = ValidateCaps(t.Caps); err != nil {
		return NewTerminal{}, err
	}
	return t, nil
}

// ValidateContact checks and normalises c: owner, the contact's IM ID and
// domain, its mobile identity if any, and its display name.
func ValidateContact(c Contact) (Contact, error) {
	var err error
	if c.Owner, err = ParseIMID(c.Owner); err != nil {
		return Contact{}, &ValidationError{Field: "owner", Rule: err.(*ValidationError).Rule}
	}
	if c.IMID, err = ParseIMID(c.IMID); err != nil {
		return Contact{}, err
	}
	if c.Domain, err = ParseDomain(c.Domain); err != nil {
		return Contact{}, err
	}
	if !c.MobileID.IsZero() || c.MobileID.Type != "" {
		if c.MobileID, err = ParseMobileIDValue(c.MobileID); err != nil {
			return Contact{}, err
		}
	}
	if c.Display, err = ParseDisplay(c.Display); err != nil {
		return Contact{}, err
	}
	return c, nil
}

// ValidateBinding checks the fields a binding cannot do without.
func ValidateBinding(b Binding) (Binding, error) {
	var err error
	if b.IMID, err = ParseIMID(b.IMID); err != nil {
		return Binding{}, err
	}
	if strings.TrimSpace(b.Contact) == "" || len(b.Contact) > 1024 {
		return Binding{}, invalid("contact", "must be a URI of at most 1024 characters")
	}
	if b.Expires.IsZero() {
		return Binding{}, invalid("expires", "must be set")
	}
	if b.TerminalID < 0 {
		return Binding{}, invalid("terminal_id", "must not be negative")
	}
	// The instance is the client's own words, keyed on and echoed in the
	// 200 to REGISTER inside a quoted string: bounded, and nothing that
	// could end the string or the URN's brackets.
	if len(b.Instance) > 256 || strings.ContainsFunc(b.Instance, func(r rune) bool {
		return r <= ' ' || r > '~' || strings.ContainsRune(`"<>\`, r)
	}) {
		return Binding{}, invalid("instance", "must be at most 256 printable ASCII characters without quotes, angle brackets or backslashes")
	}
	b.Transport = strings.ToLower(b.Transport)
	return b, nil
}

// ValidateCallRecord checks a call record before it is stored.
func ValidateCallRecord(r CallRecord) (CallRecord, error) {
	if r.CallID == "" {
		return CallRecord{}, invalid("call_id", "must be set")
	}
	if r.TerminalID < 0 {
		return CallRecord{}, invalid("terminal_id", "must not be negative")
	}
	if r.Stats != "" && !json.Valid([]byte(r.Stats)) {
		return CallRecord{}, invalid("stats", "must be JSON")
	}
	return r, nil
}
