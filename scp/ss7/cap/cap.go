// Package cap encodes and decodes the CAMEL Application Part (3GPP TS
// 29.078) operations that ask a gsmSCF where to route a call — InitialDP,
// Connect, ReleaseCall, Continue — with their ISUP-format parameters (Q.763
// numbers, Q.850 causes) and the MAP TBCD IMSI. The same encodings serve
// Core INAP CS-1 (ETS 300 374-1), which uses the same operation codes and
// tags for this subset, but has no IMSI field.
//
// It also defines the private convention by which an SCP tells the B2BUA
// an IP address and port: a routing number in Connect's
// destinationRoutingAddress (IPv4), or an extension field (IPv6).
package cap

import (
	"errors"
	"fmt"

	"github.com/imcall/b2bua/scp/ss7/ber"
	"github.com/imcall/b2bua/scp/ss7/internal/digits"
)

// Operation codes, local values (TS 29.078 CAP-operationcodes).
const (
	OpInitialDP              = 0
	OpConnect                = 20
	OpReleaseCall            = 22
	OpRequestReportBCSMEvent = 23
	OpEventReportBCSM        = 24
	OpContinue               = 31
	OpActivityTest           = 55
)

// Error codes, local values (TS 29.078 CAP-errorcodes).
const (
	ErrCodeMissingCustomerRecord       = 6
	ErrCodeMissingParameter            = 7
	ErrCodeParameterOutOfRange         = 8
	ErrCodeSystemFailure               = 11
	ErrCodeTaskRefused                 = 12
	ErrCodeUnexpectedComponentSequence = 14
	ErrCodeUnexpectedDataValue         = 15
	ErrCodeUnexpectedParameter         = 16
)

// Application-context names (TS 29.078 CAP-object-identifiers; INAP from
// ETS 300 374-1 as registered by Wireshark's INAP dissector).
const (
	ACCAPv1   = "0.4.0.0.1.0.50.0"
	ACCAPv2   = "0.4.0.0.1.0.50.1" // CAP-v2-gsmSSF-to-gsmSCF-AC
	ACCAPv3   = "0.4.0.0.1.21.3.4"
	ACCAPv4   = "0.4.0.0.1.23.3.4"
	ACINAPCS1 = "0.4.0.1.1.1.0.0" // Core-INAP-CS1-SSP-to-SCP-AC
)

// EventTypeBCSM values used here (TS 29.078 CAP-datatypes EventTypeBCSM).
const (
	EventCollectedInfo         = 2
	EventTermAttemptAuthorized = 12
)

// Q.850 cause values the SCP answers with.
const (
	CauseUnallocatedNumber = 1
	CauseNormalClearing    = 16
	CauseUserBusy          = 17
	CauseNoUserResponding  = 18
	CauseSubscriberAbsent  = 20
	CauseNormalUnspecified = 31
)

// OIDs of our private extension fields, under the documentation enterprise
// number 32473 (RFC 5612). [non-standard]
const (
	// OIDAddress carries an IP address and port in ConnectArg.extensions:
	// OCTET STRING of the 4- or 16-octet address then the 2-octet port.
	OIDAddress = "1.3.6.1.4.1.32473.1.1"
	// OIDIMSI carries the IMSI (TBCD) in INAP's InitialDPArg.extensions,
	// which has no IMSI field.
	OIDIMSI = "1.3.6.1.4.1.32473.1.2"
	// OIDMSISDN carries an MSISDN in INAP's InitialDPArg.extensions, which
	// has no calledPartyBCDNumber: the octets of a BCDNumber.
	OIDMSISDN = "1.3.6.1.4.1.32473.1.3"
)

// Decoding errors.
var (
	ErrMalformed = errors.New("cap: malformed")
	ErrValue     = errors.New("cap: invalid value")
)

func malformed(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, a...))
}

// Number is an ISUP Called or Calling Party Number (Q.763 §3.9, §3.10).
type Number struct {
	NAI uint8 // nature of address: 1 subscriber, 2 unknown, 3 national, 4 international, 5 network-specific
	NPI uint8 // numbering plan: 1 ISDN/E.164, 5 private
	// Bit8 is octet 2 bit 8: INN (called; 0 = routing to internal network
	// number allowed) or NI (calling).
	Bit8 bool
	// Low is octet 2 bits 4-1: spare in a called number, presentation and
	// screening in a calling number.
	Low    uint8
	Digits string // '0'-'9', and 'a'-'f' for the codes 10-15 on receive
}

// Encode returns the Q.763 octets.
func (n Number) Encode() ([]byte, error) {
	if n.NAI > 0x7f || n.NPI > 7 || n.Low > 0x0f {
		return nil, fmt.Errorf("%w: number indicators", ErrValue)
	}
	packed, err := digits.Pack(n.Digits, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: number: %w", ErrValue, err)
	}
	o1 := n.NAI
	if len(n.Digits)%2 == 1 {
		o1 |= 0x80
	}
	o2 := n.NPI<<4 | n.Low
	if n.Bit8 {
		o2 |= 0x80
	}
	return append([]byte{o1, o2}, packed...), nil
}

// DecodeNumber parses Q.763 number octets.
func DecodeNumber(b []byte) (Number, error) {
	if len(b) < 2 {
		return Number{}, fmt.Errorf("%w: number of %d octets", ErrValue, len(b))
	}
	n := Number{NAI: b[0] & 0x7f, NPI: (b[1] >> 4) & 7, Bit8: b[1]&0x80 != 0, Low: b[1] & 0x0f}
	count := 2 * (len(b) - 2)
	if b[0]&0x80 != 0 {
		if count == 0 {
			return Number{}, fmt.Errorf("%w: odd indicator without digits", ErrValue)
		}
		count--
	}
	d, err := digits.Unpack(b[2:], count, true)
	if err != nil {
		return Number{}, fmt.Errorf("%w: number: %w", ErrValue, err)
	}
	n.Digits = d
	return n, nil
}

// Cause is a Q.850 cause as carried in ISUP (Q.763 §3.12).
type Cause struct {
	Location    uint8 // 0 user, 2 public network local user, 4 public network remote user, ...
	Value       uint8 // e.g. 17 user busy
	Diagnostics []byte
}

// Encode returns the cause octets, ITU-T coding standard.
func (c Cause) Encode() []byte {
	return append([]byte{0x80 | c.Location&0x0f, 0x80 | c.Value&0x7f}, c.Diagnostics...)
}

// DecodeCause parses cause octets (2..32, TS 29.078 Cause).
func DecodeCause(b []byte) (Cause, error) {
	if len(b) < 2 || len(b) > 32 {
		return Cause{}, fmt.Errorf("%w: cause of %d octets", ErrValue, len(b))
	}
	if b[0]&0x80 == 0 || b[1]&0x80 == 0 {
		// Octet 1 without ext bit would be followed by the Q.931
		// recommendation octet 1a, which ISUP does not use.
		return Cause{}, fmt.Errorf("%w: cause extension bits", ErrValue)
	}
	return Cause{Location: b[0] & 0x0f, Value: b[1] & 0x7f, Diagnostics: b[2:]}, nil
}

// EncodeIMSI packs IMSI digits as a TBCD-STRING (TS 29.002): 6..15 digits,
// filler 0xF for an odd count.
func EncodeIMSI(imsi string) ([]byte, error) {
	if len(imsi) < 6 || len(imsi) > 15 {
		return nil, fmt.Errorf("%w: IMSI of %d digits", ErrValue, len(imsi))
	}
	b, err := digits.Pack(imsi, 0xf)
	if err != nil {
		return nil, fmt.Errorf("%w: IMSI: %w", ErrValue, err)
	}
	return b, nil
}

// DecodeIMSI unpacks a TBCD IMSI (3..8 octets).
func DecodeIMSI(b []byte) (string, error) {
	if len(b) < 3 || len(b) > 8 {
		return "", fmt.Errorf("%w: IMSI of %d octets", ErrValue, len(b))
	}
	n := 2 * len(b)
	if b[len(b)-1]>>4 == 0xf {
		n--
	}
	s, err := digits.Unpack(b, n, false)
	if err != nil {
		return "", fmt.Errorf("%w: IMSI: %w", ErrValue, err)
	}
	return s, nil
}

// BCDNumber is a CalledPartyBCDNumber (TS 29.078 CAP-datatypes): the
// "type of number", "numbering plan identification" and digits of the TS
// 24.008 §10.5.4.7 information element, without its IEI and length.
type BCDNumber struct {
	TON    uint8  // type of number: 0 unknown, 1 international, 2 national, ...
	NPI    uint8  // numbering plan: 1 ISDN/E.164, ...
	Digits string // '0'-'9', and '*', '#', 'a', 'b', 'c' on receive
}

// Type of number and numbering plan of an E.164 MSISDN.
const (
	TONInternational = 1
	NPIE164          = 1
)

// bcdChars are the TS 24.008 table 10.5.118 digit codes; 1111 is the
// end mark, sent as filler after an odd count.
const bcdChars = "0123456789*#abc"

// Encode returns the octets: 1 (ext, no octet 3a) | TON | NPI, then the
// digits two an octet, filler 1111 after an odd count. 1 to 40 digits fit
// the 41 octets CAP allows (CAP-classes maxCalledPartyBCDNumberLength).
func (n BCDNumber) Encode() ([]byte, error) {
	if n.TON > 7 || n.NPI > 15 || len(n.Digits) > 80 {
		return nil, fmt.Errorf("%w: BCD number indicators or length", ErrValue)
	}
	packed, err := digits.Pack(n.Digits, 0xf)
	if err != nil {
		return nil, fmt.Errorf("%w: BCD number: %w", ErrValue, err)
	}
	return append([]byte{0x80 | n.TON<<4 | n.NPI}, packed...), nil
}

// DecodeBCDNumber parses CalledPartyBCDNumber octets (1..41). Bit 8 of the
// first octet is not checked: TS 24.008 defines no octet 3a for a called
// party, and RestComm jSS7 sends the bit as 0.
func DecodeBCDNumber(b []byte) (BCDNumber, error) {
	if len(b) < 1 || len(b) > 41 {
		return BCDNumber{}, fmt.Errorf("%w: BCD number of %d octets", ErrValue, len(b))
	}
	n := BCDNumber{TON: b[0] >> 4 & 7, NPI: b[0] & 0x0f}
	out := make([]byte, 0, 2*(len(b)-1))
	for i, o := range b[1:] {
		for j, d := range []byte{o & 0x0f, o >> 4} {
			if d == 0xf {
				// Only the last nibble may be the end mark.
				if i != len(b)-2 || j != 1 {
					return BCDNumber{}, fmt.Errorf("%w: BCD number: end mark inside the digits", ErrValue)
				}
				continue
			}
			out = append(out, bcdChars[d])
		}
	}
	n.Digits = string(out)
	return n, nil
}

// Extension is one ExtensionField with a global OID type; criticality is
// always the default, ignore (TS 29.078 CAP-classes). Value is the content
// of the OCTET STRING held by value [1].
type Extension struct {
	OID   string
	Value []byte
}

func (e Extension) encode() ([]byte, error) {
	oid, err := ber.OIDContent(e.OID)
	if err != nil {
		return nil, fmt.Errorf("%w: extension: %w", ErrValue, err)
	}
	return ber.Seq(ber.Prim(ber.Universal, ber.TagOID, oid),
		ber.Cons(ber.Context, 1, ber.Prim(ber.Universal, ber.TagOctetString, e.Value))), nil
}

func encodeExtensions(tag uint32, exts []Extension) ([]byte, error) {
	var parts [][]byte
	for _, e := range exts {
		b, err := e.encode()
		if err != nil {
			return nil, err
		}
		parts = append(parts, b)
	}
	return ber.Cons(ber.Context, tag, parts...), nil
}

// decodeExtensions reads the fields whose type is a global OID and whose
// value is an OCTET STRING; other fields (local codes, other value types)
// are skipped, as a receiver must ignore extensions it does not know.
func decodeExtensions(e ber.TLV) ([]Extension, error) {
	fields, err := e.Children()
	if err != nil || len(fields) == 0 {
		return nil, malformed("extensions")
	}
	var out []Extension
	for _, f := range fields {
		kids, err := f.Children()
		if err != nil || !f.Is(ber.Universal, true, ber.TagSequence) || len(kids) < 2 {
			return nil, malformed("extension field")
		}
		if !kids[0].Is(ber.Universal, false, ber.TagOID) {
			continue
		}
		oid, err := ber.ParseOID(kids[0].Value)
		if err != nil {
			return nil, fmt.Errorf("%w: extension type: %w", ErrMalformed, err)
		}
		val := kids[len(kids)-1]
		if !val.Is(ber.Context, true, 1) {
			return nil, malformed("extension value is %s", val)
		}
		inner, err := val.Children()
		if err != nil || len(inner) != 1 || !inner[0].Is(ber.Universal, false, ber.TagOctetString) {
			continue
		}
		out = append(out, Extension{OID: oid, Value: inner[0].Value})
	}
	return out, nil
}

// Find returns the value of the extension with the given OID.
func Find(exts []Extension, oid string) ([]byte, bool) {
	for _, e := range exts {
		if e.OID == oid {
			return e.Value, true
		}
	}
	return nil, false
}
