package cap

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"

	vectors "github.com/imcall/b2bua/scp/ss7/ss7test"
	"github.com/imcall/b2bua/scp/ss7/tcap"
)

func u8(v uint8) *uint8 { return &v }

func TestInitialDPVector(t *testing.T) {
	want := vectors.Get(t, "cap-initialdp-arg")
	a := InitialDPArg{
		ServiceKey:        100,
		CalledPartyNumber: &Number{NAI: 4, NPI: 1, Digits: "491701234567"},
		EventTypeBCSM:     u8(EventTermAttemptAuthorized),
		IMSI:              "001010123456789",
	}
	got, err := a.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("encode\n got % x\nwant % x", got, want)
	}
	back, err := DecodeInitialDPArg(want)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := back.Encode()
	if !bytes.Equal(again, want) {
		t.Fatalf("round trip % x", again)
	}
	// The same argument inside the verified TC-BEGIN.
	m, err := tcap.Decode(vectors.Get(t, "tcap-begin-initialdp"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.Components[0].Parameter, want) {
		t.Fatal("TC-BEGIN does not carry the InitialDP vector")
	}
}

// TestInitialDPMSISDNVector: a lookup by MSISDN encodes the number as
// calledPartyBCDNumber [56], byte for byte what tshark decoded as an
// international E.164 number, and reads back.
func TestInitialDPMSISDNVector(t *testing.T) {
	want := vectors.Get(t, "cap-initialdp-msisdn-arg")
	a := InitialDPArg{
		ServiceKey:           100,
		CalledPartyNumber:    &Number{NAI: 4, NPI: 1, Digits: "491701234567"},
		EventTypeBCSM:        u8(EventTermAttemptAuthorized),
		CalledPartyBCDNumber: &BCDNumber{TON: TONInternational, NPI: NPIE164, Digits: "441632960001"},
	}
	got, err := a.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("encode\n got % x\nwant % x", got, want)
	}
	back, err := DecodeInitialDPArg(want)
	if err != nil {
		t.Fatal(err)
	}
	if n := back.CalledPartyBCDNumber; n == nil || *n != *a.CalledPartyBCDNumber || back.IMSI != "" {
		t.Fatalf("decoded %+v, number %+v", back, n)
	}
}

func TestBCDNumber(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want BCDNumber
		err  bool
	}{
		{"even", []byte{0x91, 0x44, 0x61, 0x23, 0x69, 0x00, 0x10}, BCDNumber{TON: 1, NPI: 1, Digits: "441632960001"}, false},
		{"odd with end mark", []byte{0x91, 0x14, 0x87, 0x08, 0x50, 0x40, 0xf7}, BCDNumber{TON: 1, NPI: 1, Digits: "41788005047"}, false},
		{"national, service codes", []byte{0xa1, 0xba, 0xfc}, BCDNumber{TON: 2, NPI: 1, Digits: "*#a"}, false},
		{"no digits", []byte{0x81}, BCDNumber{TON: 0, NPI: 1}, false},
		{"empty", nil, BCDNumber{}, true},
		{"end mark inside", []byte{0x91, 0xf4, 0x21}, BCDNumber{}, true},
		{"too long", append([]byte{0x91}, make([]byte, 41)...), BCDNumber{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeBCDNumber(tc.in)
			if tc.err {
				if !errors.Is(err, ErrValue) {
					t.Fatalf("got %+v, %v; want ErrValue", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
	if _, err := (BCDNumber{TON: 1, NPI: 1, Digits: "44*1"}).Encode(); !errors.Is(err, ErrValue) {
		t.Errorf("a non-digit was encoded: %v", err)
	}
}

func TestConnectAndReleaseVectors(t *testing.T) {
	v := vectors.Load(t)
	ap := netip.MustParseAddrPort("192.0.2.10:5060")
	c, err := ConnectTo("9", ap)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, v["cap-connect-arg"]) {
		t.Fatalf("connect\n got % x\nwant % x", got, v["cap-connect-arg"])
	}
	back, err := DecodeConnectArg(got)
	if err != nil {
		t.Fatal(err)
	}
	if back.DestinationRoutingAddress.Digits != "919200000201005060" {
		t.Fatalf("digits %s", back.DestinationRoutingAddress.Digits)
	}
	if dst, err := back.Destination("9"); err != nil || dst != ap {
		t.Fatalf("destination %v %v", dst, err)
	}
	for name, cause := range map[string]uint8{"cap-release-busy-arg": CauseUserBusy} {
		if got := EncodeReleaseCallArg(Cause{Value: cause}); !bytes.Equal(got, v[name]) {
			t.Fatalf("%s: % x", name, got)
		}
	}
	// The absent End differs from the busy End only in the cause.
	m, err := tcap.Decode(v["tcap-end-release-absent"])
	if err != nil {
		t.Fatal(err)
	}
	if c, err := DecodeReleaseCallArg(m.Components[0].Parameter); err != nil || c.Value != CauseSubscriberAbsent || c.Location != 0 {
		t.Fatalf("absent cause %+v %v", c, err)
	}
}

func TestConnectIPv6Vector(t *testing.T) {
	m, err := tcap.Decode(vectors.Get(t, "tcap-end-connect-ipv6"))
	if err != nil {
		t.Fatal(err)
	}
	param := m.Components[0].Parameter
	v6 := netip.MustParseAddrPort("[2001:db8::10]:5060")
	n, _ := EncodeRoutingNumber("9", netip.MustParseAddrPort("192.0.2.10:5060"))
	a := ConnectArg{DestinationRoutingAddress: n, Extensions: []Extension{AddressExtension(v6)}}
	got, err := a.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, param) {
		t.Fatalf("encode\n got % x\nwant % x", got, param)
	}
	back, err := DecodeConnectArg(param)
	if err != nil {
		t.Fatal(err)
	}
	if dst, err := back.Destination("9"); err != nil || dst != v6 {
		t.Fatalf("destination %v %v", dst, err)
	}
	// ConnectTo for IPv6 yields a number and the extension, and reads back.
	c, err := ConnectTo("9", v6)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := c.Encode()
	c2, err := DecodeConnectArg(b)
	if err != nil {
		t.Fatal(err)
	}
	if dst, _ := c2.Destination("9"); dst != v6 {
		t.Fatalf("IPv6 round trip %v", dst)
	}
}

// TestThirdParty decodes RestComm jSS7's published CAP encodings.
func TestThirdParty(t *testing.T) {
	v := vectors.Load(t)
	idp, err := DecodeInitialDPArg(v["jss7-initialdp-arg"])
	if err != nil {
		t.Fatal(err)
	}
	if idp.ServiceKey != 110 || idp.IMSI != "607029900140199" || idp.EventTypeBCSM == nil || *idp.EventTypeBCSM != EventCollectedInfo {
		t.Fatalf("jss7 InitialDP %+v", idp)
	}
	if idp.CalledPartyNumber == nil || idp.CalledPartyNumber.NAI != 3 || idp.CalledPartyNumber.NPI != 1 || idp.CallingPartyNumber == nil {
		t.Fatalf("jss7 numbers %+v %+v", idp.CalledPartyNumber, idp.CallingPartyNumber)
	}
	// jSS7's calledPartyBCDNumber, inside an InitialDPArg of ours.
	bcd := append([]byte{0x30, byte(3 + len(v["jss7-called-bcd"])), 0x80, 0x01, 0x01}, v["jss7-called-bcd"]...)
	idp, err = DecodeInitialDPArg(bcd)
	if err != nil {
		t.Fatal(err)
	}
	if n := idp.CalledPartyBCDNumber; n == nil || *n != (BCDNumber{TON: TONInternational, NPI: NPIE164, Digits: "41788005047"}) {
		t.Fatalf("jss7 calledPartyBCDNumber %+v", n)
	}
	c, err := DecodeConnectArg(v["jss7-connect-arg"])
	if err != nil {
		t.Fatal(err)
	}
	if n := c.DestinationRoutingAddress; n.NAI != 2 || n.NPI != 1 || n.Digits != "972201" {
		t.Fatalf("jss7 connect %+v", n)
	}
	if b, _ := c.Encode(); !bytes.Equal(b, v["jss7-connect-arg"]) {
		t.Fatalf("jss7 connect re-encode % x", b)
	}
	cause, err := DecodeReleaseCallArg(v["jss7-release-arg"])
	if err != nil || cause.Location != 4 || cause.Value != CauseNormalClearing {
		t.Fatalf("jss7 release %+v %v", cause, err)
	}
	if b := EncodeReleaseCallArg(cause); !bytes.Equal(b, v["jss7-release-arg"]) {
		t.Fatalf("jss7 release re-encode % x", b)
	}
}

func TestINAPIMSIExtension(t *testing.T) {
	imsi, _ := EncodeIMSI("001010123456789")
	a := InitialDPArg{ServiceKey: 100, CalledPartyNumber: &Number{NAI: 4, NPI: 1, Digits: "491701234567"},
		EventTypeBCSM: u8(12), Extensions: []Extension{{OID: OIDIMSI, Value: imsi}}}
	b, err := a.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeInitialDPArg(b)
	if err != nil {
		t.Fatal(err)
	}
	v, ok := Find(back.Extensions, OIDIMSI)
	if !ok {
		t.Fatal("no IMSI extension")
	}
	if s, err := DecodeIMSI(v); err != nil || s != "001010123456789" {
		t.Fatalf("IMSI %s %v", s, err)
	}
}

func TestRoutingNumberErrors(t *testing.T) {
	for _, d := range []string{
		"819200000201005060", // wrong prefix
		"9192000002010050",   // short
		"919200000201005060" + "1",
		"925600000201005060", // octet 256
		"919200000201000000", // port 0
		"919200000201099999", // port > 65535
		"91920000020100506a",
	} {
		if _, err := DecodeRoutingNumber("9", Number{Digits: d}); !errors.Is(err, ErrValue) {
			t.Errorf("%s: %v", d, err)
		}
	}
	if _, err := EncodeRoutingNumber("9", netip.AddrPort{}); err == nil {
		t.Error("invalid address accepted")
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		f    func([]byte) error
	}{
		{"idp not sequence", []byte{0x04, 0x00}, func(b []byte) error { _, err := DecodeInitialDPArg(b); return err }},
		{"idp no service key", []byte{0x30, 0x03, 0x9c, 0x01, 0x0c}, func(b []byte) error { _, err := DecodeInitialDPArg(b); return err }},
		{"idp imsi too short", []byte{0x30, 0x07, 0x80, 0x01, 0x01, 0x9f, 0x32, 0x01, 0x00}, func(b []byte) error { _, err := DecodeInitialDPArg(b); return err }},
		{"idp imsi bad digit", []byte{0x30, 0x09, 0x80, 0x01, 0x01, 0x9f, 0x32, 0x03, 0x00, 0xa1, 0x21}, func(b []byte) error { _, err := DecodeInitialDPArg(b); return err }},
		{"idp bcd number empty", []byte{0x30, 0x06, 0x80, 0x01, 0x01, 0x9f, 0x38, 0x00}, func(b []byte) error { _, err := DecodeInitialDPArg(b); return err }},
		{"idp bcd number constructed", []byte{0x30, 0x06, 0x80, 0x01, 0x01, 0xbf, 0x38, 0x00}, func(b []byte) error { _, err := DecodeInitialDPArg(b); return err }},
		{"idp number short", []byte{0x30, 0x06, 0x80, 0x01, 0x01, 0x82, 0x01, 0x04}, func(b []byte) error { _, err := DecodeInitialDPArg(b); return err }},
		{"idp trailing", []byte{0x30, 0x03, 0x80, 0x01, 0x01, 0x00}, func(b []byte) error { _, err := DecodeInitialDPArg(b); return err }},
		{"connect empty", []byte{0x30, 0x00}, func(b []byte) error { _, err := DecodeConnectArg(b); return err }},
		{"connect two numbers", []byte{0x30, 0x0a, 0xa0, 0x08, 0x04, 0x02, 0x02, 0x10, 0x04, 0x02, 0x02, 0x10}, func(b []byte) error { _, err := DecodeConnectArg(b); return err }},
		{"release short cause", []byte{0x04, 0x01, 0x80}, func(b []byte) error { _, err := DecodeReleaseCallArg(b); return err }},
		{"release no ext bit", []byte{0x04, 0x02, 0x00, 0x91}, func(b []byte) error { _, err := DecodeReleaseCallArg(b); return err }},
		{"release tagged", []byte{0xa2, 0x00}, func(b []byte) error { _, err := DecodeReleaseCallArg(b); return err }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.f(tc.in)
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrValue) {
				t.Fatalf("err %v", err)
			}
		})
	}
}

// FuzzDecode feeds the three argument decoders; none may panic, and what
// they accept re-encodes and decodes again.
func FuzzDecode(f *testing.F) {
	v := vectors.Load(f)
	for _, n := range []string{"cap-initialdp-arg", "cap-initialdp-msisdn-arg", "cap-connect-arg", "cap-release-busy-arg", "jss7-initialdp-arg", "jss7-connect-arg", "jss7-release-arg"} {
		f.Add(v[n])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if a, err := DecodeInitialDPArg(b); err == nil {
			if out, err := a.Encode(); err == nil {
				if _, err := DecodeInitialDPArg(out); err != nil {
					t.Fatalf("InitialDP re-encoding: %v", err)
				}
			}
		}
		if a, err := DecodeConnectArg(b); err == nil {
			if out, err := a.Encode(); err == nil {
				if _, err := DecodeConnectArg(out); err != nil {
					t.Fatalf("Connect re-encoding: %v", err)
				}
			}
			_, _ = a.Destination("9")
		}
		if c, err := DecodeReleaseCallArg(b); err == nil {
			if _, err := DecodeReleaseCallArg(EncodeReleaseCallArg(c)); err != nil {
				t.Fatalf("ReleaseCall re-encoding: %v", err)
			}
		}
	})
}
