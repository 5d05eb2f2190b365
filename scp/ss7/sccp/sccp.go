// Package sccp encodes and decodes the connectionless Signalling Connection
// Control Part messages (ITU-T Q.713) that carry TCAP: UDT and, on receive,
// XUDT, plus the service messages UDTS/XUDTS that return an undeliverable
// message; and the called/calling party addresses with point code,
// subsystem number and global title.
package sccp

import (
	"errors"
	"fmt"

	"github.com/imcall/b2bua/scp/ss7/internal/digits"
)

// Message types (Q.713 §4.2).
const (
	TypeUDT   = 0x09
	TypeUDTS  = 0x0a
	TypeXUDT  = 0x11
	TypeXUDTS = 0x12
)

// Protocol classes (Q.713 §3.6): class in bits 1-4, "return message on
// error" in bit 8.
const (
	Class0        = 0x00
	Class1        = 0x01
	ReturnOnError = 0x80
)

// Subsystem numbers (3GPP TS 23.003 §8.2; 241 is the customary INAP value).
const (
	SSNHLR  = 6
	SSNCAP  = 146
	SSNSCF  = 147
	SSNINAP = 241
)

// Decoding errors.
var (
	ErrTruncated   = errors.New("sccp: truncated")
	ErrPointer     = errors.New("sccp: invalid pointer")
	ErrAddress     = errors.New("sccp: invalid address")
	ErrUnsupported = errors.New("sccp: unsupported message")
)

// GlobalTitle is a Q.713 §3.4.2.3 global title.
type GlobalTitle struct {
	// Indicator is the GTI: 1 NAI only, 2 TT only, 3 TT+NP+ES, 4 TT+NP+ES+NAI.
	Indicator uint8
	TT        uint8 // translation type
	NP        uint8 // numbering plan: 1 = E.164
	NAI       uint8 // nature of address: 4 = international
	Digits    string
}

// Address is a called or calling party address (Q.713 §3.4).
type Address struct {
	RouteOnSSN bool // routing indicator: true = route on SSN, false = on GT
	HasPC      bool
	PC         uint16 // 14-bit ITU signalling point code
	SSN        uint8  // 0 = absent
	GT         *GlobalTitle
}

// String formats the address for logs and traces.
func (a Address) String() string {
	s := "route-on-GT"
	if a.RouteOnSSN {
		s = "route-on-SSN"
	}
	if a.HasPC {
		s += fmt.Sprintf(" pc=%d", a.PC)
	}
	if a.SSN != 0 {
		s += fmt.Sprintf(" ssn=%d", a.SSN)
	}
	if a.GT != nil {
		s += fmt.Sprintf(" gt=%s (gti=%d tt=%d np=%d nai=%d)", a.GT.Digits, a.GT.Indicator, a.GT.TT, a.GT.NP, a.GT.NAI)
	}
	return s
}

// Encode returns the address octets (without the length octet).
func (a Address) Encode() ([]byte, error) {
	var ai byte
	if a.RouteOnSSN {
		ai |= 0x40
	}
	out := []byte{0}
	if a.HasPC {
		if a.PC > 0x3fff {
			return nil, fmt.Errorf("%w: point code %d exceeds 14 bits", ErrAddress, a.PC)
		}
		ai |= 0x01
		out = append(out, byte(a.PC), byte(a.PC>>8))
	}
	if a.SSN != 0 {
		ai |= 0x02
		out = append(out, a.SSN)
	}
	if a.GT != nil {
		g := a.GT
		packed, err := digits.Pack(g.Digits, 0)
		if err != nil {
			return nil, fmt.Errorf("%w: GT: %w", ErrAddress, err)
		}
		odd := len(g.Digits)%2 == 1
		es := byte(2) // BCD, even number of digits
		if odd {
			es = 1
		}
		switch g.Indicator {
		case 1:
			nai := g.NAI & 0x7f
			if odd {
				nai |= 0x80
			}
			out = append(out, nai)
		case 2:
			out = append(out, g.TT)
		case 3:
			out = append(out, g.TT, g.NP<<4|es)
		case 4:
			out = append(out, g.TT, g.NP<<4|es, g.NAI&0x7f)
		default:
			return nil, fmt.Errorf("%w: GTI %d", ErrAddress, g.Indicator)
		}
		ai |= g.Indicator << 2
		out = append(out, packed...)
	}
	out[0] = ai
	return out, nil
}

// DecodeAddress parses address octets (without the length octet).
func DecodeAddress(b []byte) (Address, error) {
	if len(b) == 0 {
		return Address{}, fmt.Errorf("%w: empty", ErrAddress)
	}
	ai := b[0]
	a := Address{RouteOnSSN: ai&0x40 != 0, HasPC: ai&0x01 != 0}
	i := 1
	if a.HasPC {
		if len(b) < i+2 {
			return Address{}, fmt.Errorf("%w: point code", ErrTruncated)
		}
		a.PC = uint16(b[i]) | uint16(b[i+1]&0x3f)<<8
		i += 2
	}
	if ai&0x02 != 0 {
		if len(b) < i+1 {
			return Address{}, fmt.Errorf("%w: SSN", ErrTruncated)
		}
		a.SSN = b[i]
		i++
	}
	gti := (ai >> 2) & 0x0f
	if gti == 0 {
		if i != len(b) {
			return Address{}, fmt.Errorf("%w: %d octets after address without GT", ErrAddress, len(b)-i)
		}
		return a, nil
	}
	g := &GlobalTitle{Indicator: gti}
	need := map[uint8]int{1: 1, 2: 1, 3: 2, 4: 3}[gti]
	if need == 0 {
		return Address{}, fmt.Errorf("%w: GTI %d", ErrAddress, gti)
	}
	if len(b) < i+need {
		return Address{}, fmt.Errorf("%w: global title header", ErrTruncated)
	}
	odd := false
	switch gti {
	case 1:
		odd, g.NAI = b[i]&0x80 != 0, b[i]&0x7f
	case 2:
		g.TT = b[i]
	case 3, 4:
		g.TT, g.NP = b[i], b[i+1]>>4
		switch b[i+1] & 0x0f {
		case 1:
			odd = true
		case 2:
		default:
			return Address{}, fmt.Errorf("%w: encoding scheme %d", ErrAddress, b[i+1]&0x0f)
		}
		if gti == 4 {
			g.NAI = b[i+2] & 0x7f
		}
	}
	i += need
	n := 2 * (len(b) - i)
	if odd {
		n--
	}
	if n < 0 {
		return Address{}, fmt.Errorf("%w: no GT digits", ErrAddress)
	}
	d, err := digits.Unpack(b[i:], n, true)
	if err != nil {
		return Address{}, fmt.Errorf("%w: GT: %w", ErrAddress, err)
	}
	g.Digits = d
	a.GT = g
	return a, nil
}

// Message is a connectionless SCCP message.
type Message struct {
	Type uint8
	// Class is the protocol class octet of UDT/XUDT.
	Class uint8
	// Cause is the return cause of UDTS/XUDTS (Q.713 §3.12).
	Cause      uint8
	HopCounter uint8 // XUDT/XUDTS only
	Called     Address
	Calling    Address
	Data       []byte
}

// Encode returns the wire form. UDT and UDTS are what we send (Q.713
// §4.10: data up to 255 octets in one variable part); XUDT/XUDTS encode
// without optional part.
func (m Message) Encode() ([]byte, error) {
	called, err := m.Called.Encode()
	if err != nil {
		return nil, fmt.Errorf("called: %w", err)
	}
	calling, err := m.Calling.Encode()
	if err != nil {
		return nil, fmt.Errorf("calling: %w", err)
	}
	if len(m.Data) > 255 || len(m.Data) == 0 {
		return nil, fmt.Errorf("%w: data of %d octets", ErrUnsupported, len(m.Data))
	}
	var out []byte
	var npointers int
	switch m.Type {
	case TypeUDT:
		out, npointers = []byte{TypeUDT, m.Class}, 3
	case TypeUDTS:
		out, npointers = []byte{TypeUDTS, m.Cause}, 3
	case TypeXUDT:
		out, npointers = []byte{TypeXUDT, m.Class, m.HopCounter}, 4
	case TypeXUDTS:
		out, npointers = []byte{TypeXUDTS, m.Cause, m.HopCounter}, 4
	default:
		return nil, fmt.Errorf("%w: type 0x%02x", ErrUnsupported, m.Type)
	}
	// Each pointer counts from its own octet to the length octet of its
	// variable part (Q.713 §1.8); the XUDT optional-part pointer is 0.
	p1 := npointers
	p2 := p1 + len(called)
	p3 := p2 + len(calling)
	out = append(out, byte(p1), byte(p2), byte(p3))
	if npointers == 4 {
		out = append(out, 0)
	}
	out = append(out, byte(len(called)))
	out = append(out, called...)
	out = append(out, byte(len(calling)))
	out = append(out, calling...)
	out = append(out, byte(len(m.Data)))
	return append(out, m.Data...), nil
}

// Decode parses a UDT, XUDT, UDTS or XUDTS message.
func Decode(b []byte) (Message, error) {
	if len(b) < 1 {
		return Message{}, fmt.Errorf("%w: empty", ErrTruncated)
	}
	m := Message{Type: b[0]}
	var fixed int // octets before the first pointer
	switch m.Type {
	case TypeUDT, TypeUDTS:
		fixed = 2
	case TypeXUDT, TypeXUDTS:
		fixed = 3
	default:
		return Message{}, fmt.Errorf("%w: type 0x%02x", ErrUnsupported, m.Type)
	}
	npointers := 3
	if fixed == 3 {
		npointers = 4
	}
	if len(b) < fixed+npointers {
		return Message{}, fmt.Errorf("%w: fixed part", ErrTruncated)
	}
	switch m.Type {
	case TypeUDT:
		m.Class = b[1]
	case TypeXUDT:
		m.Class, m.HopCounter = b[1], b[2]
	case TypeUDTS:
		m.Cause = b[1]
	case TypeXUDTS:
		m.Cause, m.HopCounter = b[1], b[2]
	}
	if m.Class&0x0f > 1 {
		return Message{}, fmt.Errorf("%w: protocol class %d is connection-oriented", ErrUnsupported, m.Class&0x0f)
	}
	vars := make([][]byte, 3)
	end := fixed + npointers // first octet after the pointers
	for k := range 3 {
		at := fixed + k
		start := at + int(b[at])
		if b[at] == 0 || start < fixed+npointers || start >= len(b) {
			return Message{}, fmt.Errorf("%w: pointer %d = %d", ErrPointer, k+1, b[at])
		}
		l := int(b[start])
		if start+1+l > len(b) {
			return Message{}, fmt.Errorf("%w: variable part %d needs %d octets", ErrTruncated, k+1, l)
		}
		vars[k] = b[start+1 : start+1+l : start+1+l]
		end = max(end, start+1+l)
	}
	if npointers == 4 && b[fixed+3] != 0 {
		// Optional part (Q.713 §4.18): we accept it but refuse segmented
		// messages, which we would need to reassemble.
		at := fixed + 3
		start := at + int(b[at])
		if start >= len(b) {
			return Message{}, fmt.Errorf("%w: optional part", ErrPointer)
		}
		for i := start; ; {
			if i >= len(b) {
				return Message{}, fmt.Errorf("%w: optional part without end", ErrTruncated)
			}
			tag := b[i]
			if tag == 0 {
				end = max(end, i+1)
				break
			}
			if i+1 >= len(b) || i+2+int(b[i+1]) > len(b) {
				return Message{}, fmt.Errorf("%w: optional parameter 0x%02x", ErrTruncated, tag)
			}
			if tag == 0x10 {
				return Message{}, fmt.Errorf("%w: segmented XUDT", ErrUnsupported)
			}
			i += 2 + int(b[i+1])
		}
	}
	if end != len(b) {
		return Message{}, fmt.Errorf("%w: %d trailing octets", ErrPointer, len(b)-end)
	}
	var err error
	if m.Called, err = DecodeAddress(vars[0]); err != nil {
		return Message{}, fmt.Errorf("called: %w", err)
	}
	if m.Calling, err = DecodeAddress(vars[1]); err != nil {
		return Message{}, fmt.Errorf("calling: %w", err)
	}
	if len(vars[2]) == 0 {
		return Message{}, fmt.Errorf("%w: empty data", ErrTruncated)
	}
	m.Data = vars[2]
	return m, nil
}

// ReturnCauseText names a UDTS/XUDTS return cause (Q.713 §3.12).
func ReturnCauseText(c uint8) string {
	texts := []string{
		"no translation for an address of such nature", "no translation for this specific address",
		"subsystem congestion", "subsystem failure", "unequipped user", "MTP failure",
		"network congestion", "unqualified", "error in message transport", "error in local processing",
		"destination cannot perform reassembly", "SCCP failure", "hop counter violation",
		"segmentation not supported", "segmentation failure",
	}
	if int(c) < len(texts) {
		return texts[c]
	}
	return fmt.Sprintf("cause %d", c)
}
