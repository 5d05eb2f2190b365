package registry

import (
	"context"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Number-to-user routing: trunks (the telephone network's way in, known by
// their source addresses) present calls to DIDs (phone numbers), each owned
// by one IM user.

// IdentitySource says which header of a trunk's INVITE names the caller.
type IdentitySource string

// Identity sources.
const (
	// IdentityPAI: P-Asserted-Identity (RFC 3325 §9.1), which a trusted
	// trunk asserts; From is used only when the INVITE carries none.
	IdentityPAI IdentitySource = "pai"
	// IdentityFrom: the From header, for trunks that assert nothing.
	IdentityFrom IdentitySource = "from"
)

// ParseIdentitySource validates a trunk's identity source; "" means pai.
func ParseIdentitySource(s string) (IdentitySource, error) {
	switch IdentitySource(strings.ToLower(strings.TrimSpace(s))) {
	case "", IdentityPAI:
		return IdentityPAI, nil
	case IdentityFrom:
		return IdentityFrom, nil
	}
	return "", invalid("identity", "must be pai or from")
}

// Trunk is a source of telephone-network calls: requests from one of its
// address ranges are never digest-challenged.
type Trunk struct {
	Name string
	// CIDRs are the address ranges the trunk sends from, masked (the
	// address part is the range's first address).
	CIDRs []netip.Prefix
	// CountryCode (E.164 digits, e.g. "1") turns the national numbers the
	// trunk sends into E.164; "" means the trunk sends international
	// numbers only.
	CountryCode string
	Identity    IdentitySource
	CreatedAt   time.Time
}

// Fallback says what a call to a DID does when no client of its user is
// logged in.
type Fallback string

// Fallbacks.
const (
	// FallbackNone: the caller gets 480 and the user a missed-call notice.
	FallbackNone Fallback = "none"
	// FallbackTerminal: the call goes to the user's active legacy terminal.
	FallbackTerminal Fallback = "terminal"
)

// ParseFallback validates a DID's fallback; "" means none.
func ParseFallback(s string) (Fallback, error) {
	switch Fallback(strings.ToLower(strings.TrimSpace(s))) {
	case "", FallbackNone:
		return FallbackNone, nil
	case FallbackTerminal:
		return FallbackTerminal, nil
	}
	return "", invalid("fallback", "must be none or terminal")
}

// DID is a phone number and the IM user it belongs to.
type DID struct {
	Number    string // E.164 with its leading '+'
	IMID      string
	Fallback  Fallback
	CreatedAt time.Time
}

// NumberStore keeps trunks and DIDs. Implementations must enforce in the
// database that a number has one owner and that an address range belongs
// to one trunk.
type NumberStore interface {
	// AddTrunk stores a new trunk; ErrExists if its name, or one of its
	// ranges, is taken.
	AddTrunk(ctx context.Context, t Trunk) (Trunk, error)
	// Trunks lists every trunk ordered by name.
	Trunks(ctx context.Context) ([]Trunk, error)
	RemoveTrunk(ctx context.Context, name string) error

	// AddDID gives a number to a user: ErrExists if the number has an
	// owner, ErrNotFound for an unknown user.
	AddDID(ctx context.Context, d DID) (DID, error)
	// DID is the call path's lookup of a called number, or ErrNotFound.
	DID(ctx context.Context, number string) (DID, error)
	// DIDs lists the numbers of imID, or every number when imID is "",
	// ordered by number.
	DIDs(ctx context.Context, imID string) ([]DID, error)
	RemoveDID(ctx context.Context, number string) error
}

var (
	trunkNamePattern   = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	countryCodePattern = regexp.MustCompile(`^[1-9][0-9]{0,2}$`)
	// e164Pattern: '+', a country code that does not start with 0, at most
	// 15 digits in all (ITU-T E.164 §6.1); at least 7 so that a short code
	// is not mistaken for a number.
	e164Pattern = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
)

// ParseTrunkName validates a trunk name and returns it lower-cased.
func ParseTrunkName(s string) (string, error) {
	n := strings.ToLower(strings.TrimSpace(s))
	if !trunkNamePattern.MatchString(n) {
		return "", invalid("name", "must be 1 to 64 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit")
	}
	return n, nil
}

// ParseCountryCode validates an E.164 country code: 1 to 3 digits, not
// starting with 0, with or without a leading '+'. Empty is allowed.
func ParseCountryCode(s string) (string, error) {
	cc := strings.TrimPrefix(strings.TrimSpace(s), "+")
	if cc == "" && strings.TrimSpace(s) == "" {
		return "", nil
	}
	if !countryCodePattern.MatchString(cc) {
		return "", invalid("country_code", "must be 1 to 3 digits not starting with 0, such as 1 or 44")
	}
	return cc, nil
}

// ParseCIDR validates one address range (an address alone is a range of
// one) and returns it masked, so that 192.0.2.7/24 and 192.0.2.0/24 are the
// same range. IPv4-mapped IPv6 is written as IPv4.
func ParseCIDR(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	var p netip.Prefix
	var err error
	if strings.Contains(s, "/") {
		p, err = netip.ParsePrefix(s)
	} else {
		var a netip.Addr
		if a, err = netip.ParseAddr(s); err == nil && a.Zone() == "" {
			p = netip.PrefixFrom(a, a.BitLen())
		}
	}
	if err != nil || !p.IsValid() {
		return netip.Prefix{}, invalid("cidr", "must be an address range such as 192.0.2.0/24 or 2001:db8::/32, or one address")
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// ParseCIDRs parses a comma-separated list of ranges, at least one,
// without repeats.
func ParseCIDRs(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		p, err := ParseCIDR(part)
		if err != nil {
			return nil, err
		}
		if slices.Contains(out, p) {
			return nil, invalid("cidr", "lists "+p.String()+" twice")
		}
		out = append(out, p)
	}
	return out, nil
}

// ValidateTrunk checks and normalises t: name, ranges (at least one, masked,
// no repeats), country code, identity source.
func ValidateTrunk(t Trunk) (Trunk, error) {
	var err error
	if t.Name, err = ParseTrunkName(t.Name); err != nil {
		return Trunk{}, err
	}
	if len(t.CIDRs) == 0 {
		return Trunk{}, invalid("cidr", "at least one address range is required")
	}
	cidrs := make([]netip.Prefix, 0, len(t.CIDRs))
	for _, p := range t.CIDRs {
		if !p.IsValid() {
			return Trunk{}, invalid("cidr", "must be an address range such as 192.0.2.0/24")
		}
		q, err := ParseCIDR(p.String())
		if err != nil {
			return Trunk{}, err
		}
		if slices.Contains(cidrs, q) {
			return Trunk{}, invalid("cidr", "lists "+q.String()+" twice")
		}
		cidrs = append(cidrs, q)
	}
	t.CIDRs = cidrs
	if t.CountryCode, err = ParseCountryCode(t.CountryCode); err != nil {
		return Trunk{}, err
	}
	if t.Identity, err = ParseIdentitySource(string(t.Identity)); err != nil {
		return Trunk{}, err
	}
	return t, nil
}

// ParseE164 validates a number written in E.164 with its leading '+'. The
// visual separators of RFC 3966 §5.1.1 ('-', '.', '(', ')') and spaces are
// dropped, so "+1 (555) 000-1111" is +15550001111.
func ParseE164(s string) (string, error) {
	n := stripVisual(strings.TrimSpace(s))
	if !e164Pattern.MatchString(n) {
		return "", invalid("number", "must be an E.164 number with its leading +, such as +15550001111")
	}
	return n, nil
}

// stripVisual drops the visual separators of RFC 3966 §5.1.1 and spaces.
func stripVisual(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '-', '.', '(', ')', ' ':
			return -1
		}
		return r
	}, s)
}

// NormalizeNumber turns a dialled number as a trunk sends it into E.164
// with the trunk's country code cc ("" for none):
//   - "+15550001111": already international;
//   - "15550001111": digits that begin with cc are taken as international
//     without the '+' (how many trunks send E.164), and so are any digits
//     when cc is "";
//   - "5550001111", "07700900123": a national number; a leading national
//     prefix '0' is dropped and cc put in front.
//
// Visual separators (RFC 3966 §5.1.1) are ignored.
func NormalizeNumber(s, cc string) (string, error) {
	n := stripVisual(strings.TrimSpace(s))
	if strings.HasPrefix(n, "+") {
		return ParseE164(n)
	}
	if n == "" || strings.Trim(n, "0123456789") != "" {
		return "", invalid("number", "must be digits, with or without a leading +")
	}
	switch {
	case cc == "" || strings.HasPrefix(n, cc):
		return ParseE164("+" + n)
	case strings.HasPrefix(n, "0"):
		return ParseE164("+" + cc + strings.TrimLeft(n, "0"))
	}
	return ParseE164("+" + cc + n)
}

// MatchTrunk gives the trunk one of whose ranges holds src, the most
// specific range winning (longest prefix), so that a narrow range of one
// carrier inside a wide range of another is routed to the first.
func MatchTrunk(trunks []Trunk, src netip.Addr) (Trunk, bool) {
	src = src.Unmap()
	best, bits := -1, -1
	for i, t := range trunks {
		for _, p := range t.CIDRs {
			if p.Bits() > bits && p.Contains(src) {
				best, bits = i, p.Bits()
			}
		}
	}
	if best < 0 {
		return Trunk{}, false
	}
	return trunks[best], true
}

// ValidateDID checks and normalises d: number, owner, fallback.
func ValidateDID(d DID) (DID, error) {
	var err error
	if d.Number, err = ParseE164(d.Number); err != nil {
		return DID{}, err
	}
	if d.IMID, err = ParseIMID(d.IMID); err != nil {
		return DID{}, err
	}
	if d.Fallback, err = ParseFallback(string(d.Fallback)); err != nil {
		return DID{}, err
	}
	return d, nil
}
