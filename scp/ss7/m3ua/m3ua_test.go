package m3ua

import (
	"bytes"
	"errors"
	"io"
	"testing"

	vectors "github.com/imcall/b2bua/scp/ss7/ss7test"
)

func TestEncodeVectors(t *testing.T) {
	v := vectors.Load(t)
	tests := []struct {
		name string
		msg  Message
	}{
		{"m3ua-aspup", ASPUp(1)},
		{"m3ua-aspup-ack", Message{Class: ClassASPSM, Type: TypeASPUPAck}},
		{"m3ua-aspac", ASPActive(TypeASPAC, TrafficOverride, 1)},
		{"m3ua-aspac-ack", ASPActive(TypeASPACAck, TrafficOverride, 1)},
		{"m3ua-ntfy-as-active", Notify(StatusTypeASStateChange, StatusASActive, 1)},
		{"m3ua-beat", Beat(TypeBEAT, U32(42))},
		{"m3ua-beat-ack", Beat(TypeBEATAck, U32(42))},
		{"m3ua-err-invalid-rc", Error(ErrCodeInvalidRoutingCtx)},
		{"m3ua-aspia", Message{Class: ClassASPTM, Type: TypeASPIA, Params: []Param{{TagRoutingContext, U32(1)}}}},
		{"m3ua-aspdn", Message{Class: ClassASPSM, Type: TypeASPDN}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := v[tc.name]
			if got := tc.msg.Encode(); !bytes.Equal(got, want) {
				t.Fatalf("encode\n got % x\nwant % x", got, want)
			}
			back, err := Decode(want)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(back.Encode(), want) {
				t.Fatalf("round trip % x", back.Encode())
			}
		})
	}
}

func TestDataVector(t *testing.T) {
	want := vectors.Get(t, "m3ua-data-begin")
	m, err := Decode(want)
	if err != nil {
		t.Fatal(err)
	}
	if m.Name() != "DATA" {
		t.Fatalf("name %s", m.Name())
	}
	if rc, _ := m.Uint32(TagRoutingContext); rc != 1 {
		t.Fatalf("rc %d", rc)
	}
	pd, err := DataOf(m)
	if err != nil {
		t.Fatal(err)
	}
	if pd.OPC != 1 || pd.DPC != 2 || pd.SI != SISCCP || pd.NI != 2 || pd.MP != 0 || pd.SLS != 1 || len(pd.Data) != 123-4-12 {
		t.Fatalf("protocol data %+v", pd)
	}
	if got := Data(1, pd).Encode(); !bytes.Equal(got, want) {
		t.Fatalf("encode\n got % x\nwant % x", got, want)
	}
	// Framed on a stream, back to back.
	r := bytes.NewReader(append(append([]byte{}, want...), vectors.Get(t, "m3ua-beat")...))
	for range 2 {
		if _, err := ReadMessage(r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ReadMessage(r); err != io.EOF {
		t.Fatalf("after two messages: %v", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"short", []byte{1, 0, 3}, ErrTruncated},
		{"version", []byte{2, 0, 3, 4, 0, 0, 0, 8}, ErrVersion},
		{"length mismatch", []byte{1, 0, 3, 4, 0, 0, 0, 12}, ErrLength},
		{"param truncated", []byte{1, 0, 3, 1, 0, 0, 0, 12, 0, 0x11, 0, 8}, ErrParameter},
		{"param length < 4", []byte{1, 0, 3, 1, 0, 0, 0, 12, 0, 0x11, 0, 2}, ErrParameter},
		{"param header cut", []byte{1, 0, 3, 1, 0, 0, 0, 10, 0, 0x11}, ErrLength},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Decode(tc.in); !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := DecodeProtocolData(make([]byte, 11)); !errors.Is(err, ErrTruncated) {
		t.Fatalf("short protocol data: %v", err)
	}
	for _, in := range [][]byte{{1, 0, 3, 4, 0, 0, 0, 4}, {1, 0, 3, 4, 0, 1, 0, 0}, {9, 0, 3, 4, 0, 0, 0, 8}} {
		if _, err := ReadMessage(bytes.NewReader(in)); err == nil {
			t.Errorf("ReadMessage(% x) accepted", in)
		}
	}
	if _, err := ReadMessage(bytes.NewReader([]byte{1, 0, 3, 4, 0, 0, 0, 16, 1})); !errors.Is(err, ErrTruncated) {
		t.Errorf("truncated body: %v", err)
	}
}

// FuzzDecode: no panic; whatever decodes re-encodes to the same bytes
// (every parameter length and pad is determined by the input).
func FuzzDecode(f *testing.F) {
	for _, b := range vectors.Load(f) {
		if len(b) >= 8 && b[0] == 1 {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		if m.Is(ClassXFER, TypeDATA) {
			_, _ = DataOf(m)
		}
		out := m.Encode()
		if len(out) != len(b) {
			t.Fatalf("re-encoded length %d, input %d", len(out), len(b))
		}
	})
}
