package trace

import (
	"io"
	"strings"
	"testing"

	"github.com/imcall/b2bua/scp/ss7/cap"
	vectors "github.com/imcall/b2bua/scp/ss7/ss7test"
	"github.com/imcall/b2bua/scp/ss7/tcap"
)

func TestDescribe(t *testing.T) {
	v := vectors.Load(t)
	tests := []struct {
		vec  string
		want []string
	}{
		{"m3ua-data-begin", []string{"M3UA DATA", "Routing Context: 1", "OPC 1, DPC 2, SI 3, NI 2", "SCCP UDT",
			"Called party: route-on-SSN ssn=146 gt=4930000001", "TCAP Begin", "otid: 00000001",
			"0.4.0.0.1.0.50.1 (CAP v2", "operation 0 (initialDP)", "serviceKey: 100",
			"calledPartyNumber: 491701234567 (NAI 4 international", "eventTypeBCSM: 12 (termAttemptAuthorized)", "iMSI: 001010123456789"}},
		{"tcap-end-connect", []string{"TCAP End", "dtid: 00000001", "result accepted", "operation 20 (connect)",
			"destinationRoutingAddress: 919200000201005060 (NAI 5", "= 192.0.2.10:5060"}},
		{"tcap-end-release-busy", []string{"operation 22 (releaseCall)", "cause: 17 (user busy)"}},
		{"tcap-end-missing-customer-record", []string{"ReturnError id 1, error 6 (missingCustomerRecord)"}},
		{"tcap-end-reject-mistyped", []string{"Reject id 1, problem invoke 2"}},
		{"tcap-abort-ac-not-supported", []string{"TCAP Abort", "reject-permanent", "service-user 2"}},
		{"tcap-abort-unrecognized-tid", []string{"p-abort cause: 1 (unrecognizedTransactionID)"}},
		{"tcap-end-connect-ipv6", []string{"extension 1.3.6.1.4.1.32473.1.1 (IP address): [2001:db8::10]:5060"}},
		{"m3ua-ntfy-as-active", []string{"M3UA NTFY", "Status: type 1, info 3"}},
		{"gotcap-end-aare-rrl", []string{"ReturnResultLast id 1, operation 71", "[universal 16] cons"}},
	}
	for _, tc := range tests {
		t.Run(tc.vec, func(t *testing.T) {
			b := v[tc.vec]
			var sb strings.Builder
			Describe(&sb, Guess(b), b)
			for _, w := range tc.want {
				if !strings.Contains(sb.String(), w) {
					t.Errorf("missing %q in:\n%s", w, sb.String())
				}
			}
		})
	}
}

// TestDescribeMSISDN: an InitialDP that asks by MSISDN shows the number,
// in calledPartyBCDNumber for CAP and in our extension for INAP.
func TestDescribeMSISDN(t *testing.T) {
	arg := vectors.Get(t, "cap-initialdp-msisdn-arg")
	bcd, err := cap.DecodeInitialDPArg(arg)
	if err != nil {
		t.Fatal(err)
	}
	inapNum, _ := bcd.CalledPartyBCDNumber.Encode()
	inap, err := cap.InitialDPArg{ServiceKey: 100, Extensions: []cap.Extension{{OID: cap.OIDMSISDN, Value: inapNum}}}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		arg  []byte
		want string
	}{
		"CAP":  {arg, "calledPartyBCDNumber: 441632960001 (type 1 international, plan 1 ISDN/E.164), MSISDN +441632960001"},
		"INAP": {inap, "extension 1.3.6.1.4.1.32473.1.3 (MSISDN): 441632960001 (type 1 international, plan 1 ISDN/E.164), MSISDN +441632960001"},
	} {
		t.Run(name, func(t *testing.T) {
			m, err := tcap.Message{Kind: tcap.Begin, OTID: []byte{0, 0, 0, 1},
				Components: []tcap.Component{{Kind: tcap.Invoke, InvokeID: 1, Op: tcap.Code{Local: cap.OpInitialDP}, Parameter: tc.arg}}}.Encode()
			if err != nil {
				t.Fatal(err)
			}
			var sb strings.Builder
			Describe(&sb, LayerTCAP, m)
			if !strings.Contains(sb.String(), tc.want) {
				t.Errorf("missing %q in:\n%s", tc.want, sb.String())
			}
		})
	}
}

func TestParseHex(t *testing.T) {
	for _, in := range []string{
		"01 00 03 04 00 00 00 08",
		"0100030400000008",
		"0000: 01 00 03 04\n0004: 00 00 00 08\n",
		"0x01, 0x00, 0x03, 0x04, 0x00, 0x00, 0x00, 0x08 # ASPUP_ACK",
		"01:00:03:04:00:00:00:08",
	} {
		b, err := ParseHex(in)
		if err != nil || len(b) != 8 || b[3] != 4 {
			t.Errorf("%q: % x %v", in, b, err)
		}
	}
	if _, err := ParseHex("01 0"); err == nil {
		t.Error("odd digit count accepted")
	}
}

func TestGuess(t *testing.T) {
	for in, want := range map[string]Layer{"\x01\x00": LayerM3UA, "\x09\x81": LayerSCCP, "\x11": LayerSCCP, "\x62\x00": LayerTCAP} {
		if got := Guess([]byte(in)); got != want {
			t.Errorf("% x: %s", in, got)
		}
	}
}

// FuzzDescribe: any input, at any layer, prints without panicking.
func FuzzDescribe(f *testing.F) {
	for _, b := range vectors.Load(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, l := range []Layer{LayerM3UA, LayerSCCP, LayerTCAP} {
			Describe(io.Discard, l, b)
		}
	})
}
