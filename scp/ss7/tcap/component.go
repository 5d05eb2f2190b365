package tcap

import (
	"fmt"

	"github.com/imcall/b2bua/scp/ss7/ber"
)

// ComponentKind is the component type: its context tag (Q.773 §4.2.2).
type ComponentKind uint8

// Component kinds.
const (
	Invoke              ComponentKind = 1
	ReturnResult        ComponentKind = 2 // ReturnResultLast
	ReturnError         ComponentKind = 3
	Reject              ComponentKind = 4
	ReturnResultNotLast ComponentKind = 7
)

func (k ComponentKind) String() string {
	switch k {
	case Invoke:
		return "Invoke"
	case ReturnResult:
		return "ReturnResultLast"
	case ReturnError:
		return "ReturnError"
	case Reject:
		return "Reject"
	case ReturnResultNotLast:
		return "ReturnResultNotLast"
	}
	return fmt.Sprintf("component %d", k)
}

// Reject problem types: the context tag of the problem CHOICE (Q.773 §4.2.2).
const (
	ProblemGeneral      = 0
	ProblemInvoke       = 1
	ProblemReturnResult = 2
	ProblemReturnError  = 3
)

// Invoke problems (Q.773 §4.2.2).
const (
	InvokeDuplicateID        = 0
	InvokeUnrecognizedOp     = 1
	InvokeMistypedArgument   = 2
	InvokeResourceLimitation = 3
)

// Code is an operation or error code: local INTEGER or global OID.
type Code struct {
	Local  int64
	Global string // set for a global code
}

func (c Code) encode() ([]byte, error) {
	if c.Global != "" {
		oid, err := ber.OIDContent(c.Global)
		if err != nil {
			return nil, err
		}
		return ber.Prim(ber.Universal, ber.TagOID, oid), nil
	}
	return ber.Int(c.Local), nil
}

// String shows the code as a number or an OID.
func (c Code) String() string {
	if c.Global != "" {
		return c.Global
	}
	return fmt.Sprint(c.Local)
}

func decodeCode(e ber.TLV) (Code, error) {
	switch {
	case e.Is(ber.Universal, false, ber.TagInteger):
		v, err := ber.ParseInt(e.Value)
		if err != nil {
			return Code{}, fmt.Errorf("%w: code: %w", ErrMalformed, err)
		}
		return Code{Local: v}, nil
	case e.Is(ber.Universal, false, ber.TagOID):
		s, err := ber.ParseOID(e.Value)
		if err != nil {
			return Code{}, fmt.Errorf("%w: code: %w", ErrMalformed, err)
		}
		return Code{Global: s}, nil
	}
	return Code{}, malformed("code is %s", e)
}

// Component is one element of the component portion.
type Component struct {
	Kind ComponentKind
	// InvokeID is the invoke ID (-128..127). NoInvokeID is set on a Reject
	// whose invoke ID was not derivable (NULL).
	InvokeID   int8
	NoInvokeID bool
	LinkedID   *int8
	// Op is the operation code (Invoke, ReturnResult with result).
	Op Code
	// HasResult says a ReturnResult carries the result sequence.
	HasResult bool
	// Error is the error code of a ReturnError.
	Error Code
	// Parameter is the raw BER of the argument, result or error parameter.
	Parameter []byte
	// ProblemType and Problem describe a Reject.
	ProblemType uint8
	Problem     int64
}

func (c Component) encode() ([]byte, error) {
	var parts [][]byte
	if c.Kind == Reject && c.NoInvokeID {
		parts = append(parts, ber.Prim(ber.Universal, ber.TagNull, nil))
	} else {
		parts = append(parts, ber.Int(int64(c.InvokeID)))
	}
	switch c.Kind {
	case Invoke:
		if c.LinkedID != nil {
			parts = append(parts, ber.Prim(ber.Context, 0, ber.IntContent(int64(*c.LinkedID))))
		}
		op, err := c.Op.encode()
		if err != nil {
			return nil, err
		}
		parts = append(parts, op)
		if c.Parameter != nil {
			parts = append(parts, c.Parameter)
		}
	case ReturnResult, ReturnResultNotLast:
		if c.HasResult {
			op, err := c.Op.encode()
			if err != nil {
				return nil, err
			}
			parts = append(parts, ber.Seq(op, c.Parameter))
		}
	case ReturnError:
		code, err := c.Error.encode()
		if err != nil {
			return nil, err
		}
		parts = append(parts, code)
		if c.Parameter != nil {
			parts = append(parts, c.Parameter)
		}
	case Reject:
		if c.ProblemType > 3 {
			return nil, fmt.Errorf("tcap: reject problem type %d", c.ProblemType)
		}
		parts = append(parts, ber.Prim(ber.Context, uint32(c.ProblemType), ber.IntContent(c.Problem)))
	default:
		return nil, fmt.Errorf("tcap: cannot encode %s", c.Kind)
	}
	return ber.Cons(ber.Context, uint32(c.Kind), parts...), nil
}

func decodeComponent(e ber.TLV) (Component, error) {
	if e.Class != ber.Context || !e.Constructed {
		return Component{}, fmt.Errorf("%w: component %s", ErrUnknown, e)
	}
	c := Component{Kind: ComponentKind(e.Tag)}
	switch c.Kind {
	case Invoke, ReturnResult, ReturnError, Reject, ReturnResultNotLast:
	default:
		return Component{}, fmt.Errorf("%w: component %s", ErrUnknown, e)
	}
	f, err := e.Children()
	if err != nil {
		return Component{}, fmt.Errorf("%w: %s: %w", ErrMalformed, c.Kind, err)
	}
	if len(f) == 0 {
		return Component{}, malformed("%s without invoke ID", c.Kind)
	}
	switch {
	case f[0].Is(ber.Universal, false, ber.TagInteger):
		id, err := smallInt(f[0].Value)
		if err != nil {
			return Component{}, err
		}
		c.InvokeID = id
	case c.Kind == Reject && f[0].Is(ber.Universal, false, ber.TagNull) && len(f[0].Value) == 0:
		c.NoInvokeID = true
	default:
		return Component{}, malformed("%s invoke ID is %s", c.Kind, f[0])
	}
	f = f[1:]
	switch c.Kind {
	case Invoke:
		if len(f) > 0 && f[0].Is(ber.Context, false, 0) {
			id, err := smallInt(f[0].Value)
			if err != nil {
				return Component{}, err
			}
			c.LinkedID = &id
			f = f[1:]
		}
		if len(f) == 0 {
			return Component{}, malformed("Invoke without operation code")
		}
		if c.Op, err = decodeCode(f[0]); err != nil {
			return Component{}, err
		}
		f = f[1:]
		if len(f) > 0 {
			c.Parameter, f = f[0].Raw, f[1:]
		}
	case ReturnResult, ReturnResultNotLast:
		if len(f) > 0 {
			if !f[0].Is(ber.Universal, true, ber.TagSequence) {
				return Component{}, malformed("ReturnResult result is %s", f[0])
			}
			r, err := f[0].Children()
			if err != nil || len(r) != 2 {
				return Component{}, malformed("ReturnResult result is not {opcode, result}")
			}
			if c.Op, err = decodeCode(r[0]); err != nil {
				return Component{}, err
			}
			c.HasResult, c.Parameter = true, r[1].Raw
			f = f[1:]
		}
	case ReturnError:
		if len(f) == 0 {
			return Component{}, malformed("ReturnError without error code")
		}
		if c.Error, err = decodeCode(f[0]); err != nil {
			return Component{}, err
		}
		f = f[1:]
		if len(f) > 0 {
			c.Parameter, f = f[0].Raw, f[1:]
		}
	case Reject:
		if len(f) == 0 || f[0].Class != ber.Context || f[0].Constructed || f[0].Tag > 3 {
			return Component{}, malformed("Reject without problem")
		}
		c.ProblemType = uint8(f[0].Tag)
		if c.Problem, err = ber.ParseInt(f[0].Value); err != nil {
			return Component{}, fmt.Errorf("%w: reject problem: %w", ErrMalformed, err)
		}
		f = f[1:]
	}
	if len(f) > 0 {
		return Component{}, fmt.Errorf("%w: %s in %s", ErrUnknown, f[0], c.Kind)
	}
	return c, nil
}

func smallInt(b []byte) (int8, error) {
	v, err := ber.ParseInt(b)
	if err != nil || v < -128 || v > 127 {
		return 0, malformed("invoke ID out of range")
	}
	return int8(v), nil
}
