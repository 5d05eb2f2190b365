package sccp

import (
	"bytes"
	"errors"
	"testing"

	"github.com/imcall/b2bua/scp/ss7/m3ua"
	vectors "github.com/imcall/b2bua/scp/ss7/ss7test"
)

var gtAddr = Address{RouteOnSSN: true, SSN: 146, GT: &GlobalTitle{Indicator: 4, TT: 0, NP: 1, NAI: 4, Digits: "4930000001"}}

func TestAddressVectors(t *testing.T) {
	v := vectors.Load(t)
	tests := []struct {
		name string
		addr Address
	}{
		{"sccp-addr-gt-ssn", gtAddr},
		{"sccp-addr-pc-ssn", Address{RouteOnSSN: true, HasPC: true, PC: 2, SSN: 146}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.addr.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, v[tc.name]) {
				t.Fatalf("got % x want % x", got, v[tc.name])
			}
			back, err := DecodeAddress(got)
			if err != nil {
				t.Fatal(err)
			}
			if back.String() != tc.addr.String() {
				t.Fatalf("round trip %s, want %s", back, tc.addr)
			}
		})
	}
}

func TestAddressGTIs(t *testing.T) {
	for _, a := range []Address{
		{GT: &GlobalTitle{Indicator: 1, NAI: 4, Digits: "123"}},
		{GT: &GlobalTitle{Indicator: 2, TT: 9, Digits: "1234"}},
		{SSN: 6, GT: &GlobalTitle{Indicator: 3, TT: 0, NP: 1, Digits: "12345"}},
		{HasPC: true, PC: 0x3fff, SSN: 241, GT: &GlobalTitle{Indicator: 4, NP: 1, NAI: 4, Digits: "491"}},
	} {
		b, err := a.Encode()
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeAddress(b)
		if err != nil || back.String() != a.String() {
			t.Fatalf("%s: got %s, %v", a, back, err)
		}
	}
}

// TestUDTVector decodes the SCCP part of the verified M3UA DATA and
// re-encodes it byte for byte.
func TestUDTVector(t *testing.T) {
	m, err := m3ua.Decode(vectors.Get(t, "m3ua-data-begin"))
	if err != nil {
		t.Fatal(err)
	}
	pd, err := m3ua.DataOf(m)
	if err != nil {
		t.Fatal(err)
	}
	u, err := Decode(pd.Data)
	if err != nil {
		t.Fatal(err)
	}
	if u.Type != TypeUDT || u.Class != Class1|ReturnOnError || u.Called.String() != gtAddr.String() || u.Calling.GT == nil || u.Calling.GT.Digits != "4930000002" {
		t.Fatalf("decoded %+v", u)
	}
	if !bytes.Equal(u.Data, vectors.Get(t, "tcap-begin-initialdp")) {
		t.Fatal("data is not the TC-BEGIN")
	}
	out, err := u.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, pd.Data) {
		t.Fatalf("encode\n got % x\nwant % x", out, pd.Data)
	}
}

func TestXUDTAndUDTS(t *testing.T) {
	pc := Address{RouteOnSSN: true, HasPC: true, PC: 1, SSN: 146}
	for _, m := range []Message{
		{Type: TypeXUDT, Class: Class0, HopCounter: 15, Called: pc, Calling: gtAddr, Data: []byte{1, 2, 3}},
		{Type: TypeUDTS, Cause: 3, Called: gtAddr, Calling: pc, Data: []byte{9}},
		{Type: TypeXUDTS, Cause: 1, HopCounter: 3, Called: gtAddr, Calling: pc, Data: []byte{9}},
	} {
		b, err := m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		back, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if back.Type != m.Type || back.Cause != m.Cause || back.Class != m.Class || back.HopCounter != m.HopCounter || !bytes.Equal(back.Data, m.Data) {
			t.Fatalf("got %+v want %+v", back, m)
		}
	}
	// XUDT with an optional part (importance) is accepted; a segmentation
	// parameter is refused.
	x := []byte{0x11, 0x80, 0x0f, 4, 6, 8, 9, 2, 0x42, 0x92, 2, 0x42, 0x92, 1, 0xaa, 0x12, 1, 0x05, 0}
	if m, err := Decode(x); err != nil || !bytes.Equal(m.Data, []byte{0xaa}) {
		t.Fatalf("XUDT with optional part: %+v %v", m, err)
	}
	x[15] = 0x10
	if _, err := Decode(x); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("segmented XUDT: %v", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	good := []byte{0x09, 0x80, 3, 5, 7, 2, 0x42, 0x92, 2, 0x42, 0x92, 1, 0xaa}
	if _, err := Decode(good); err != nil {
		t.Fatal(err)
	}
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte{}, good...)) }
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"CR", []byte{0x01, 0, 0, 0, 0}, ErrUnsupported},
		{"fixed part", []byte{0x09, 0x80, 3}, ErrTruncated},
		{"zero pointer", mut(func(b []byte) []byte { b[2] = 0; return b }), ErrPointer},
		{"pointer past end", mut(func(b []byte) []byte { b[4] = 40; return b }), ErrPointer},
		{"data length past end", mut(func(b []byte) []byte { b[11] = 5; return b }), ErrTruncated},
		{"trailing", append(append([]byte{}, good...), 0), ErrPointer},
		{"class 2", mut(func(b []byte) []byte { b[1] = 2; return b }), ErrUnsupported},
		{"bad GTI", mut(func(b []byte) []byte { b[6] = 0x42 | 7<<2; return b }), ErrAddress},
		{"empty data", []byte{0x09, 0x80, 3, 5, 7, 2, 0x42, 0x92, 2, 0x42, 0x92, 0}, ErrTruncated},
		{"addr extra octets", []byte{0x09, 0x80, 3, 6, 8, 3, 0x42, 0x92, 1, 2, 0x42, 0x92, 1, 0xaa}, ErrAddress},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Decode(tc.in); !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := (Address{HasPC: true, PC: 0x4000}).Encode(); !errors.Is(err, ErrAddress) {
		t.Fatalf("15-bit PC: %v", err)
	}
}

// FuzzDecode: no panic; a decoded message re-encodes and decodes again to
// the same content.
func FuzzDecode(f *testing.F) {
	f.Add([]byte{0x09, 0x80, 3, 5, 7, 2, 0x42, 0x92, 2, 0x42, 0x92, 1, 0xaa})
	f.Add([]byte{0x11, 0x80, 0x0f, 4, 6, 8, 9, 2, 0x42, 0x92, 2, 0x42, 0x92, 1, 0xaa, 0x12, 1, 0x05, 0})
	if m, err := m3ua.Decode(vectors.Get(f, "m3ua-data-begin")); err == nil {
		if pd, err := m3ua.DataOf(m); err == nil {
			f.Add(pd.Data)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		out, err := m.Encode()
		if err != nil {
			return // e.g. a GT with hex digits we do not send
		}
		back, err := Decode(out)
		if err != nil {
			t.Fatalf("re-encoded % x does not decode: %v", out, err)
		}
		if back.Called.String() != m.Called.String() || back.Calling.String() != m.Calling.String() || !bytes.Equal(back.Data, m.Data) {
			t.Fatalf("round trip changed %+v → %+v", m, back)
		}
	})
}
