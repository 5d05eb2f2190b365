// Package m3ua encodes and decodes MTP3 User Adaptation Layer messages
// (RFC 4666): the common header, tag-length-value parameters, and the
// Protocol Data parameter that carries an SCCP message with its MTP3
// routing label. It also frames messages on a byte stream (M3UA over TCP,
// RFC 4666 §1.3.1), where the header's length delimits each message.
package m3ua

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// PPID is the SCTP payload protocol identifier of M3UA (RFC 4666 §1.4.7).
const PPID = 3

// Port is the registered SCTP and TCP port of M3UA (RFC 4666 §1.4.7).
const Port = 2905

// Version is the only M3UA version (RFC 4666 §3.1.1).
const Version = 1

// HeaderLen is the size of the common header.
const HeaderLen = 8

// MaxLen bounds a message read from a stream: far above any SS7 message,
// low enough that a corrupt length cannot make us allocate much.
const MaxLen = 64 << 10

// Message classes (RFC 4666 §3.1.2).
const (
	ClassMGMT  = 0 // management: ERR, NTFY
	ClassXFER  = 1 // transfer: DATA
	ClassSSNM  = 2 // SS7 signalling network management: DUNA, DAVA, ...
	ClassASPSM = 3 // ASP state maintenance: ASPUP, ASPDN, BEAT
	ClassASPTM = 4 // ASP traffic maintenance: ASPAC, ASPIA
	ClassRKM   = 9 // routing key management
)

// Message types per class (RFC 4666 §3.1.3).
const (
	TypeERR  = 0 // MGMT
	TypeNTFY = 1 // MGMT
	TypeDATA = 1 // XFER

	TypeDUNA = 1 // SSNM
	TypeDAVA = 2 // SSNM

	TypeASPUP    = 1 // ASPSM
	TypeASPDN    = 2 // ASPSM
	TypeBEAT     = 3 // ASPSM
	TypeASPUPAck = 4 // ASPSM
	TypeASPDNAck = 5 // ASPSM
	TypeBEATAck  = 6 // ASPSM
	TypeASPAC    = 1 // ASPTM
	TypeASPIA    = 2 // ASPTM
	TypeASPACAck = 3 // ASPTM
	TypeASPIAAck = 4 // ASPTM
)

// Parameter tags (RFC 4666 §3.2 common, §3.3 M3UA-specific).
const (
	TagInfoString        = 0x0004
	TagRoutingContext    = 0x0006
	TagDiagnostic        = 0x0007
	TagHeartbeatData     = 0x0009
	TagTrafficModeType   = 0x000b
	TagErrorCode         = 0x000c
	TagStatus            = 0x000d
	TagASPIdentifier     = 0x0011
	TagAffectedPointCode = 0x0012
	TagCorrelationID     = 0x0013
	TagNetworkAppearance = 0x0200
	TagProtocolData      = 0x0210
)

// Traffic mode types (RFC 4666 §3.8.1).
const (
	TrafficOverride  = 1
	TrafficLoadshare = 2
	TrafficBroadcast = 3
)

// Error codes (RFC 4666 §3.8.1 ERR).
const (
	ErrCodeInvalidVersion    = 0x01
	ErrCodeUnsupportedClass  = 0x03
	ErrCodeUnsupportedType   = 0x04
	ErrCodeUnexpectedMessage = 0x06
	ErrCodeProtocolError     = 0x07
	ErrCodeInvalidStreamID   = 0x09
	ErrCodeInvalidParameter  = 0x11
	ErrCodeMissingParameter  = 0x16
	ErrCodeInvalidRoutingCtx = 0x19
	ErrCodeNoConfiguredAS    = 0x1a
)

// Notify status (RFC 4666 §3.8.2).
const (
	StatusTypeASStateChange = 1
	StatusTypeOther         = 2
	StatusASInactive        = 2
	StatusASActive          = 3
	StatusASPending         = 4
)

// Decoding errors.
var (
	ErrTruncated = errors.New("m3ua: truncated")
	ErrLength    = errors.New("m3ua: invalid length")
	ErrVersion   = errors.New("m3ua: unsupported version")
	ErrParameter = errors.New("m3ua: invalid parameter")
	ErrMissing   = errors.New("m3ua: missing parameter")
)

// Param is one tag-length-value parameter.
type Param struct {
	Tag   uint16
	Value []byte
}

// Message is one M3UA message.
type Message struct {
	Class  uint8
	Type   uint8
	Params []Param
}

// Name returns the message's conventional name, e.g. "ASPUP_ACK".
func (m Message) Name() string {
	names := map[[2]uint8]string{
		{ClassMGMT, TypeERR}: "ERR", {ClassMGMT, TypeNTFY}: "NTFY",
		{ClassXFER, TypeDATA}: "DATA",
		{ClassSSNM, TypeDUNA}: "DUNA", {ClassSSNM, TypeDAVA}: "DAVA",
		{ClassASPSM, TypeASPUP}: "ASPUP", {ClassASPSM, TypeASPDN}: "ASPDN", {ClassASPSM, TypeBEAT}: "BEAT",
		{ClassASPSM, TypeASPUPAck}: "ASPUP_ACK", {ClassASPSM, TypeASPDNAck}: "ASPDN_ACK", {ClassASPSM, TypeBEATAck}: "BEAT_ACK",
		{ClassASPTM, TypeASPAC}: "ASPAC", {ClassASPTM, TypeASPIA}: "ASPIA",
		{ClassASPTM, TypeASPACAck}: "ASPAC_ACK", {ClassASPTM, TypeASPIAAck}: "ASPIA_ACK",
	}
	if n, ok := names[[2]uint8{m.Class, m.Type}]; ok {
		return n
	}
	return fmt.Sprintf("class %d type %d", m.Class, m.Type)
}

// Is reports whether m has the given class and type.
func (m Message) Is(class, typ uint8) bool { return m.Class == class && m.Type == typ }

// Param returns the value of the first parameter with tag.
func (m Message) Param(tag uint16) ([]byte, bool) {
	for _, p := range m.Params {
		if p.Tag == tag {
			return p.Value, true
		}
	}
	return nil, false
}

// Uint32 returns a 4-octet parameter as a number.
func (m Message) Uint32(tag uint16) (uint32, bool) {
	v, ok := m.Param(tag)
	if !ok || len(v) != 4 {
		return 0, false
	}
	return binary.BigEndian.Uint32(v), true
}

// Encode returns the message's wire form with parameters padded to four
// octets; the header length counts the padding (RFC 4666 §3.1.5, §3.2).
func (m Message) Encode() []byte {
	n := HeaderLen
	for _, p := range m.Params {
		n += 4 + (len(p.Value)+3)&^3
	}
	b := make([]byte, n)
	b[0], b[2], b[3] = Version, m.Class, m.Type
	binary.BigEndian.PutUint32(b[4:], uint32(n))
	i := HeaderLen
	for _, p := range m.Params {
		binary.BigEndian.PutUint16(b[i:], p.Tag)
		binary.BigEndian.PutUint16(b[i+2:], uint16(4+len(p.Value)))
		copy(b[i+4:], p.Value)
		i += 4 + (len(p.Value)+3)&^3
	}
	return b
}

// Decode parses one complete message; its length must match len(b).
func Decode(b []byte) (Message, error) {
	if len(b) < HeaderLen {
		return Message{}, fmt.Errorf("%w: %d octets", ErrTruncated, len(b))
	}
	if b[0] != Version {
		return Message{}, fmt.Errorf("%w: %d", ErrVersion, b[0])
	}
	l := binary.BigEndian.Uint32(b[4:])
	if l != uint32(len(b)) || l%4 != 0 {
		return Message{}, fmt.Errorf("%w: header says %d, have %d", ErrLength, l, len(b))
	}
	m := Message{Class: b[2], Type: b[3]}
	for rest := b[HeaderLen:]; len(rest) > 0; {
		if len(rest) < 4 {
			return Message{}, fmt.Errorf("%w: parameter header", ErrTruncated)
		}
		tag, pl := binary.BigEndian.Uint16(rest), int(binary.BigEndian.Uint16(rest[2:]))
		padded := (pl + 3) &^ 3
		if pl < 4 || padded > len(rest) {
			return Message{}, fmt.Errorf("%w: parameter 0x%04x length %d", ErrParameter, tag, pl)
		}
		m.Params = append(m.Params, Param{Tag: tag, Value: rest[4:pl:pl]})
		rest = rest[padded:]
	}
	return m, nil
}

// ReadMessage reads one message from a stream, framed by the header's
// length (RFC 4666 §1.3.1 allows TCP; §3.1.5 gives the length).
func ReadMessage(r io.Reader) ([]byte, error) {
	var h [HeaderLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	l := binary.BigEndian.Uint32(h[4:])
	if h[0] != Version {
		return nil, fmt.Errorf("%w: %d", ErrVersion, h[0])
	}
	if l < HeaderLen || l > MaxLen || l%4 != 0 {
		return nil, fmt.Errorf("%w: %d", ErrLength, l)
	}
	b := make([]byte, l)
	copy(b, h[:])
	if _, err := io.ReadFull(r, b[HeaderLen:]); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTruncated, err)
	}
	return b, nil
}

// U32 is a 4-octet parameter value.
func U32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// ProtocolData is the content of the Protocol Data parameter: the MTP3
// routing label and service information octet, then the user part
// (RFC 4666 §3.3.1).
type ProtocolData struct {
	OPC, DPC uint32
	SI       uint8 // service indicator: 3 = SCCP
	NI       uint8 // network indicator: 0 international, 2 national
	MP       uint8 // message priority
	SLS      uint8 // signalling link selection
	Data     []byte
}

// SISCCP is the service indicator of SCCP (Q.704 §14.2.1).
const SISCCP = 3

// Encode returns the parameter value.
func (p ProtocolData) Encode() []byte {
	b := make([]byte, 12, 12+len(p.Data))
	binary.BigEndian.PutUint32(b, p.OPC)
	binary.BigEndian.PutUint32(b[4:], p.DPC)
	b[8], b[9], b[10], b[11] = p.SI, p.NI, p.MP, p.SLS
	return append(b, p.Data...)
}

// DecodeProtocolData parses a Protocol Data parameter value.
func DecodeProtocolData(b []byte) (ProtocolData, error) {
	if len(b) < 12 {
		return ProtocolData{}, fmt.Errorf("%w: protocol data of %d octets", ErrTruncated, len(b))
	}
	return ProtocolData{
		OPC: binary.BigEndian.Uint32(b), DPC: binary.BigEndian.Uint32(b[4:]),
		SI: b[8], NI: b[9], MP: b[10], SLS: b[11], Data: b[12:],
	}, nil
}

// Data builds a DATA message; rc 0 omits the Routing Context, which is
// optional when only one is configured (RFC 4666 §3.3.1).
func Data(rc uint32, pd ProtocolData) Message {
	m := Message{Class: ClassXFER, Type: TypeDATA}
	if rc != 0 {
		m.Params = append(m.Params, Param{TagRoutingContext, U32(rc)})
	}
	m.Params = append(m.Params, Param{TagProtocolData, pd.Encode()})
	return m
}

// DataOf returns the protocol data of a DATA message.
func DataOf(m Message) (ProtocolData, error) {
	v, ok := m.Param(TagProtocolData)
	if !ok {
		return ProtocolData{}, fmt.Errorf("%w: protocol data", ErrMissing)
	}
	return DecodeProtocolData(v)
}

// ASPUp builds ASPUP with an optional ASP identifier (0 omits it).
func ASPUp(aspID uint32) Message {
	m := Message{Class: ClassASPSM, Type: TypeASPUP}
	if aspID != 0 {
		m.Params = []Param{{TagASPIdentifier, U32(aspID)}}
	}
	return m
}

// ASPActive builds ASPAC (or, with typ TypeASPACAck, its acknowledgement).
func ASPActive(typ uint8, mode, rc uint32) Message {
	m := Message{Class: ClassASPTM, Type: typ}
	if mode != 0 {
		m.Params = append(m.Params, Param{TagTrafficModeType, U32(mode)})
	}
	if rc != 0 {
		m.Params = append(m.Params, Param{TagRoutingContext, U32(rc)})
	}
	return m
}

// Notify builds NTFY with a status and optional routing context.
func Notify(statusType, info uint16, rc uint32) Message {
	st := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, statusType), info)
	m := Message{Class: ClassMGMT, Type: TypeNTFY, Params: []Param{{TagStatus, st}}}
	if rc != 0 {
		m.Params = append(m.Params, Param{TagRoutingContext, U32(rc)})
	}
	return m
}

// Error builds ERR with an error code.
func Error(code uint32) Message {
	return Message{Class: ClassMGMT, Type: TypeERR, Params: []Param{{TagErrorCode, U32(code)}}}
}

// Beat builds BEAT (or BEAT_ACK) with heartbeat data, which the peer
// echoes unchanged (RFC 4666 §3.5.5, §3.5.6).
func Beat(typ uint8, data []byte) Message {
	return Message{Class: ClassASPSM, Type: typ, Params: []Param{{TagHeartbeatData, data}}}
}
