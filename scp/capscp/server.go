package capscp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/imcall/b2bua/scp"
	"github.com/imcall/b2bua/scp/ss7/assoc"
	"github.com/imcall/b2bua/scp/ss7/ber"
	"github.com/imcall/b2bua/scp/ss7/cap"
	"github.com/imcall/b2bua/scp/ss7/m3ua"
	"github.com/imcall/b2bua/scp/ss7/pcap"
	"github.com/imcall/b2bua/scp/ss7/sccp"
	"github.com/imcall/b2bua/scp/ss7/tcap"
)

// ServerConfig configures the SCP (gsmSCF) side.
type ServerConfig struct {
	// Locator supplies every subscriber's state, e.g. the simulator that
	// also serves the HTTP SCP protocol.
	Locator scp.Locator
	// RoutingContext, when not 0, is the only one accepted.
	RoutingContext uint32
	// Prefix starts every routing number (default "9").
	Prefix string
	// LocateTimeout bounds each Locator call (default 1 s).
	LocateTimeout time.Duration
	Pcap          *pcap.Writer
	Logger        *slog.Logger
}

// supportedACs are the application contexts the server accepts; a Begin
// with another is aborted naming CAP v2 (Q.773 §3.2.2 AC negotiation).
var supportedACs = []string{cap.ACCAPv1, cap.ACCAPv2, cap.ACCAPv3, cap.ACCAPv4, cap.ACINAPCS1}

// Server answers InitialDP from the Locator's state.
type Server struct {
	cfg ServerConfig
	log *slog.Logger
	srv *assoc.Server
}

// NewServer returns a server; Serve or ListenAndServe start it.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Locator == nil {
		return nil, errors.New("capscp: server needs a Locator")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.LocateTimeout <= 0 {
		cfg.LocateTimeout = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: cfg.Logger}
	var err error
	s.srv, err = assoc.NewServer(assoc.ServerConfig{RoutingContext: cfg.RoutingContext, Handler: s.handle, Pcap: cfg.Pcap, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Serve answers associations on ln until Close.
func (s *Server) Serve(ln assoc.Listener) error { return s.srv.Serve(ln) }

// Listen opens network ("tcp" or "sctp") on addr for Serve; it fails at
// once, with a clear message, where the kernel lacks SCTP.
func Listen(network, addr string) (assoc.Listener, error) {
	ln, err := assoc.Listen(network, addr)
	var oe *net.OpError
	switch {
	case errors.As(err, &oe):
		return nil, fmt.Errorf("capscp: %w", err) // it names the operation and the address
	case err != nil:
		return nil, fmt.Errorf("capscp: listen %s %s: %w", network, addr, err)
	}
	return ln, nil
}

// Close drops every association and waits for answers in progress.
func (s *Server) Close() error { return s.srv.Close() }

func (s *Server) handle(ctx context.Context, pd m3ua.ProtocolData, reply assoc.Reply) {
	if pd.SI != m3ua.SISCCP {
		return
	}
	u, err := sccp.Decode(pd.Data)
	if err != nil || (u.Type != sccp.TypeUDT && u.Type != sccp.TypeXUDT) {
		s.log.Warn("capscp server: SCCP message ignored", "err", err)
		return
	}
	req, err := tcap.Decode(u.Data)
	if err != nil {
		s.log.Warn("capscp server: undecodable TCAP", "err", err)
		return
	}
	var resp *tcap.Message
	switch req.Kind {
	case tcap.Begin:
		resp = s.answer(ctx, req)
	case tcap.Continue:
		// We never leave a dialogue open, so this transaction is unknown
		// (Q.774 §3.2.2.3).
		cause := uint8(tcap.PAbortUnrecognizedTransactionID)
		resp = &tcap.Message{Kind: tcap.Abort, DTID: req.OTID, PAbortCause: &cause}
	default: // End, Abort: nothing to answer
		return
	}
	b, err := resp.Encode()
	if err != nil {
		s.log.Error("capscp server: encode", "err", err)
		return
	}
	class := u.Class
	if u.Type == sccp.TypeXUDT {
		class &^= sccp.ReturnOnError
	}
	out, err := sccp.Message{Type: sccp.TypeUDT, Class: class, Called: u.Calling, Calling: u.Called, Data: b}.Encode()
	if err != nil {
		s.log.Error("capscp server: SCCP encode", "err", err)
		return
	}
	_ = reply(m3ua.ProtocolData{OPC: pd.DPC, DPC: pd.OPC, SI: m3ua.SISCCP, NI: pd.NI, MP: pd.MP, SLS: pd.SLS, Data: out})
}

// answer decides the reply to a Begin: one TC-END with the AARE and one
// component, or a TC-ABORT when the application context is not ours.
func (s *Server) answer(ctx context.Context, req tcap.Message) *tcap.Message {
	end := &tcap.Message{Kind: tcap.End, DTID: req.OTID}
	if d := req.Dialogue; d != nil {
		if d.Kind != tcap.AARQ {
			cause := uint8(tcap.PAbortIncorrectTransaction)
			return &tcap.Message{Kind: tcap.Abort, DTID: req.OTID, PAbortCause: &cause}
		}
		if !slices.Contains(supportedACs, d.AC) {
			return &tcap.Message{Kind: tcap.Abort, DTID: req.OTID, Dialogue: &tcap.Dialogue{Kind: tcap.AARE, AC: cap.ACCAPv2,
				Result: tcap.ResultRejectPermanent, DiagSource: tcap.DiagSourceUser, Diag: tcap.DiagACNameNotSupported}}
		}
		end.Dialogue = &tcap.Dialogue{Kind: tcap.AARE, AC: d.AC, Result: tcap.ResultAccepted, DiagSource: tcap.DiagSourceUser, Diag: tcap.DiagNull}
	}
	var invoke *tcap.Component
	for i, c := range req.Components {
		if c.Kind == tcap.Invoke {
			invoke = &req.Components[i]
			break
		}
	}
	if invoke == nil {
		// Nothing to act on: end the dialogue (Q.771 basic end).
		return end
	}
	reject := func(problem int64) *tcap.Message {
		end.Components = []tcap.Component{{Kind: tcap.Reject, InvokeID: invoke.InvokeID, ProblemType: tcap.ProblemInvoke, Problem: problem}}
		return end
	}
	if invoke.Op.Global != "" || invoke.Op.Local != cap.OpInitialDP {
		return reject(tcap.InvokeUnrecognizedOp)
	}
	arg, err := cap.DecodeInitialDPArg(invoke.Parameter)
	if err != nil {
		s.log.Info("capscp server: bad InitialDP", "err", err)
		return reject(tcap.InvokeMistypedArgument)
	}
	returnError := func(code int64, param []byte) *tcap.Message {
		end.Components = []tcap.Component{{Kind: tcap.ReturnError, InvokeID: invoke.InvokeID, Error: tcap.Code{Local: code}, Parameter: param}}
		return end
	}
	id, ok := subscriberID(arg)
	if !ok {
		return returnError(cap.ErrCodeMissingParameter, nil)
	}
	lctx, cancel := context.WithTimeout(ctx, s.cfg.LocateTimeout)
	defer cancel()
	loc, err := s.cfg.Locator.Locate(lctx, id)
	switch {
	case errors.Is(err, scp.ErrUnknownSubscriber):
		return returnError(cap.ErrCodeMissingCustomerRecord, nil)
	case err != nil:
		s.log.Warn("capscp server: locate", "id", id, "err", err)
		// systemFailure's parameter is UnavailableNetworkResource;
		// unavailableResources(0) (TS 29.078 CAP-errortypes).
		return returnError(cap.ErrCodeSystemFailure, ber.Prim(ber.Universal, ber.TagEnumerated, []byte{0}))
	}
	invokeOp := func(op int64, param []byte) *tcap.Message {
		end.Components = []tcap.Component{{Kind: tcap.Invoke, InvokeID: 1, Op: tcap.Code{Local: op}, Parameter: param}}
		return end
	}
	release := func(cause uint8) *tcap.Message {
		return invokeOp(cap.OpReleaseCall, cap.EncodeReleaseCallArg(cap.Cause{Value: cause}))
	}
	s.log.Debug("capscp server: answer", "id", id, "state", loc.State, "addr", loc.Addr)
	switch loc.State {
	case scp.Online:
		c, err := s.connect(loc.Addr)
		if err != nil {
			s.log.Warn("capscp server: online subscriber without a usable address", "id", id, "err", err)
			return returnError(cap.ErrCodeSystemFailure, ber.Prim(ber.Universal, ber.TagEnumerated, []byte{0}))
		}
		return invokeOp(cap.OpConnect, c)
	case scp.Busy:
		return release(cap.CauseUserBusy)
	default:
		return release(cap.CauseSubscriberAbsent)
	}
}

// subscriberID names whom an InitialDP asks about, in the Locator's
// "type:value" form: the IMSI when there is one (iMSI [50], or INAP's
// extension), else the MSISDN the subscriber is called at
// (calledPartyBCDNumber [56], or INAP's extension). Only an international
// E.164 number is an MSISDN; any other is no identity we can look up.
func subscriberID(arg cap.InitialDPArg) (string, bool) {
	imsi := arg.IMSI
	if imsi == "" {
		if v, ok := cap.Find(arg.Extensions, cap.OIDIMSI); ok {
			imsi, _ = cap.DecodeIMSI(v)
		}
	}
	if imsi != "" {
		return "imsi:" + imsi, true
	}
	n := arg.CalledPartyBCDNumber
	if n == nil {
		if v, ok := cap.Find(arg.Extensions, cap.OIDMSISDN); ok {
			if d, err := cap.DecodeBCDNumber(v); err == nil {
				n = &d
			}
		}
	}
	if n == nil || n.TON != cap.TONInternational || n.NPI != cap.NPIE164 || n.Digits == "" {
		return "", false
	}
	return "msisdn:+" + n.Digits, true
}

func (s *Server) connect(ap netip.AddrPort) ([]byte, error) {
	c, err := cap.ConnectTo(s.cfg.Prefix, ap)
	if err != nil {
		return nil, err
	}
	return c.Encode()
}
