package registry

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseE164(t *testing.T) {
	for _, tc := range []struct{ in, want, field string }{
		{"+15550001111", "+15550001111", ""},
		{" +441632960001 ", "+441632960001", ""},
		{"+1 (555) 000-1111", "+15550001111", ""}, // RFC 3966 visual separators
		{"+1.555.000.1111", "+15550001111", ""},
		{"+123456789012345", "+123456789012345", ""}, // 15 digits: E.164's maximum
		{"+1234567890123456", "", "number"},          // 16
		{"+123456", "", "number"},                    // too short for a number
		{"15550001111", "", "number"},                // no '+'
		{"+05550001111", "", "number"},               // country codes never start with 0
		{"+1555000111a", "", "number"},
		{"", "", "number"},
	} {
		got, err := ParseE164(tc.in)
		checkParse(t, tc.in, got, err, tc.want, tc.field)
	}
}

func TestNormalizeNumber(t *testing.T) {
	for _, tc := range []struct{ in, cc, want, field string }{
		{"+15550001111", "1", "+15550001111", ""},
		{"+15550001111", "", "+15550001111", ""},
		{"+441632960001", "1", "+441632960001", ""}, // international wins over the trunk's country
		{"15550001111", "1", "+15550001111", ""},    // E.164 without '+'
		{"15550001111", "", "+15550001111", ""},
		{"5550001111", "1", "+15550001111", ""},   // national
		{"555-000-1111", "1", "+15550001111", ""}, // national with separators
		{"(555) 000.1111", "1", "+15550001111", ""},
		{"07700900123", "44", "+447700900123", ""}, // national prefix 0 dropped
		{"447700900123", "44", "+447700900123", ""},
		{"5550001111", "", "+5550001111", ""}, // no country code: taken as international
		{"555", "1", "", "number"},            // +1555 is too short
		{"alice", "1", "", "number"},
		{"", "1", "", "number"},
		{"+", "1", "", "number"},
	} {
		got, err := NormalizeNumber(tc.in, tc.cc)
		checkParse(t, tc.in+" cc="+tc.cc, got, err, tc.want, tc.field)
	}
}

func TestParseCountryCode(t *testing.T) {
	for _, tc := range []struct{ in, want, field string }{
		{"1", "1", ""},
		{"+44", "44", ""},
		{"358", "358", ""},
		{"", "", ""},
		{"0", "", "country_code"},
		{"1234", "", "country_code"},
		{"+", "", "country_code"},
		{"us", "", "country_code"},
	} {
		got, err := ParseCountryCode(tc.in)
		checkParse(t, tc.in, got, err, tc.want, tc.field)
	}
}

func TestParseCIDRs(t *testing.T) {
	for _, tc := range []struct {
		in    string
		want  []string
		field string
	}{
		{"192.0.2.0/24", []string{"192.0.2.0/24"}, ""},
		{"192.0.2.7/24", []string{"192.0.2.0/24"}, ""}, // masked
		{"192.0.2.7", []string{"192.0.2.7/32"}, ""},    // one address
		{"192.0.2.0/24, 2001:db8::/32", []string{"192.0.2.0/24", "2001:db8::/32"}, ""},
		{"::ffff:192.0.2.0/120", []string{"192.0.2.0/24"}, ""}, // mapped IPv4 written as IPv4
		{"192.0.2.0/24,192.0.2.9/24", nil, "cidr"},             // the same range twice
		{"192.0.2.0/33", nil, "cidr"},
		{"fe80::1%eth0", nil, "cidr"},
		{"example.net", nil, "cidr"},
		{"", nil, "cidr"},
		{"192.0.2.0/24,", nil, "cidr"},
	} {
		got, err := ParseCIDRs(tc.in)
		var gotS []string
		for _, p := range got {
			gotS = append(gotS, p.String())
		}
		if tc.field != "" {
			checkParse(t, tc.in, "", err, "", tc.field)
			continue
		}
		if err != nil || !slices.Equal(gotS, tc.want) {
			t.Errorf("%q: got %v, %v; want %v", tc.in, gotS, err, tc.want)
		}
	}
}

func TestValidateTrunk(t *testing.T) {
	p := netip.MustParsePrefix
	for _, tc := range []struct {
		name  string
		in    Trunk
		field string
	}{
		{"ok", Trunk{Name: "Carrier-A", CIDRs: []netip.Prefix{p("192.0.2.9/24")}, CountryCode: "+1", Identity: "FROM"}, ""},
		{"no ranges", Trunk{Name: "a"}, "cidr"},
		{"zero range", Trunk{Name: "a", CIDRs: []netip.Prefix{{}}}, "cidr"},
		{"repeat after masking", Trunk{Name: "a", CIDRs: []netip.Prefix{p("192.0.2.1/24"), p("192.0.2.2/24")}}, "cidr"},
		{"bad name", Trunk{Name: "a b", CIDRs: []netip.Prefix{p("192.0.2.0/24")}}, "name"},
		{"bad country", Trunk{Name: "a", CIDRs: []netip.Prefix{p("192.0.2.0/24")}, CountryCode: "0"}, "country_code"},
		{"bad identity", Trunk{Name: "a", CIDRs: []netip.Prefix{p("192.0.2.0/24")}, Identity: "rpid"}, "identity"},
	} {
		got, err := ValidateTrunk(tc.in)
		if tc.field != "" {
			checkParse(t, tc.name, "", err, "", tc.field)
			continue
		}
		want := Trunk{Name: "carrier-a", CIDRs: []netip.Prefix{p("192.0.2.0/24")}, CountryCode: "1", Identity: IdentityFrom}
		if err != nil || got.Name != want.Name || !slices.Equal(got.CIDRs, want.CIDRs) || got.CountryCode != want.CountryCode || got.Identity != want.Identity {
			t.Errorf("%s: got %+v, %v; want %+v", tc.name, got, err, want)
		}
	}
	if got, err := ValidateTrunk(Trunk{Name: "b", CIDRs: []netip.Prefix{p("198.51.100.0/24")}}); err != nil || got.Identity != IdentityPAI {
		t.Errorf("default identity: %+v %v, want pai", got, err)
	}
}

func TestMatchTrunk(t *testing.T) {
	p := netip.MustParsePrefix
	trunks := []Trunk{
		{Name: "wide", CIDRs: []netip.Prefix{p("10.0.0.0/8")}},
		{Name: "narrow", CIDRs: []netip.Prefix{p("192.0.2.0/24"), p("10.1.2.0/24")}},
		{Name: "host", CIDRs: []netip.Prefix{p("10.1.2.3/32")}},
		{Name: "v6", CIDRs: []netip.Prefix{p("2001:db8::/32")}},
	}
	for _, tc := range []struct{ src, want string }{
		{"10.9.9.9", "wide"},
		{"10.1.2.4", "narrow"}, // /24 inside /8: the longer prefix wins
		{"10.1.2.3", "host"},   // /32 wins over both
		{"192.0.2.200", "narrow"},
		{"::ffff:10.1.2.3", "host"}, // mapped IPv4 from a dual-stack socket
		{"2001:db8::5", "v6"},
		{"198.51.100.1", ""},
		{"2001:db9::1", ""},
	} {
		got, ok := MatchTrunk(trunks, netip.MustParseAddr(tc.src))
		if got.Name != tc.want || ok != (tc.want != "") {
			t.Errorf("MatchTrunk(%s) = %q, %v; want %q", tc.src, got.Name, ok, tc.want)
		}
	}
	if _, ok := MatchTrunk(nil, netip.MustParseAddr("10.0.0.1")); ok {
		t.Error("no trunks matched an address")
	}
}

func TestParseFallbackAndIdentity(t *testing.T) {
	for _, tc := range []struct {
		in    string
		want  Fallback
		field string
	}{{"", FallbackNone, ""}, {"Terminal", FallbackTerminal, ""}, {"none", FallbackNone, ""}, {"voicemail", "", "fallback"}} {
		got, err := ParseFallback(tc.in)
		checkParse(t, tc.in, got, err, tc.want, tc.field)
	}
	for _, tc := range []struct {
		in    string
		want  IdentitySource
		field string
	}{{"", IdentityPAI, ""}, {"PAI", IdentityPAI, ""}, {"from", IdentityFrom, ""}, {"rpid", "", "identity"}} {
		got, err := ParseIdentitySource(tc.in)
		checkParse(t, tc.in, got, err, tc.want, tc.field)
	}
}

func TestValidateBindingInstance(t *testing.T) {
	base := Binding{IMID: "alice", Contact: "sip:alice@192.0.2.1", Expires: time.Unix(1, 0)}
	for _, tc := range []struct {
		instance string
		ok       bool
	}{
		{"", true},
		{"urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6", true},
		{"<urn:uuid:1>", false}, // the brackets belong to the header, not the ID
		{`urn:uuid:1"`, false},
		{"urn:uuid:1\\", false},
		{"urn: uuid", false},
		{"urn:uuid:é", false},
		{strings.Repeat("a", 257), false},
	} {
		b := base
		b.Instance = tc.instance
		_, err := ValidateBinding(b)
		var ve *ValidationError
		if tc.ok != (err == nil) || (!tc.ok && (!errors.As(err, &ve) || ve.Field != "instance")) {
			t.Errorf("instance %q: err = %v, want ok=%v", tc.instance, err, tc.ok)
		}
	}
}
