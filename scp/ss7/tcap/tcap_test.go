package tcap

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	vectors "github.com/imcall/b2bua/scp/ss7/ss7test"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const capV2 = "0.4.0.0.1.0.50.1"

var tid1 = []byte{0, 0, 0, 1}

func accepted(ac string) *Dialogue {
	return &Dialogue{Kind: AARE, AC: ac, Result: ResultAccepted, DiagSource: DiagSourceUser, Diag: DiagNull}
}

func u8(v uint8) *uint8 { return &v }

// TestVectors encodes each verified message from its fields and decodes it
// back to the same bytes.
func TestVectors(t *testing.T) {
	v := vectors.Load(t)
	idp := v["cap-initialdp-arg"]
	tests := []struct {
		name string
		msg  Message
	}{
		{"tcap-begin-initialdp", Message{Kind: Begin, OTID: tid1, Dialogue: &Dialogue{Kind: AARQ, AC: capV2},
			Components: []Component{{Kind: Invoke, InvokeID: 1, Op: Code{Local: 0}, Parameter: idp}}}},
		{"tcap-end-connect", Message{Kind: End, DTID: tid1, Dialogue: accepted(capV2),
			Components: []Component{{Kind: Invoke, InvokeID: 1, Op: Code{Local: 20}, Parameter: v["cap-connect-arg"]}}}},
		{"tcap-end-release-busy", Message{Kind: End, DTID: tid1, Dialogue: accepted(capV2),
			Components: []Component{{Kind: Invoke, InvokeID: 1, Op: Code{Local: 22}, Parameter: v["cap-release-busy-arg"]}}}},
		{"tcap-end-missing-customer-record", Message{Kind: End, DTID: tid1, Dialogue: accepted(capV2),
			Components: []Component{{Kind: ReturnError, InvokeID: 1, Error: Code{Local: 6}}}}},
		{"tcap-end-reject-mistyped", Message{Kind: End, DTID: tid1, Dialogue: accepted(capV2),
			Components: []Component{{Kind: Reject, InvokeID: 1, ProblemType: ProblemInvoke, Problem: InvokeMistypedArgument}}}},
		{"tcap-abort-ac-not-supported", Message{Kind: Abort, DTID: tid1,
			Dialogue: &Dialogue{Kind: AARE, AC: capV2, Result: ResultRejectPermanent, DiagSource: DiagSourceUser, Diag: DiagACNameNotSupported}}},
		{"tcap-abort-unrecognized-tid", Message{Kind: Abort, DTID: tid1, PAbortCause: u8(PAbortUnrecognizedTransactionID)}},
		{"inap-begin-initialdp", Message{Kind: Begin, OTID: []byte{0, 0, 0, 2}, Dialogue: &Dialogue{Kind: AARQ, AC: "0.4.0.1.1.1.0.0"},
			Components: []Component{{Kind: Invoke, InvokeID: 1, Op: Code{Local: 0}, Parameter: unhex(t, "30 10 80 01 64 82 08 04 10 94 71 10 32 54 76 9c 01 0c")}}}},
		{"gotcap-end-aare-rrl", Message{Kind: End, DTID: []byte{0x11, 0x11, 0x11, 0x11}, Dialogue: accepted("0.4.0.0.1.0.29.3"),
			Components: []Component{{Kind: ReturnResult, InvokeID: 1, HasResult: true, Op: Code{Local: 0x47}, Parameter: unhex(t, "30 04 de ad be ef")}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := v[tc.name]
			got, err := tc.msg.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("encode\n got % x\nwant % x", got, want)
			}
			back, err := Decode(want)
			if err != nil {
				t.Fatal(err)
			}
			again, err := back.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, want) {
				t.Fatalf("round trip\n got % x\nwant % x", again, want)
			}
		})
	}
}

func TestDecodeFields(t *testing.T) {
	m, err := Decode(vectors.Get(t, "tcap-abort-ac-not-supported"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Kind != Abort || m.Dialogue == nil || m.Dialogue.Kind != AARE || m.Dialogue.Result != ResultRejectPermanent || m.Dialogue.Diag != DiagACNameNotSupported || m.Dialogue.AC != capV2 {
		t.Fatalf("%+v %+v", m, m.Dialogue)
	}
	m, err = Decode(vectors.Get(t, "tcap-end-reject-mistyped"))
	if err != nil {
		t.Fatal(err)
	}
	if c := m.Components[0]; c.Kind != Reject || c.InvokeID != 1 || c.ProblemType != ProblemInvoke || c.Problem != InvokeMistypedArgument {
		t.Fatalf("%+v", c)
	}
}

// TestIndefiniteAndLenient: forms seen in real traces — indefinite lengths,
// long-form lengths, AARQ without protocol-version, Reject with NULL ID.
func TestIndefiniteAndLenient(t *testing.T) {
	tests := []struct {
		name, in string
		check    func(Message) bool
	}{
		{"indefinite components", "62 80 48 01 07 6c 80 a1 06 02 01 01 02 01 00 00 00 00 00",
			func(m Message) bool {
				return m.Kind == Begin && len(m.Components) == 1 && m.Components[0].Op.Local == 0
			}},
		{"long-form lengths", "62 81 12 48 04 00 00 00 01 6c 81 09 a1 81 06 02 01 05 02 01 00",
			func(m Message) bool { return m.Components[0].InvokeID == 5 }},
		{"AARQ without version", "62 19 48 01 01 6b 14 28 12 06 07 00 11 86 05 01 01 01 a0 07 60 05 a1 03 06 01 2a",
			func(m Message) bool { return m.Dialogue.Kind == AARQ && m.Dialogue.AC == "1.2" }},
		{"reject NULL id", "64 0c 49 01 01 6c 07 a4 05 05 00 80 01 00",
			func(m Message) bool {
				return m.Components[0].NoInvokeID && m.Components[0].ProblemType == ProblemGeneral
			}},
		{"continue", "65 12 48 02 01 02 49 01 09 6c 09 a1 07 02 01 02 02 02 00 ff",
			func(m Message) bool { return m.Kind == Continue && len(m.OTID) == 2 && m.Components[0].Op.Local == 255 }},
		{"global opcode", "62 0e 48 01 01 6c 09 a1 07 02 01 01 06 02 2a 03",
			func(m Message) bool { return m.Components[0].Op.Global == "1.2.3" }},
		{"linked id", "62 10 48 01 01 6c 0b a1 09 02 01 02 80 01 01 02 01 17",
			func(m Message) bool { return *m.Components[0].LinkedID == 1 && m.Components[0].Op.Local == 23 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Decode(unhex(t, tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(m) {
				t.Fatalf("decoded %+v", m)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name, in string
		want     error
	}{
		{"empty", "", ErrMalformed},
		{"universal seq", "30 00", ErrUnknown},
		{"unknown type", "66 03 48 01 01", ErrUnknown},
		{"begin without otid", "62 00", ErrMalformed},
		{"tid too long", "62 07 48 05 01 02 03 04 05", ErrMalformed},
		{"tid empty", "62 02 48 00", ErrMalformed},
		{"continue without dtid", "65 03 48 01 01", ErrMalformed},
		{"trailing in message", "62 03 48 01 01 00", ErrMalformed},
		{"outer length short", "62 05 48 01 01", ErrMalformed},
		{"unknown element", "62 06 48 01 01 4c 01 00", ErrUnknown},
		{"empty components", "62 05 48 01 01 6c 00", ErrMalformed},
		{"unknown component", "62 0a 48 01 01 6c 05 a5 03 02 01 01", ErrUnknown},
		{"invoke without op", "62 0a 48 01 01 6c 05 a1 03 02 01 01", ErrMalformed},
		{"invoke id too big", "62 0e 48 01 01 6c 09 a1 07 02 02 01 00 02 01 00", ErrMalformed},
		{"invoke extra element", "62 11 48 01 01 6c 0c a1 0a 02 01 01 02 01 00 05 00 05 00", ErrUnknown},
		{"reject without problem", "64 0a 49 01 01 6c 05 a4 03 02 01 01", ErrMalformed},
		{"dialogue not external", "62 07 48 01 01 6b 02 30 00", ErrMalformed},
		{"dialogue wrong AS", "62 17 48 01 01 6b 12 28 10 06 02 2a 03 a0 0a 60 08 a1 06 06 04 04 00 00 01", ErrUnknown},
		{"AARE without result", "64 1a 49 01 01 6b 15 28 13 06 07 00 11 86 05 01 01 01 a0 08 61 06 a1 04 06 02 2a 03", ErrMalformed},
		{"inner length wrong", "62 0a 48 01 01 6c 05 a1 04 02 01 01", ErrMalformed},
		{"p-abort out of range", "67 06 49 01 01 4a 01 ff", ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Decode(unhex(t, tc.in)); !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
}

// FuzzDecode: no panic; a decoded message re-encodes and decodes again.
func FuzzDecode(f *testing.F) {
	for name, b := range vectors.Load(f) {
		if strings.HasPrefix(name, "tcap-") || strings.HasPrefix(name, "inap-") || strings.HasPrefix(name, "gotcap-") {
			f.Add(b)
		}
	}
	f.Add(unhex(f, "62 80 48 01 07 6c 80 a1 06 02 01 01 02 01 00 00 00 00 00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		out, err := m.Encode()
		if err != nil {
			return // e.g. Unidirectional, which we never send
		}
		back, err := Decode(out)
		if err != nil {
			t.Fatalf("re-encoded % x does not decode: %v", out, err)
		}
		if back.Kind != m.Kind || len(back.Components) != len(m.Components) || (back.Dialogue == nil) != (m.Dialogue == nil) {
			t.Fatalf("round trip changed %+v → %+v", m, back)
		}
	})
}
