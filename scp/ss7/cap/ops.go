package cap

import (
	"fmt"

	"github.com/imcall/b2bua/scp/ss7/ber"
)

// InitialDP argument tags (TS 29.078 CAP-gsmSSF-gsmSCF-ops-args, IMPLICIT TAGS).
const (
	tagServiceKey         = 0
	tagCalledPartyNumber  = 2
	tagCallingPartyNumber = 3
	tagIDPExtensionsINAP  = 15 // INAP CS-1 InitialDPArg.extensions
	tagEventTypeBCSM      = 28
	tagIMSI               = 50
	tagCalledPartyBCD     = 56
)

// InitialDPArg is the subset of InitialDPArg we send and read. Unknown
// parameters are skipped on decode, as TS 29.078 extensibility requires.
type InitialDPArg struct {
	ServiceKey         int64
	CalledPartyNumber  *Number
	CallingPartyNumber *Number
	EventTypeBCSM      *uint8
	IMSI               string // digits; empty = absent
	// CalledPartyBCDNumber [56] is the number the subscriber is called
	// at, in TS 24.008 form; we send it to locate a terminal known by its
	// MSISDN.
	CalledPartyBCDNumber *BCDNumber
	// Extensions is INAP's extensions [15]; CAP carries its extensions in
	// [15] too, so the same field serves both.
	Extensions []Extension
}

// Encode returns the BER of the argument (a SEQUENCE, tags in order).
func (a InitialDPArg) Encode() ([]byte, error) {
	if a.ServiceKey < 0 || a.ServiceKey > 2147483647 {
		return nil, fmt.Errorf("%w: service key %d", ErrValue, a.ServiceKey)
	}
	parts := [][]byte{ber.Prim(ber.Context, tagServiceKey, ber.IntContent(a.ServiceKey))}
	for _, n := range []struct {
		tag      uint32
		num      *Number
		min, max int
	}{{tagCalledPartyNumber, a.CalledPartyNumber, 2, 18}, {tagCallingPartyNumber, a.CallingPartyNumber, 2, 10}} {
		if n.num == nil {
			continue
		}
		b, err := n.num.Encode()
		if err != nil {
			return nil, err
		}
		if len(b) < n.min || len(b) > n.max {
			return nil, fmt.Errorf("%w: party number of %d octets", ErrValue, len(b))
		}
		parts = append(parts, ber.Prim(ber.Context, n.tag, b))
	}
	if len(a.Extensions) > 0 {
		b, err := encodeExtensions(tagIDPExtensionsINAP, a.Extensions)
		if err != nil {
			return nil, err
		}
		parts = append(parts, b)
	}
	if a.EventTypeBCSM != nil {
		parts = append(parts, ber.Prim(ber.Context, tagEventTypeBCSM, ber.IntContent(int64(*a.EventTypeBCSM))))
	}
	if a.IMSI != "" {
		b, err := EncodeIMSI(a.IMSI)
		if err != nil {
			return nil, err
		}
		parts = append(parts, ber.Prim(ber.Context, tagIMSI, b))
	}
	if a.CalledPartyBCDNumber != nil {
		b, err := a.CalledPartyBCDNumber.Encode()
		if err != nil {
			return nil, err
		}
		parts = append(parts, ber.Prim(ber.Context, tagCalledPartyBCD, b))
	}
	return ber.Seq(parts...), nil
}

// DecodeInitialDPArg parses an InitialDP argument.
func DecodeInitialDPArg(b []byte) (InitialDPArg, error) {
	fields, err := sequence(b)
	if err != nil {
		return InitialDPArg{}, err
	}
	var a InitialDPArg
	haveKey := false
	for _, f := range fields {
		if f.Class != ber.Context {
			return InitialDPArg{}, malformed("InitialDPArg element %s", f)
		}
		switch f.Tag {
		case tagServiceKey:
			if f.Constructed {
				return InitialDPArg{}, malformed("serviceKey constructed")
			}
			v, err := ber.ParseInt(f.Value)
			if err != nil || v < 0 || v > 2147483647 {
				return InitialDPArg{}, fmt.Errorf("%w: serviceKey", ErrValue)
			}
			a.ServiceKey, haveKey = v, true
		case tagCalledPartyNumber, tagCallingPartyNumber:
			if f.Constructed {
				return InitialDPArg{}, malformed("party number constructed")
			}
			n, err := DecodeNumber(f.Value)
			if err != nil {
				return InitialDPArg{}, err
			}
			if f.Tag == tagCalledPartyNumber {
				a.CalledPartyNumber = &n
			} else {
				a.CallingPartyNumber = &n
			}
		case tagEventTypeBCSM:
			v, err := ber.ParseInt(f.Value)
			if f.Constructed || err != nil || v < 0 || v > 255 {
				return InitialDPArg{}, fmt.Errorf("%w: eventTypeBCSM", ErrValue)
			}
			e := uint8(v)
			a.EventTypeBCSM = &e
		case tagIMSI:
			if f.Constructed {
				return InitialDPArg{}, malformed("iMSI constructed")
			}
			if a.IMSI, err = DecodeIMSI(f.Value); err != nil {
				return InitialDPArg{}, err
			}
		case tagCalledPartyBCD:
			if f.Constructed {
				return InitialDPArg{}, malformed("calledPartyBCDNumber constructed")
			}
			n, err := DecodeBCDNumber(f.Value)
			if err != nil {
				return InitialDPArg{}, err
			}
			a.CalledPartyBCDNumber = &n
		case tagIDPExtensionsINAP:
			if !f.Constructed {
				return InitialDPArg{}, malformed("extensions primitive")
			}
			if a.Extensions, err = decodeExtensions(f); err != nil {
				return InitialDPArg{}, err
			}
		}
	}
	if !haveKey {
		return InitialDPArg{}, malformed("InitialDPArg without serviceKey")
	}
	return a, nil
}

// ConnectArg is the subset of ConnectArg we send and read.
type ConnectArg struct {
	// DestinationRoutingAddress holds exactly one called party number
	// (TS 29.078: SEQUENCE SIZE(1) OF CalledPartyNumber).
	DestinationRoutingAddress Number
	Extensions                []Extension // extensions [10]
}

// Encode returns the BER of the argument.
func (a ConnectArg) Encode() ([]byte, error) {
	n, err := a.DestinationRoutingAddress.Encode()
	if err != nil {
		return nil, err
	}
	if len(n) > 18 {
		return nil, fmt.Errorf("%w: routing address of %d octets", ErrValue, len(n))
	}
	parts := [][]byte{ber.Cons(ber.Context, 0, ber.Prim(ber.Universal, ber.TagOctetString, n))}
	if len(a.Extensions) > 0 {
		b, err := encodeExtensions(10, a.Extensions)
		if err != nil {
			return nil, err
		}
		parts = append(parts, b)
	}
	return ber.Seq(parts...), nil
}

// DecodeConnectArg parses a Connect argument.
func DecodeConnectArg(b []byte) (ConnectArg, error) {
	fields, err := sequence(b)
	if err != nil {
		return ConnectArg{}, err
	}
	var a ConnectArg
	have := false
	for _, f := range fields {
		switch {
		case f.Is(ber.Context, true, 0):
			nums, err := f.Children()
			if err != nil || len(nums) != 1 || !nums[0].Is(ber.Universal, false, ber.TagOctetString) {
				return ConnectArg{}, malformed("destinationRoutingAddress must hold one number")
			}
			if a.DestinationRoutingAddress, err = DecodeNumber(nums[0].Value); err != nil {
				return ConnectArg{}, err
			}
			have = true
		case f.Is(ber.Context, true, 10):
			if a.Extensions, err = decodeExtensions(f); err != nil {
				return ConnectArg{}, err
			}
		case f.Class != ber.Context:
			return ConnectArg{}, malformed("ConnectArg element %s", f)
		}
	}
	if !have {
		return ConnectArg{}, malformed("ConnectArg without destinationRoutingAddress")
	}
	return a, nil
}

// EncodeReleaseCallArg returns the argument: the untagged Cause alternative,
// which is also the whole of the older "ReleaseCallArg ::= Cause".
func EncodeReleaseCallArg(c Cause) []byte {
	return ber.Prim(ber.Universal, ber.TagOctetString, c.Encode())
}

// DecodeReleaseCallArg parses a ReleaseCall argument.
func DecodeReleaseCallArg(b []byte) (Cause, error) {
	e, err := ber.Decode(b)
	if err != nil {
		return Cause{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if !e.Is(ber.Universal, false, ber.TagOctetString) {
		return Cause{}, malformed("ReleaseCallArg is %s", e)
	}
	return DecodeCause(e.Value)
}

func sequence(b []byte) ([]ber.TLV, error) {
	e, err := ber.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if !e.Is(ber.Universal, true, ber.TagSequence) {
		return nil, malformed("argument is %s, not a SEQUENCE", e)
	}
	f, err := e.Children()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return f, nil
}
