// Package tcap encodes and decodes ITU-T Transaction Capabilities messages
// (Q.773): Begin, Continue, End and Abort with their transaction IDs, the
// dialogue portion (AARQ, AARE, ABRT with the application-context name) and
// the component portion (Invoke, ReturnResult, ReturnError, Reject).
// Operation arguments stay raw BER: the application layer (CAP, INAP)
// decodes them by operation code.
package tcap

import (
	"errors"
	"fmt"

	"github.com/imcall/b2bua/scp/ss7/ber"
)

// Kind is the message type: its [APPLICATION n] tag (Q.773 §4.2.1).
type Kind uint8

// Message kinds.
const (
	Unidirectional Kind = 1
	Begin          Kind = 2
	End            Kind = 4
	Continue       Kind = 5
	Abort          Kind = 7
)

func (k Kind) String() string {
	switch k {
	case Unidirectional:
		return "Unidirectional"
	case Begin:
		return "Begin"
	case End:
		return "End"
	case Continue:
		return "Continue"
	case Abort:
		return "Abort"
	}
	return fmt.Sprintf("kind %d", k)
}

// Application tags of the transaction portion (Q.773 §4.2.1).
const (
	tagOTID        = 8
	tagDTID        = 9
	tagPAbortCause = 10
	tagDialogue    = 11
	tagComponents  = 12
)

// DialogueAS is the dialogue abstract syntax, the EXTERNAL's direct
// reference (Q.773 §4.2.3: id-as-dialogue).
const DialogueAS = "0.0.17.773.1.1.1"

// P-abort causes (Q.773 §4.2.1).
const (
	PAbortUnrecognizedMessageType   = 0
	PAbortUnrecognizedTransactionID = 1
	PAbortBadlyFormattedTransaction = 2
	PAbortIncorrectTransaction      = 3
	PAbortResourceLimitation        = 4
)

// Decoding errors.
var (
	ErrMalformed = errors.New("tcap: malformed")
	ErrUnknown   = errors.New("tcap: unknown element")
)

func malformed(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, a...))
}

// Message is one TCAP message.
type Message struct {
	Kind       Kind
	OTID, DTID []byte // 1..4 octets each; which are present depends on Kind
	Dialogue   *Dialogue
	Components []Component
	// PAbortCause is set on a provider Abort (Q.773 §3.2.3).
	PAbortCause *uint8
}

// Encode returns the wire form with definite lengths.
func (m Message) Encode() ([]byte, error) {
	var parts [][]byte
	tid := func(tag uint32, id []byte) error {
		if len(id) < 1 || len(id) > 4 {
			return fmt.Errorf("tcap: transaction ID of %d octets", len(id))
		}
		parts = append(parts, ber.Prim(ber.Application, tag, id))
		return nil
	}
	switch m.Kind {
	case Begin:
		if err := tid(tagOTID, m.OTID); err != nil {
			return nil, err
		}
	case End, Abort:
		if err := tid(tagDTID, m.DTID); err != nil {
			return nil, err
		}
	case Continue:
		if err := tid(tagOTID, m.OTID); err != nil {
			return nil, err
		}
		if err := tid(tagDTID, m.DTID); err != nil {
			return nil, err
		}
	case Unidirectional:
	default:
		return nil, fmt.Errorf("tcap: cannot encode %s", m.Kind)
	}
	if m.Kind == Abort && m.PAbortCause != nil {
		parts = append(parts, ber.Prim(ber.Application, tagPAbortCause, ber.IntContent(int64(*m.PAbortCause))))
	} else if m.Dialogue != nil {
		d, err := m.Dialogue.encode()
		if err != nil {
			return nil, err
		}
		parts = append(parts, d)
	}
	if len(m.Components) > 0 {
		if m.Kind == Abort {
			return nil, errors.New("tcap: Abort carries no components")
		}
		var cs [][]byte
		for _, c := range m.Components {
			b, err := c.encode()
			if err != nil {
				return nil, err
			}
			cs = append(cs, b)
		}
		parts = append(parts, ber.Cons(ber.Application, tagComponents, cs...))
	}
	return ber.Cons(ber.Application, uint32(m.Kind), parts...), nil
}

// Decode parses one TCAP message; the whole input must be that message.
func Decode(b []byte) (Message, error) {
	top, err := ber.Decode(b)
	if err != nil {
		return Message{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if top.Class != ber.Application || !top.Constructed {
		return Message{}, fmt.Errorf("%w: message tag %s", ErrUnknown, top)
	}
	m := Message{Kind: Kind(top.Tag)}
	var want []uint32 // transaction-ID tags in order
	switch m.Kind {
	case Begin:
		want = []uint32{tagOTID}
	case End, Abort:
		want = []uint32{tagDTID}
	case Continue:
		want = []uint32{tagOTID, tagDTID}
	case Unidirectional:
	default:
		return Message{}, fmt.Errorf("%w: message type %d", ErrUnknown, top.Tag)
	}
	elems, err := top.Children()
	if err != nil {
		return Message{}, fmt.Errorf("%w: %s: %w", ErrMalformed, m.Kind, err)
	}
	for _, tag := range want {
		if len(elems) == 0 || !elems[0].Is(ber.Application, false, tag) {
			return Message{}, malformed("%s without transaction ID [APPLICATION %d]", m.Kind, tag)
		}
		if l := len(elems[0].Value); l < 1 || l > 4 {
			return Message{}, malformed("transaction ID of %d octets", l)
		}
		if tag == tagOTID {
			m.OTID = elems[0].Value
		} else {
			m.DTID = elems[0].Value
		}
		elems = elems[1:]
	}
	if m.Kind == Abort && len(elems) > 0 && elems[0].Is(ber.Application, false, tagPAbortCause) {
		v, err := ber.ParseInt(elems[0].Value)
		if err != nil || v < 0 || v > 127 {
			return Message{}, malformed("p-abort cause")
		}
		c := uint8(v)
		m.PAbortCause = &c
		elems = elems[1:]
	}
	if len(elems) > 0 && elems[0].Is(ber.Application, true, tagDialogue) {
		d, err := decodeDialogue(elems[0])
		if err != nil {
			return Message{}, err
		}
		m.Dialogue = &d
		elems = elems[1:]
	}
	if len(elems) > 0 && elems[0].Is(ber.Application, true, tagComponents) && m.Kind != Abort {
		cs, err := elems[0].Children()
		if err != nil {
			return Message{}, fmt.Errorf("%w: component portion: %w", ErrMalformed, err)
		}
		if len(cs) == 0 {
			return Message{}, malformed("empty component portion")
		}
		for _, c := range cs {
			comp, err := decodeComponent(c)
			if err != nil {
				return Message{}, err
			}
			m.Components = append(m.Components, comp)
		}
		elems = elems[1:]
	}
	if len(elems) > 0 {
		return Message{}, fmt.Errorf("%w: %s in %s", ErrUnknown, elems[0], m.Kind)
	}
	return m, nil
}

// DialogueKind is the dialogue APDU: its [APPLICATION n] tag.
type DialogueKind uint8

// Dialogue APDUs (Q.773 §4.2.3, DialoguePDUs).
const (
	AARQ DialogueKind = 0
	AARE DialogueKind = 1
	ABRT DialogueKind = 4
)

func (k DialogueKind) String() string {
	switch k {
	case AARQ:
		return "AARQ"
	case AARE:
		return "AARE"
	case ABRT:
		return "ABRT"
	}
	return fmt.Sprintf("APDU %d", k)
}

// Associate results and diagnostics (Q.773 DialoguePDUs).
const (
	ResultAccepted        = 0
	ResultRejectPermanent = 1

	DiagSourceUser     = 1 // dialogue-service-user
	DiagSourceProvider = 2 // dialogue-service-provider

	DiagNull                    = 0
	DiagNoReasonGiven           = 1
	DiagACNameNotSupported      = 2 // user
	DiagNoCommonDialoguePortion = 2 // provider
	AbortSourceServiceUser      = 0
	AbortSourceServiceProvider  = 1
)

// Dialogue is the dialogue portion's APDU.
type Dialogue struct {
	Kind DialogueKind
	// AC is the application-context name (AARQ, AARE) in dotted form.
	AC string
	// Result, DiagSource and Diag are the AARE's associate result and
	// source diagnostic.
	Result     uint8
	DiagSource uint8
	Diag       uint8
	// AbortSource is the ABRT's abort source.
	AbortSource uint8
	// UserInfo is the raw user-information [30] element, if any; kept so
	// that a decoded dialogue can be shown, not interpreted.
	UserInfo []byte
	// NoVersion omits protocol-version from AARQ/AARE (it has a DEFAULT,
	// and real equipment leaves it out); decoding sets it when absent.
	NoVersion bool
}

// version1 is protocol-version [0] IMPLICIT BIT STRING {version1(0)}: seven
// unused bits, then bit 0 set (Q.773 §4.2.3, DialoguePDUs).
var version1 = []byte{0x07, 0x80}

func (d Dialogue) encode() ([]byte, error) {
	var apdu []byte
	switch d.Kind {
	case AARQ, AARE:
		oid, err := ber.OIDContent(d.AC)
		if err != nil {
			return nil, fmt.Errorf("tcap: application context: %w", err)
		}
		var parts [][]byte
		if !d.NoVersion {
			parts = append(parts, ber.Prim(ber.Context, 0, version1))
		}
		parts = append(parts, ber.Cons(ber.Context, 1, ber.Prim(ber.Universal, ber.TagOID, oid)))
		if d.Kind == AARE {
			if d.DiagSource != DiagSourceUser && d.DiagSource != DiagSourceProvider {
				return nil, fmt.Errorf("tcap: AARE diagnostic source %d", d.DiagSource)
			}
			parts = append(parts,
				ber.Cons(ber.Context, 2, ber.Int(int64(d.Result))),
				ber.Cons(ber.Context, 3, ber.Cons(ber.Context, uint32(d.DiagSource), ber.Int(int64(d.Diag)))))
		}
		if d.UserInfo != nil {
			parts = append(parts, d.UserInfo)
		}
		apdu = ber.Cons(ber.Application, uint32(d.Kind), parts...)
	case ABRT:
		parts := [][]byte{ber.Prim(ber.Context, 0, []byte{d.AbortSource})}
		if d.UserInfo != nil {
			parts = append(parts, d.UserInfo)
		}
		apdu = ber.Cons(ber.Application, uint32(ABRT), parts...)
	default:
		return nil, fmt.Errorf("tcap: cannot encode %s", d.Kind)
	}
	// DialoguePortion ::= [APPLICATION 11] EXPLICIT EXTERNAL; the EXTERNAL
	// holds direct-reference and single-ASN1-type [0] (Q.773 §4.2.2).
	ext := ber.Cons(ber.Universal, ber.TagExternal, ber.OID(DialogueAS), ber.Cons(ber.Context, 0, apdu))
	return ber.Cons(ber.Application, tagDialogue, ext), nil
}

func decodeDialogue(e ber.TLV) (Dialogue, error) {
	kids, err := e.Children()
	if err != nil || len(kids) != 1 || !kids[0].Is(ber.Universal, true, ber.TagExternal) {
		return Dialogue{}, malformed("dialogue portion is not one EXTERNAL")
	}
	ext, err := kids[0].Children()
	if err != nil || len(ext) != 2 || !ext[0].Is(ber.Universal, false, ber.TagOID) || !ext[1].Is(ber.Context, true, 0) {
		return Dialogue{}, malformed("EXTERNAL without direct-reference and single-ASN1-type")
	}
	as, err := ber.ParseOID(ext[0].Value)
	if err != nil {
		return Dialogue{}, fmt.Errorf("%w: dialogue abstract syntax: %w", ErrMalformed, err)
	}
	if as != DialogueAS {
		// Unidirectional dialogues use id-as-uniDialogue; nothing we speak.
		return Dialogue{}, fmt.Errorf("%w: dialogue abstract syntax %s", ErrUnknown, as)
	}
	inner, err := ext[1].Children()
	if err != nil || len(inner) != 1 || inner[0].Class != ber.Application || !inner[0].Constructed {
		return Dialogue{}, malformed("single-ASN1-type is not one APDU")
	}
	apdu := inner[0]
	d := Dialogue{Kind: DialogueKind(apdu.Tag)}
	fields, err := apdu.Children()
	if err != nil {
		return Dialogue{}, fmt.Errorf("%w: %s: %w", ErrMalformed, d.Kind, err)
	}
	switch d.Kind {
	case AARQ, AARE:
		// protocol-version is optional (DEFAULT version1): real captures omit it.
		if len(fields) > 0 && fields[0].Is(ber.Context, false, 0) {
			fields = fields[1:]
		} else {
			d.NoVersion = true
		}
		if len(fields) == 0 || !fields[0].Is(ber.Context, true, 1) {
			return Dialogue{}, malformed("%s without application-context-name", d.Kind)
		}
		acn, err := fields[0].Children()
		if err != nil || len(acn) != 1 || !acn[0].Is(ber.Universal, false, ber.TagOID) {
			return Dialogue{}, malformed("application-context-name is not an OID")
		}
		if d.AC, err = ber.ParseOID(acn[0].Value); err != nil {
			return Dialogue{}, fmt.Errorf("%w: application-context-name: %w", ErrMalformed, err)
		}
		fields = fields[1:]
		if d.Kind == AARE {
			if len(fields) < 2 || !fields[0].Is(ber.Context, true, 2) || !fields[1].Is(ber.Context, true, 3) {
				return Dialogue{}, malformed("AARE without result and diagnostic")
			}
			r, err := explicitInt(fields[0], ber.Universal, ber.TagInteger)
			if err != nil {
				return Dialogue{}, fmt.Errorf("AARE result: %w", err)
			}
			d.Result = r
			diag, err := fields[1].Children()
			if err != nil || len(diag) != 1 || diag[0].Class != ber.Context || (diag[0].Tag != 1 && diag[0].Tag != 2) {
				return Dialogue{}, malformed("AARE source diagnostic")
			}
			d.DiagSource = uint8(diag[0].Tag)
			if d.Diag, err = explicitInt(diag[0], ber.Universal, ber.TagInteger); err != nil {
				return Dialogue{}, fmt.Errorf("AARE diagnostic: %w", err)
			}
			fields = fields[2:]
		}
	case ABRT:
		if len(fields) == 0 || !fields[0].Is(ber.Context, false, 0) {
			return Dialogue{}, malformed("ABRT without abort-source")
		}
		v, err := ber.ParseInt(fields[0].Value)
		if err != nil || v < 0 || v > 1 {
			return Dialogue{}, malformed("ABRT abort-source")
		}
		d.AbortSource = uint8(v)
		fields = fields[1:]
	default:
		return Dialogue{}, fmt.Errorf("%w: dialogue APDU %d", ErrUnknown, apdu.Tag)
	}
	if len(fields) > 0 && fields[0].Is(ber.Context, true, 30) {
		d.UserInfo = fields[0].Raw
		fields = fields[1:]
	}
	if len(fields) > 0 {
		return Dialogue{}, fmt.Errorf("%w: %s in %s", ErrUnknown, fields[0], d.Kind)
	}
	return d, nil
}

// explicitInt reads a constructed element holding exactly one small,
// non-negative INTEGER/ENUMERATED with the given identifier.
func explicitInt(e ber.TLV, class ber.Class, tag uint32) (uint8, error) {
	kids, err := e.Children()
	if err != nil || len(kids) != 1 || !kids[0].Is(class, false, tag) {
		return 0, malformed("%s does not hold one integer", e)
	}
	v, err := ber.ParseInt(kids[0].Value)
	if err != nil || v < 0 || v > 255 {
		return 0, malformed("integer out of range in %s", e)
	}
	return uint8(v), nil
}
