package sip

import (
	"net/url"
	"strings"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/registry"
)

// Numbers of telephone-network calls: what a trunk's INVITE calls and who
// it is from. Plain functions of the request and the trunk, so that the
// call path and its tests need no database.

// CalledNumber gives the number a trunk's Request-URI calls, in E.164 with
// the trunk's country code for a national number:
// sip:+15550001111@host;user=phone, sip:15550001111@host,
// sip:5550001111@host (national), tel:+1-555-000-1111 (RFC 3966). A local
// tel number with a global phone-context (tel:5550001111;phone-context=+1,
// RFC 3966 §5.1.5) takes its prefix from the context. A URI whose user is
// not a number gives a *registry.ValidationError on "number".
func CalledNumber(ruri sipmsg.Uri, t registry.Trunk) (string, error) {
	return uriNumber(ruri, t.CountryCode)
}

// TrunkIdentity is who a trunk call is from.
type TrunkIdentity struct {
	URI     string // the identity's URI as the trunk sent it
	Number  string // E.164 when the identity is a phone number, else ""
	Display string
	// Asserted: taken from P-Asserted-Identity (RFC 3325 §9.1), which only
	// a trusted trunk may send, rather than from the caller's own From.
	Asserted bool
	// Private: the caller asked that the identity not be shown to the
	// callee (Privacy: id, RFC 3325 §9.3, or "header"/"user", RFC 3323).
	Private bool
}

// TrunkCaller gives the caller of a trunk's INVITE from the header the
// trunk is configured for: P-Asserted-Identity, or From when the trunk
// asserts nothing or the INVITE carries no usable P-Asserted-Identity.
// Of several asserted identities (RFC 3325 §9.1 allows a sip and a tel
// one), the first that is a phone number wins, else the first.
func TrunkCaller(req *sipmsg.Request, t registry.Trunk) TrunkIdentity {
	var c TrunkIdentity
	if t.Identity != registry.IdentityFrom {
		c = assertedCaller(req, t.CountryCode)
	}
	if c.URI == "" {
		if from := req.From(); from != nil {
			c = TrunkIdentity{URI: from.Address.String(), Display: from.DisplayName}
			c.Number, _ = uriNumber(from.Address, t.CountryCode)
		}
	}
	for _, h := range req.GetHeaders("Privacy") {
		for _, v := range strings.Split(h.Value(), ";") {
			switch strings.ToLower(strings.TrimSpace(v)) {
			case "id", "header", "user":
				c.Private = true
			}
		}
	}
	return c
}

func assertedCaller(req *sipmsg.Request, cc string) TrunkIdentity {
	var first TrunkIdentity
	for _, h := range req.GetHeaders("P-Asserted-Identity") {
		for _, v := range splitContacts(h.Value()) {
			var u sipmsg.Uri
			params := sipmsg.NewParams()
			display, err := sipmsg.ParseAddressValue(v, &u, &params)
			if err != nil {
				continue
			}
			c := TrunkIdentity{URI: u.String(), Display: display, Asserted: true}
			c.Number, _ = uriNumber(u, cc)
			if c.Number != "" {
				return c
			}
			if first.URI == "" {
				first = c
			}
		}
	}
	return first
}

// uriNumber gives the E.164 number a sip, sips or tel URI names.
func uriNumber(u sipmsg.Uri, cc string) (string, error) {
	var number string
	switch u.Scheme {
	case "tel":
		number = u.Raw()
	case "sip", "sips":
		number = u.User
	default:
		return "", &registry.ValidationError{Field: "number", Rule: "must be given by a sip, sips or tel URI"}
	}
	// Parameters of a telephone-subscriber (RFC 3966 §3): in a tel URI
	// after the number, in a sip URI's user part (RFC 3261 §19.1.6).
	number, params, _ := strings.Cut(number, ";")
	if n, err := url.PathUnescape(number); err == nil {
		number = n
	}
	if !strings.HasPrefix(strings.TrimSpace(number), "+") {
		for _, p := range strings.Split(params, ";") {
			name, val, _ := strings.Cut(p, "=")
			if strings.EqualFold(strings.TrimSpace(name), "phone-context") && strings.HasPrefix(val, "+") {
				// RFC 3966 §5.1.5: a global-number-digits context is the
				// prefix that makes the local number global.
				return registry.NormalizeNumber(val+number, "")
			}
		}
	}
	return registry.NormalizeNumber(number, cc)
}
