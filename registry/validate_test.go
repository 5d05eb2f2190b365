package registry

import (
	"errors"
	"strings"
	"testing"
)

// checkParse runs one table row: either the normalised value or the field
// the ValidationError must name.
func checkParse[T comparable](t *testing.T, in string, got T, err error, want T, wantField string) {
	t.Helper()
	if wantField != "" {
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Field != wantField || ve.Rule == "" {
			t.Errorf("%q: err = %v, want ValidationError on %s", in, err, wantField)
		}
		return
	}
	if err != nil || got != want {
		t.Errorf("%q: got %v, %v; want %v", in, got, err, want)
	}
}

func TestParseIMSI(t *testing.T) {
	for _, tc := range []struct{ in, want, field string }{
		{"001010000000001", "001010000000001", ""},
		{" 123456 ", "123456", ""},
		{"123456789012345", "123456789012345", ""},
		{"12345", "", "imsi"},            // too short
		{"1234567890123456", "", "imsi"}, // 16 digits: E.212 allows 15
		{"00101000000000a", "", "imsi"},
		{"+00101000000001", "", "imsi"},
		{"", "", "imsi"},
	} {
		m, err := ParseIMSI(tc.in)
		checkParse(t, tc.in, m, err, MobileID{Type: IMSI, Value: tc.want}, tc.field)
	}
}

func TestParseMAC(t *testing.T) {
	const norm = "00:1a:2b:3c:4d:5e"
	for _, tc := range []struct{ in, want, field string }{
		{"00:1a:2b:3c:4d:5e", norm, ""},
		{"00:1A:2B:3C:4D:5E", norm, ""},
		{"00-1a-2b-3c-4d-5e", norm, ""},
		{"001a.2b3c.4d5e", norm, ""},
		{"001A2B3C4D5E", norm, ""},
		{" 001a2b3c4d5e ", norm, ""},
		{"00:1a-2b:3c:4d:5e", "", "mac"}, // mixed separators
		{"00:1a:2b:3c:4d", "", "mac"},    // EUI-48 has six octets
		{"00:1a:2b:3c:4d:5g", "", "mac"},
		{"001a2b3c4d5e6f", "", "mac"},
		{"", "", "mac"},
	} {
		m, err := ParseMAC(tc.in)
		checkParse(t, tc.in, m, err, MobileID{Type: MAC, Value: tc.want}, tc.field)
	}
}

func TestParseMobileID(t *testing.T) {
	for _, tc := range []struct {
		in    string
		want  MobileID
		field string
	}{
		{"imsi:001010000000001", MobileID{IMSI, "001010000000001"}, ""},
		{"IMSI:001010000000001", MobileID{IMSI, "001010000000001"}, ""},
		{"mac:001A2B3C4D5E", MobileID{MAC, "00:1a:2b:3c:4d:5e"}, ""},
		{"msisdn:+441632960001", MobileID{MSISDN, "+441632960001"}, ""},
		{"msisdn:441632960001", MobileID{}, "msisdn"},
		{"imei:123456789012345", MobileID{}, "mobile_id"},
		{"001010000000001", MobileID{}, "mobile_id"},
		{"imsi:1", MobileID{}, "imsi"},
	} {
		m, err := ParseMobileID(tc.in)
		checkParse(t, tc.in, m, err, tc.want, tc.field)
	}
}

func TestParseIMID(t *testing.T) {
	for _, tc := range []struct{ in, want, rule string }{
		{"alice", "alice", ""},
		{"bob.smith_2-x", "bob.smith_2-x", ""},
		{"0", "0", ""},
		{strings.Repeat("a", 64), strings.Repeat("a", 64), ""},
		{strings.Repeat("a", 65), "", "1 to 64"},
		{"", "", "1 to 64"},
		// Nothing is mapped: each of these would otherwise name alice or
		// kate.
		{"Alice", "", `upper-case 'A'`},
		{" alice", "", `' ' at position 1 is not allowed`},
		{"alice ", "", `' ' at position 6 is not allowed`},
		{"\u212aate", "", "character U+212A is not allowed"},  // KELVIN SIGN
		{"\uff41lice", "", "character U+FF41 is not allowed"}, // FULLWIDTH a
		{"e\u0301lise", "", "character U+0301 is not allowed"},
		{"\u00e9lise", "", "character U+00E9 is not allowed"},
		{"al\xffice", "", "not valid UTF-8"},
		{".alice", "", "'.' at position 1 is not allowed"},
		{"-alice", "", "'-' at position 1 is not allowed"},
		{"al ice", "", "' ' at position 3 is not allowed"},
		{"alice@im.example", "", "'@' at position 6 is not allowed"},
		{"al%69ce", "", "'%' at position 3 is not allowed"},
		{"al\x00ice", "", `'\x00' at position 3 is not allowed`},
	} {
		id, err := ParseIMID(tc.in)
		if tc.rule == "" {
			checkParse(t, tc.in, id, err, tc.want, "")
			continue
		}
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Field != "im_id" || !strings.Contains(ve.Rule, tc.rule) || id != "" {
			t.Errorf("ParseIMID(%q) = %q, %v; want an im_id error saying %q", tc.in, id, err, tc.rule)
		}
	}
}

func TestParseCaps(t *testing.T) {
	for _, tc := range []struct {
		in    string
		want  Caps
		field string
	}{
		{"", CapAudio, ""},
		{"audio", CapAudio, ""},
		{"audio,text", CapAudio | CapText, ""},
		{" Video , IMAGE ", CapVideo | CapImage, ""},
		{"audio,text,image,video", CapAudio | CapText | CapImage | CapVideo, ""},
		{"audio,fax", 0, "caps"},
		{"audio,", 0, "caps"},
	} {
		c, err := ParseCaps(tc.in)
		checkParse(t, tc.in, c, err, tc.want, tc.field)
	}
	if s := (CapAudio | CapVideo).String(); s != "audio,video" {
		t.Errorf("String = %q", s)
	}
	for _, tc := range []struct {
		in    Caps
		want  Caps
		field string
	}{{0, CapAudio, ""}, {CapText, CapText, ""}, {15, 15, ""}, {16, 0, "caps"}, {0x80, 0, "caps"}} {
		c, err := ValidateCaps(tc.in)
		checkParse(t, tc.in.String(), c, err, tc.want, tc.field)
	}
}

func TestParseKind(t *testing.T) {
	for _, tc := range []struct {
		in    string
		want  Kind
		field string
	}{
		{"", Legacy, ""},
		{"legacy", Legacy, ""},
		{"SMART", Smart, ""},
		{"feature-phone", "", "kind"},
	} {
		k, err := ParseKind(tc.in)
		checkParse(t, tc.in, k, err, tc.want, tc.field)
	}
}

func TestParseDomainAndDisplay(t *testing.T) {
	for _, tc := range []struct{ in, want, field string }{
		{"", "", ""},
		{"IM.Example", "im.example", ""},
		{"a-b.example", "a-b.example", ""},
		{"localhost", "localhost", ""},
		{"-a.example", "", "domain"},
		{"a..example", "", "domain"},
		{"a b.example", "", "domain"},
		{"im.example:5060", "", "domain"},
	} {
		d, err := ParseDomain(tc.in)
		checkParse(t, tc.in, d, err, tc.want, tc.field)
	}
	for _, tc := range []struct{ in, want, field string }{
		{"", "", ""},
		{" Alice Liddell ", "Alice Liddell", ""},
		{"Élise 😀", "Élise 😀", ""},
		{strings.Repeat("é", 128), strings.Repeat("é", 128), ""},
		{strings.Repeat("é", 129), "", "display"},
		{"a\x00b", "", "display"},
		{"a\nb", "", "display"},
		{"\xff", "", "display"},
	} {
		d, err := ParseDisplay(tc.in)
		checkParse(t, tc.in, d, err, tc.want, tc.field)
	}
}

func TestValidateTerminal(t *testing.T) {
	got, err := ValidateTerminal(NewTerminal{IMID: "alice", MobileID: MobileID{Type: "MAC", Value: "001A2B3C4D5E"}})
	want := NewTerminal{IMID: "alice", MobileID: MobileID{Type: MAC, Value: "00:1a:2b:3c:4d:5e"}, Kind: Legacy, Caps: CapAudio}
	if err != nil || got != want {
		t.Errorf("ValidateTerminal = %+v, %v; want %+v", got, err, want)
	}
	for _, tc := range []struct {
		in    NewTerminal
		field string
	}{
		{NewTerminal{IMID: "", MobileID: want.MobileID}, "im_id"},
		{NewTerminal{IMID: "a", MobileID: MobileID{}}, "mobile_id"},
		{NewTerminal{IMID: "a", MobileID: MobileID{Type: IMSI, Value: "x"}}, "imsi"},
		{NewTerminal{IMID: "a", MobileID: want.MobileID, Kind: "pstn"}, "kind"},
		{NewTerminal{IMID: "a", MobileID: want.MobileID, Caps: 32}, "caps"},
	} {
		_, err := ValidateTerminal(tc.in)
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Field != tc.field {
			t.Errorf("ValidateTerminal(%+v): err = %v, want ValidationError on %s", tc.in, err, tc.field)
		}
	}
}
