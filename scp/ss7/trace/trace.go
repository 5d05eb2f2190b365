// Package trace prints SS7 signalling decoded field by field, layer by
// layer (M3UA, SCCP, TCAP, CAP/INAP), so that an operator can read a trace
// without Wireshark. It never fails on bad input: what does not decode is
// printed as an error line and as hex.
package trace

import (
	"encoding/hex"
	"fmt"
	"io"
	"strings"

	"github.com/imcall/b2bua/scp/ss7/ber"
	"github.com/imcall/b2bua/scp/ss7/cap"
	"github.com/imcall/b2bua/scp/ss7/m3ua"
	"github.com/imcall/b2bua/scp/ss7/sccp"
	"github.com/imcall/b2bua/scp/ss7/tcap"
)

// Layer names the outermost protocol of a message.
type Layer string

// Layers.
const (
	LayerM3UA Layer = "m3ua"
	LayerSCCP Layer = "sccp"
	LayerTCAP Layer = "tcap"
)

// Guess picks the outermost layer from the first octet: M3UA starts with
// version 1, SCCP connectionless with its message type, TCAP with an
// [APPLICATION n] constructed tag.
func Guess(b []byte) Layer {
	if len(b) == 0 {
		return LayerM3UA
	}
	switch b[0] {
	case m3ua.Version:
		return LayerM3UA
	case sccp.TypeUDT, sccp.TypeUDTS, sccp.TypeXUDT, sccp.TypeXUDTS:
		return LayerSCCP
	}
	return LayerTCAP
}

// ParseHex reads a hex dump: pairs of hex digits, ignoring whitespace,
// colons, "0x" prefixes and leading offsets such as "0000:" at line start.
func ParseHex(s string) ([]byte, error) {
	var sb strings.Builder
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		// "0010: 01 00 ..." or "0x0010  01 00": drop an offset column.
		if f := strings.Fields(line); len(f) > 1 && (strings.HasSuffix(f[0], ":") || (len(f[0]) > 2 && len(f[0])%2 == 0 && strings.HasPrefix(f[0], "0x"))) {
			line = strings.Join(f[1:], " ")
		}
		line = strings.ReplaceAll(line, "0x", "")
		for _, r := range line {
			if r == ' ' || r == '\t' || r == ':' || r == ',' || r == '\r' {
				continue
			}
			sb.WriteRune(r)
		}
	}
	return hex.DecodeString(sb.String())
}

type printer struct {
	w     io.Writer
	depth int
}

func (p *printer) f(format string, a ...any) {
	fmt.Fprintf(p.w, "%s%s\n", strings.Repeat("  ", p.depth), fmt.Sprintf(format, a...))
}

func (p *printer) in(f func()) { p.depth++; f(); p.depth-- }

func (p *printer) bad(layer string, err error, b []byte) {
	p.f("!! %s: %v", layer, err)
	p.f("   raw: % x", b)
}

// Describe prints one message starting at the given layer.
func Describe(w io.Writer, layer Layer, b []byte) {
	p := &printer{w: w}
	switch layer {
	case LayerSCCP:
		p.sccp(b)
	case LayerTCAP:
		p.tcap(b, 0)
	default:
		p.m3ua(b)
	}
}

func (p *printer) m3ua(b []byte) {
	m, err := m3ua.Decode(b)
	if err != nil {
		p.bad("M3UA", err, b)
		return
	}
	p.f("M3UA %s (class %d, type %d, length %d)", m.Name(), m.Class, m.Type, len(b))
	p.in(func() {
		for _, prm := range m.Params {
			switch prm.Tag {
			case m3ua.TagProtocolData:
				pd, err := m3ua.DecodeProtocolData(prm.Value)
				if err != nil {
					p.bad("protocol data", err, prm.Value)
					continue
				}
				p.f("Protocol Data: OPC %d, DPC %d, SI %d, NI %d, MP %d, SLS %d", pd.OPC, pd.DPC, pd.SI, pd.NI, pd.MP, pd.SLS)
				if pd.SI == m3ua.SISCCP {
					p.in(func() { p.sccp(pd.Data) })
				} else {
					p.in(func() { p.f("user part: % x", pd.Data) })
				}
			case m3ua.TagRoutingContext, m3ua.TagASPIdentifier, m3ua.TagTrafficModeType, m3ua.TagErrorCode, m3ua.TagNetworkAppearance, m3ua.TagCorrelationID:
				v, _ := m.Uint32(prm.Tag)
				p.f("%s: %d", paramName(prm.Tag), v)
			case m3ua.TagStatus:
				if len(prm.Value) == 4 {
					p.f("Status: type %d, info %d", int(prm.Value[0])<<8|int(prm.Value[1]), int(prm.Value[2])<<8|int(prm.Value[3]))
				} else {
					p.f("Status: % x", prm.Value)
				}
			case m3ua.TagInfoString:
				p.f("Info String: %q", prm.Value)
			default:
				p.f("%s: % x", paramName(prm.Tag), prm.Value)
			}
		}
	})
}

func paramName(tag uint16) string {
	names := map[uint16]string{
		m3ua.TagInfoString: "Info String", m3ua.TagRoutingContext: "Routing Context", m3ua.TagDiagnostic: "Diagnostic",
		m3ua.TagHeartbeatData: "Heartbeat Data", m3ua.TagTrafficModeType: "Traffic Mode Type", m3ua.TagErrorCode: "Error Code",
		m3ua.TagStatus: "Status", m3ua.TagASPIdentifier: "ASP Identifier", m3ua.TagAffectedPointCode: "Affected Point Code",
		m3ua.TagCorrelationID: "Correlation ID", m3ua.TagNetworkAppearance: "Network Appearance", m3ua.TagProtocolData: "Protocol Data",
	}
	if n, ok := names[tag]; ok {
		return n
	}
	return fmt.Sprintf("parameter 0x%04x", tag)
}

func (p *printer) sccp(b []byte) {
	u, err := sccp.Decode(b)
	if err != nil {
		p.bad("SCCP", err, b)
		return
	}
	name := map[uint8]string{sccp.TypeUDT: "UDT", sccp.TypeUDTS: "UDTS", sccp.TypeXUDT: "XUDT", sccp.TypeXUDTS: "XUDTS"}[u.Type]
	p.f("SCCP %s", name)
	p.in(func() {
		if u.Type == sccp.TypeUDT || u.Type == sccp.TypeXUDT {
			p.f("Protocol class: %d, return on error: %v", u.Class&0x0f, u.Class&sccp.ReturnOnError != 0)
		} else {
			p.f("Return cause: %d (%s)", u.Cause, sccp.ReturnCauseText(u.Cause))
		}
		if u.Type == sccp.TypeXUDT || u.Type == sccp.TypeXUDTS {
			p.f("Hop counter: %d", u.HopCounter)
		}
		p.f("Called party: %s", u.Called)
		p.f("Calling party: %s", u.Calling)
		ssn := u.Called.SSN
		p.tcap(u.Data, ssn)
	})
}

func (p *printer) tcap(b []byte, ssn uint8) {
	m, err := tcap.Decode(b)
	if err != nil {
		p.bad("TCAP", err, b)
		return
	}
	p.f("TCAP %s", m.Kind)
	p.in(func() {
		if m.OTID != nil {
			p.f("otid: %x", m.OTID)
		}
		if m.DTID != nil {
			p.f("dtid: %x", m.DTID)
		}
		if m.PAbortCause != nil {
			p.f("p-abort cause: %d (%s)", *m.PAbortCause, pAbortText(*m.PAbortCause))
		}
		ac := ""
		if d := m.Dialogue; d != nil {
			ac = d.AC
			switch d.Kind {
			case tcap.AARQ:
				p.f("Dialogue AARQ: application context %s (%s)", d.AC, acName(d.AC))
			case tcap.AARE:
				p.f("Dialogue AARE: application context %s (%s), result %s, diagnostic %s %d",
					d.AC, acName(d.AC), map[uint8]string{0: "accepted", 1: "reject-permanent"}[d.Result],
					map[uint8]string{1: "service-user", 2: "service-provider"}[d.DiagSource], d.Diag)
			case tcap.ABRT:
				p.f("Dialogue ABRT: abort source %d", d.AbortSource)
			}
		}
		inap := ac == cap.ACINAPCS1 || (ac == "" && ssn == 241)
		for _, c := range m.Components {
			p.component(c, inap)
		}
	})
}

func pAbortText(c uint8) string {
	t := []string{"unrecognizedMessageType", "unrecognizedTransactionID", "badlyFormattedTransactionPortion", "incorrectTransactionPortion", "resourceLimitation"}
	if int(c) < len(t) {
		return t[c]
	}
	return "?"
}

func acName(ac string) string {
	switch ac {
	case cap.ACCAPv1:
		return "CAP v1 gsmSSF-to-gsmSCF"
	case cap.ACCAPv2:
		return "CAP v2 gsmSSF-to-gsmSCF"
	case cap.ACCAPv3:
		return "CAP v3 gsmSSF-scfGeneric"
	case cap.ACCAPv4:
		return "CAP v4 gsmSSF-scfGeneric"
	case cap.ACINAPCS1:
		return "Core INAP CS-1 SSP-to-SCP"
	}
	return "unknown"
}

func opName(op tcap.Code) string {
	if op.Global != "" {
		return op.Global
	}
	n := map[int64]string{cap.OpInitialDP: "initialDP", cap.OpConnect: "connect", cap.OpReleaseCall: "releaseCall",
		cap.OpRequestReportBCSMEvent: "requestReportBCSMEvent", cap.OpEventReportBCSM: "eventReportBCSM",
		cap.OpContinue: "continue", cap.OpActivityTest: "activityTest"}[op.Local]
	if n == "" {
		n = "?"
	}
	return fmt.Sprintf("%d (%s)", op.Local, n)
}

func errName(c tcap.Code) string {
	n := map[int64]string{cap.ErrCodeMissingCustomerRecord: "missingCustomerRecord", cap.ErrCodeMissingParameter: "missingParameter",
		cap.ErrCodeParameterOutOfRange: "parameterOutOfRange", cap.ErrCodeSystemFailure: "systemFailure", cap.ErrCodeTaskRefused: "taskRefused",
		cap.ErrCodeUnexpectedComponentSequence: "unexpectedComponentSequence", cap.ErrCodeUnexpectedDataValue: "unexpectedDataValue",
		cap.ErrCodeUnexpectedParameter: "unexpectedParameter"}[c.Local]
	if c.Global != "" || n == "" {
		return c.String()
	}
	return fmt.Sprintf("%d (%s)", c.Local, n)
}

func (p *printer) component(c tcap.Component, inap bool) {
	switch c.Kind {
	case tcap.Invoke:
		p.f("Invoke id %d, operation %s", c.InvokeID, opName(c.Op))
	case tcap.ReturnResult, tcap.ReturnResultNotLast:
		p.f("%s id %d, operation %s", c.Kind, c.InvokeID, opName(c.Op))
	case tcap.ReturnError:
		p.f("ReturnError id %d, error %s", c.InvokeID, errName(c.Error))
	case tcap.Reject:
		id := fmt.Sprint(c.InvokeID)
		if c.NoInvokeID {
			id = "none"
		}
		p.f("Reject id %s, problem %s %d", id, []string{"general", "invoke", "returnResult", "returnError"}[c.ProblemType], c.Problem)
	}
	if c.Parameter == nil {
		return
	}
	p.in(func() {
		if c.Kind != tcap.Invoke || c.Op.Global != "" {
			p.tree(c.Parameter)
			return
		}
		switch c.Op.Local {
		case cap.OpInitialDP:
			a, err := cap.DecodeInitialDPArg(c.Parameter)
			if err != nil {
				p.bad("InitialDPArg", err, c.Parameter)
				return
			}
			p.f("serviceKey: %d", a.ServiceKey)
			if n := a.CalledPartyNumber; n != nil {
				p.f("calledPartyNumber: %s", number(*n))
			}
			if n := a.CallingPartyNumber; n != nil {
				p.f("callingPartyNumber: %s", number(*n))
			}
			if a.EventTypeBCSM != nil {
				p.f("eventTypeBCSM: %d%s", *a.EventTypeBCSM, map[uint8]string{2: " (collectedInfo)", 12: " (termAttemptAuthorized)"}[*a.EventTypeBCSM])
			}
			if a.IMSI != "" {
				p.f("iMSI: %s", a.IMSI)
			}
			if n := a.CalledPartyBCDNumber; n != nil {
				p.f("calledPartyBCDNumber: %s", bcdNumber(*n))
			}
			p.extensions(a.Extensions)
		case cap.OpConnect:
			a, err := cap.DecodeConnectArg(c.Parameter)
			if err != nil {
				p.bad("ConnectArg", err, c.Parameter)
				return
			}
			p.f("destinationRoutingAddress: %s", number(a.DestinationRoutingAddress))
			if _, ext := cap.Find(a.Extensions, cap.OIDAddress); ext {
				// The address is in the extension; the number is a placeholder.
			} else if ap, err := cap.DecodeRoutingNumber(cap.DefaultRoutingPrefix, a.DestinationRoutingAddress); err == nil {
				p.f("  = %s (IP routing number, prefix %s)", ap, cap.DefaultRoutingPrefix)
			}
			p.extensions(a.Extensions)
		case cap.OpReleaseCall:
			cause, err := cap.DecodeReleaseCallArg(c.Parameter)
			if err != nil {
				p.bad("ReleaseCallArg", err, c.Parameter)
				return
			}
			p.f("cause: %d (%s), location %d", cause.Value, causeText(cause.Value), cause.Location)
		default:
			p.tree(c.Parameter)
		}
	})
}

func (p *printer) extensions(exts []cap.Extension) {
	for _, e := range exts {
		switch e.OID {
		case cap.OIDAddress:
			ap, err := cap.DecodeAddressExtension(e.Value)
			if err == nil {
				p.f("extension %s (IP address): %s", e.OID, ap)
				continue
			}
		case cap.OIDIMSI:
			if s, err := cap.DecodeIMSI(e.Value); err == nil {
				p.f("extension %s (IMSI): %s", e.OID, s)
				continue
			}
		case cap.OIDMSISDN:
			if n, err := cap.DecodeBCDNumber(e.Value); err == nil {
				p.f("extension %s (MSISDN): %s", e.OID, bcdNumber(n))
				continue
			}
		}
		p.f("extension %s: % x", e.OID, e.Value)
	}
}

func number(n cap.Number) string {
	nai := map[uint8]string{1: "subscriber", 2: "unknown", 3: "national", 4: "international", 5: "network-specific"}[n.NAI]
	npi := map[uint8]string{1: "ISDN/E.164", 5: "private"}[n.NPI]
	return fmt.Sprintf("%s (NAI %d %s, NPI %d %s)", n.Digits, n.NAI, nai, n.NPI, npi)
}

// bcdNumber shows a TS 24.008 number; type 1 with plan 1 is how an MSISDN
// travels, so it is also shown in the "+" form the registry uses.
func bcdNumber(n cap.BCDNumber) string {
	ton := map[uint8]string{0: "unknown", 1: "international", 2: "national", 3: "network-specific", 4: "dedicated access"}[n.TON]
	npi := map[uint8]string{0: "unknown", 1: "ISDN/E.164", 9: "private"}[n.NPI]
	s := fmt.Sprintf("%s (type %d %s, plan %d %s)", n.Digits, n.TON, ton, n.NPI, npi)
	if n.TON == cap.TONInternational && n.NPI == cap.NPIE164 {
		s += ", MSISDN +" + n.Digits
	}
	return s
}

func causeText(v uint8) string {
	return map[uint8]string{1: "unallocated number", 16: "normal call clearing", 17: "user busy", 18: "no user responding",
		20: "subscriber absent", 31: "normal, unspecified"}[v]
}

// tree prints a BER element generically.
func (p *printer) tree(b []byte) {
	e, err := ber.Decode(b)
	if err != nil {
		p.bad("BER", err, b)
		return
	}
	var walk func(e ber.TLV)
	walk = func(e ber.TLV) {
		if !e.Constructed {
			p.f("%s: % x", e, e.Value)
			return
		}
		p.f("%s", e)
		kids, err := e.Children()
		if err != nil {
			p.in(func() { p.bad("BER", err, e.Value) })
			return
		}
		p.in(func() {
			for _, k := range kids {
				walk(k)
			}
		})
	}
	walk(e)
}
