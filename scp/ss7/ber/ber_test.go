package ber

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeForms(t *testing.T) {
	tests := []struct {
		name        string
		in          string
		class       Class
		constructed bool
		tag         uint32
		value       string
		indefinite  bool
	}{
		{"short", "04 02 80 91", Universal, false, 4, "8091", false},
		{"high tag [50]", "9f 32 02 00 01", Context, false, 50, "0001", false},
		{"high tag [52] cons", "bf 34 00", Context, true, 52, "", false},
		{"two-octet high tag", "9f 81 00 01 ff", Context, false, 128, "ff", false},
		{"long form length", "04 81 02 80 91", Universal, false, 4, "8091", false},
		{"non-minimal long form", "04 82 00 02 80 91", Universal, false, 4, "8091", false},
		{"indefinite", "6c 80 a1 03 02 01 01 00 00", Application, true, 12, "a1 03 02 01 01", true},
		{"nested indefinite", "30 80 30 80 05 00 00 00 00 00", Universal, true, 16, "30 80 05 00 00 00", true},
		{"application 11", "6b 00", Application, true, 11, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := unhex(t, tc.in)
			got, err := Decode(in)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Is(tc.class, tc.constructed, tc.tag) || got.Indefinite != tc.indefinite {
				t.Fatalf("got %s indefinite=%v", got, got.Indefinite)
			}
			if !bytes.Equal(got.Value, unhex(t, tc.value)) {
				t.Fatalf("value % x, want %s", got.Value, tc.value)
			}
			if !bytes.Equal(got.Raw, in) {
				t.Fatalf("raw % x", got.Raw)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"empty", "", ErrTruncated},
		{"no length", "04", ErrTruncated},
		{"content short", "04 03 80 91", ErrTruncated},
		{"trailing", "04 02 80 91 00", ErrTrailing},
		{"indefinite primitive", "04 80 00 00", ErrLength},
		{"indefinite without EOC", "30 80 05 00", ErrTruncated},
		{"reserved length", "04 ff", ErrLength},
		{"too many length octets", "04 85 00 00 00 00 01", ErrLength},
		{"length octets truncated", "04 82 00", ErrTruncated},
		{"huge length", "04 84 ff ff ff ff 00", ErrTruncated},
		{"high tag truncated", "9f 81", ErrTruncated},
		{"high tag leading zero", "9f 80 32 00", ErrTag},
		{"high tag below 31", "9f 05 00", ErrTag},
		{"high tag too large", "9f ff ff ff ff 7f 00", ErrTag},
		{"inner length wrong", "30 80 04 09 00 00 00", ErrTruncated},
		{"stray EOC", "00 00", ErrUnexpected},
		{"too deep", strings.Repeat("30 80 ", MaxDepth+2) + strings.Repeat("00 00 ", MaxDepth+2), ErrDepth},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(unhex(t, tc.in))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestEOCInDefiniteContent(t *testing.T) {
	e, err := Decode(unhex(t, "30 02 00 00"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Children(); !errors.Is(err, ErrUnexpected) {
		t.Fatalf("children: %v", err)
	}
}

func TestEncode(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"[50] imsi", Prim(Context, 50, unhex(t, "00 01 01 21 43 65 87 f9")), "9f 32 08 00 01 01 21 43 65 87 f9"},
		{"[128]", Prim(Context, 128, []byte{0xff}), "9f 81 00 01 ff"},
		{"long length", Prim(Universal, 4, make([]byte, 200))[:3], "04 81 c8"},
		{"two-octet length", Prim(Universal, 4, make([]byte, 300))[:4], "04 82 01 2c"},
		{"int 0", Int(0), "02 01 00"},
		{"int 127", Int(127), "02 01 7f"},
		{"int 128", Int(128), "02 02 00 80"},
		{"int -1", Int(-1), "02 01 ff"},
		{"int -129", Int(-129), "02 02 ff 7f"},
		{"oid dialogue-as", OID("0.0.17.773.1.1.1"), "06 07 00 11 86 05 01 01 01"},
		{"oid cap v2", OID("0.4.0.0.1.0.50.1"), "06 07 04 00 00 01 00 32 01"},
		{"oid pen 32473", OID("1.3.6.1.4.1.32473.1.1"), "06 0a 2b 06 01 04 01 81 fd 59 01 01"},
		{"seq", Seq(Int(1), Prim(Context, 0, nil)), "30 05 02 01 01 80 00"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if want := unhex(t, tc.want); !bytes.Equal(tc.got, want) {
				t.Fatalf("got % x, want % x", tc.got, want)
			}
		})
	}
}

func TestIntOIDRoundTrip(t *testing.T) {
	for _, v := range []int64{0, 1, -1, 127, 128, -128, -129, 255, 256, 65535, 2147483647, -2147483648, 1 << 62} {
		got, err := ParseInt(IntContent(v))
		if err != nil || got != v {
			t.Errorf("int %d: got %d, %v", v, got, err)
		}
	}
	for _, oid := range []string{"0.0.17.773.1.1.1", "0.4.0.0.1.0.50.1", "0.4.0.1.1.1.0.0", "1.3.6.1.4.1.32473.1.1", "2.999.3"} {
		c, err := OIDContent(oid)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseOID(c)
		if err != nil || got != oid {
			t.Errorf("oid %s: got %s, %v", oid, got, err)
		}
	}
	for _, bad := range []string{"", "0", "3.1", "0.40", "1.x"} {
		if _, err := OIDContent(bad); err == nil {
			t.Errorf("OIDContent(%q) accepted", bad)
		}
	}
	for _, bad := range []string{"", "80 01", "2b 86"} {
		if _, err := ParseOID(unhex(t, bad)); err == nil {
			t.Errorf("ParseOID(%s) accepted", bad)
		}
	}
	for _, bad := range []string{"", "00 00 00 00 00 00 00 00 00"} {
		if _, err := ParseInt(unhex(t, bad)); err == nil {
			t.Errorf("ParseInt(%s) accepted", bad)
		}
	}
}

// TestRoundTripDefinite: every definite element re-encodes to its own bytes
// when its tree is rebuilt with Append.
func TestRoundTripDefinite(t *testing.T) {
	in := unhex(t, "62 4d 48 04 00 00 00 01 6b 1e 28 1c 06 07 00 11 86 05 01 01 01 a0 11 60 0f 80 02 07 80 a1 09 06 07 04 00 00 01 00 32 01 6c 25 a1 23 02 01 01 02 01 00 30 1b 80 01 64 82 08 04 10 94 71 10 32 54 76 9c 01 0c 9f 32 08 00 01 01 21 43 65 87 f9")
	tree, err := Decode(in)
	if err != nil {
		t.Fatal(err)
	}
	if out := reencode(t, tree); !bytes.Equal(out, in) {
		t.Fatalf("re-encoded % x", out)
	}
}

func reencode(t testing.TB, e TLV) []byte {
	if !e.Constructed {
		return Append(nil, e.Class, false, e.Tag, e.Value)
	}
	kids, err := e.Children()
	if err != nil {
		t.Fatal(err)
	}
	var content []byte
	for _, k := range kids {
		content = append(content, reencode(t, k)...)
	}
	return Append(nil, e.Class, true, e.Tag, content)
}

// FuzzDecode: the decoder never panics, and whatever it accepts re-encodes
// to a definite form that decodes to the same tree.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{"04 02 80 91", "9f 32 02 00 01", "6c 80 a1 03 02 01 01 00 00", "30 80 30 80 05 00 00 00 00 00", "04 81 02 80 91"} {
		f.Add(unhex(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tree, err := Decode(b)
		if err != nil {
			return
		}
		var walk func(TLV) ([]byte, bool)
		walk = func(e TLV) ([]byte, bool) {
			if !e.Constructed {
				return Append(nil, e.Class, false, e.Tag, e.Value), true
			}
			kids, err := e.Children()
			if err != nil {
				return nil, false // constructed content that is not TLVs is legal BER (e.g. OCTET STRING segments are TLVs, others opaque)
			}
			var c []byte
			for _, k := range kids {
				kb, ok := walk(k)
				if !ok {
					return nil, false
				}
				c = append(c, kb...)
			}
			return Append(nil, e.Class, true, e.Tag, c), true
		}
		out, ok := walk(tree)
		if !ok {
			return
		}
		again, err := Decode(out)
		if err != nil {
			t.Fatalf("re-encoding % x of % x does not decode: %v", out, b, err)
		}
		if again.Class != tree.Class || again.Tag != tree.Tag || again.Constructed != tree.Constructed {
			t.Fatalf("identifier changed")
		}
	})
}
