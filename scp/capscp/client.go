package capscp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/imcall/b2bua/scp"
	"github.com/imcall/b2bua/scp/ss7/assoc"
	"github.com/imcall/b2bua/scp/ss7/cap"
	"github.com/imcall/b2bua/scp/ss7/m3ua"
	"github.com/imcall/b2bua/scp/ss7/pcap"
	"github.com/imcall/b2bua/scp/ss7/sccp"
	"github.com/imcall/b2bua/scp/ss7/tcap"
)

// Client is the scp.Locator that asks an SCP over one M3UA association.
// Lookups run concurrently: each owns a TCAP transaction ID, and only the
// table of open transactions is locked, never the round trip.
type Client struct {
	cfg     Config
	log     *slog.Logger
	asp     *assoc.ASP
	next    atomic.Uint32
	capture io.Closer // the PcapFile, if New opened it

	mu      sync.Mutex
	pending map[uint32]chan answer
}

type answer struct {
	msg tcap.Message
	err error
}

// New validates cfg and starts the association in the background; a
// lookup made before it is up fails at once with scp.ErrUnavailable. An
// SCTP URL fails here when the kernel has no SCTP.
func New(cfg Config) (*Client, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, log: cfg.Logger.With("scp", cfg.Addr, "protocol", cfg.Protocol), pending: map[uint32]chan answer{}}
	if cfg.Pcap == nil && cfg.PcapFile != "" {
		f, err := os.Create(cfg.PcapFile)
		if err != nil {
			return nil, fmt.Errorf("capscp: capture: %w", err)
		}
		if c.cfg.Pcap, err = pcap.NewWriter(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("capscp: capture: %w", err)
		}
		c.capture = f
	}
	c.asp, err = assoc.NewASP(assoc.ASPConfig{
		Network: cfg.Network, Addr: cfg.Addr, RoutingContext: cfg.RoutingContext,
		Beat: cfg.Beat, MinBackoff: cfg.MinBackoff, MaxBackoff: cfg.MaxBackoff,
		HandshakeTimeout: max(cfg.Timeout, DefaultTimeout),
		OnData:           c.onData, OnDown: c.onDown, Pcap: c.cfg.Pcap, Logger: c.log,
	})
	if err != nil {
		if c.capture != nil {
			c.capture.Close()
		}
		return nil, fmt.Errorf("capscp: %w", err)
	}
	return c, nil
}

// WaitUp blocks until the association has come up once (for callers that
// want the first lookup not to fail while it is still connecting).
func (c *Client) WaitUp(ctx context.Context) error { return c.asp.WaitUp(ctx) }

// Close takes the association down and closes the capture file. Lookups
// in flight fail.
func (c *Client) Close() error {
	err := c.asp.Close()
	if c.capture != nil {
		err = errors.Join(err, c.capture.Close())
	}
	return err
}

// Locate implements scp.Locator for "imsi:DIGITS" and "msisdn:+E164"
// identities; a MAC has no place in an InitialDP and is unknown to a CAP SCP.
func (c *Client) Locate(ctx context.Context, mobileID string) (scp.Location, error) {
	arg, err := c.initialDP(mobileID)
	if err != nil {
		return scp.Location{}, fmt.Errorf("capscp: %q: %w (%v)", mobileID, scp.ErrUnknownSubscriber, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()

	tid := c.next.Add(1)
	if tid == 0 { // wrapped; 0 stays unused so that a zero dtid never matches
		tid = c.next.Add(1)
	}
	otid := binary.BigEndian.AppendUint32(nil, tid)
	ch := make(chan answer, 1)
	c.mu.Lock()
	c.pending[tid] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, tid)
		c.mu.Unlock()
	}()

	begin := tcap.Message{Kind: tcap.Begin, OTID: otid, Dialogue: &tcap.Dialogue{Kind: tcap.AARQ, AC: c.cfg.AC},
		Components: []tcap.Component{{Kind: tcap.Invoke, InvokeID: 1, Op: tcap.Code{Local: cap.OpInitialDP}, Parameter: arg}}}
	if err := c.send(begin, uint8(tid)); err != nil {
		return scp.Location{}, fmt.Errorf("capscp: %w: %w", scp.ErrUnavailable, err)
	}
	select {
	case a := <-ch:
		if a.err != nil {
			return scp.Location{}, fmt.Errorf("capscp: %s: %w", mobileID, a.err)
		}
		return c.decide(mobileID, a.msg)
	case <-ctx.Done():
		// Q.774 §3.2.2.1: local termination; a late answer then meets
		// an unknown transaction and is discarded.
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return scp.Location{}, fmt.Errorf("capscp: %s: %w", mobileID, scp.ErrTimeout)
		}
		return scp.Location{}, fmt.Errorf("capscp: %s: %w", mobileID, ctx.Err())
	}
}

// initialDP builds the argument that asks for mobileID: an IMSI goes in
// iMSI [50]; an MSISDN, the number the terminal is called at, in
// calledPartyBCDNumber [56] (TS 29.078), international E.164. INAP CS-1
// has neither field, so there each travels in a private extension.
// [non-standard]
func (c *Client) initialDP(mobileID string) ([]byte, error) {
	event := uint8(cap.EventTermAttemptAuthorized)
	a := cap.InitialDPArg{ServiceKey: c.cfg.ServiceKey, EventTypeBCSM: &event}
	if c.cfg.CalledNumber != "" {
		a.CalledPartyNumber = &cap.Number{NAI: 4, NPI: 1, Digits: c.cfg.CalledNumber}
	}
	typ, val, _ := strings.Cut(mobileID, ":")
	switch typ {
	case "imsi":
		if c.cfg.Protocol == INAP {
			b, err := cap.EncodeIMSI(val)
			if err != nil {
				return nil, err
			}
			a.Extensions = []cap.Extension{{OID: cap.OIDIMSI, Value: b}}
		} else {
			a.IMSI = val
		}
	case "msisdn":
		d, ok := strings.CutPrefix(val, "+")
		if !ok || d == "" {
			return nil, errors.New("an MSISDN is E.164 with its leading +")
		}
		n := cap.BCDNumber{TON: cap.TONInternational, NPI: cap.NPIE164, Digits: d}
		if c.cfg.Protocol == INAP {
			b, err := n.Encode()
			if err != nil {
				return nil, err
			}
			a.Extensions = []cap.Extension{{OID: cap.OIDMSISDN, Value: b}}
		} else {
			a.CalledPartyBCDNumber = &n
		}
	default:
		return nil, errors.New("CAP locates IMSIs and MSISDNs only")
	}
	return a.Encode()
}

// send wraps a TCAP message in SCCP UDT and M3UA DATA. Class 1 with one SLS
// per dialogue keeps a dialogue's messages in sequence (Q.714 §1.1.2.2).
func (c *Client) send(m tcap.Message, sls uint8) error {
	t, err := m.Encode()
	if err != nil {
		return err
	}
	u, err := sccp.Message{Type: sccp.TypeUDT, Class: sccp.Class1 | sccp.ReturnOnError,
		Called: c.cfg.remoteAddr(), Calling: c.cfg.localAddr(), Data: t}.Encode()
	if err != nil {
		return err
	}
	return c.asp.Send(m3ua.ProtocolData{OPC: c.cfg.OPC, DPC: c.cfg.DPC, SI: m3ua.SISCCP, NI: c.cfg.NI, SLS: sls & 0x0f, Data: u})
}

// onData runs on the association's read goroutine: it decodes and hands
// the message to the waiting lookup without blocking.
func (c *Client) onData(pd m3ua.ProtocolData) {
	u, err := sccp.Decode(pd.Data)
	if err != nil {
		c.log.Warn("capscp: undecodable SCCP", "err", err)
		return
	}
	m, err := tcap.Decode(u.Data)
	if err != nil {
		c.log.Warn("capscp: undecodable TCAP", "err", err)
		return
	}
	if u.Type == sccp.TypeUDTS || u.Type == sccp.TypeXUDTS {
		// Our own Begin came back undelivered (Q.714 §4.2).
		if m.Kind == tcap.Begin && len(m.OTID) == 4 {
			c.deliver(binary.BigEndian.Uint32(m.OTID), answer{err: fmt.Errorf("%w: SCCP could not deliver: %s",
				scp.ErrUnavailable, sccp.ReturnCauseText(u.Cause))})
		}
		return
	}
	var tid uint32
	switch m.Kind {
	case tcap.End, tcap.Continue, tcap.Abort:
		if len(m.DTID) != 4 {
			c.log.Warn("capscp: answer with a foreign transaction ID", "dtid", m.DTID)
			return
		}
		tid = binary.BigEndian.Uint32(m.DTID)
	default:
		c.log.Warn("capscp: unexpected TCAP message from the SCP", "kind", m.Kind)
		return
	}
	if !c.deliver(tid, answer{msg: m}) {
		c.log.Debug("capscp: answer for no open transaction (late or unknown)", "tid", tid, "kind", m.Kind)
		if m.Kind == tcap.Continue {
			// Q.774 §3.2.2.3: abort what the peer still holds open.
			cause := uint8(tcap.PAbortUnrecognizedTransactionID)
			_ = c.send(tcap.Message{Kind: tcap.Abort, DTID: m.OTID, PAbortCause: &cause}, uint8(tid))
		}
	}
}

func (c *Client) deliver(tid uint32, a answer) bool {
	c.mu.Lock()
	ch, ok := c.pending[tid]
	delete(c.pending, tid)
	c.mu.Unlock()
	if ok {
		ch <- a // buffered, and each transaction is delivered once
	}
	return ok
}

// onDown fails every lookup in flight at once: the SCP is gone, waiting
// for the deadline would only delay the caller's answer.
func (c *Client) onDown(err error) {
	c.mu.Lock()
	pending := c.pending
	c.pending = map[uint32]chan answer{}
	c.mu.Unlock()
	for _, ch := range pending {
		ch <- answer{err: fmt.Errorf("%w: association lost: %v", scp.ErrUnavailable, err)}
	}
}

// decide maps the SCP's answer to a Location (see the package comment).
func (c *Client) decide(id string, m tcap.Message) (scp.Location, error) {
	fail := func(format string, a ...any) (scp.Location, error) {
		return scp.Location{}, fmt.Errorf("capscp: %s: %w: %s", id, scp.ErrUnavailable, fmt.Sprintf(format, a...))
	}
	if m.Kind == tcap.Continue {
		// The SCP kept the dialogue open (e.g. to arm events, which we do
		// not support): act on its components, then end the dialogue.
		defer func() { _ = c.send(tcap.Message{Kind: tcap.End, DTID: m.OTID}, 0) }()
	}
	if m.Kind == tcap.Abort {
		switch {
		case m.PAbortCause != nil:
			return fail("TC-ABORT from the provider, cause %d", *m.PAbortCause)
		case m.Dialogue != nil && m.Dialogue.Kind == tcap.AARE:
			return fail("dialogue refused (result %d, diagnostic %d; the SCP supports %s)", m.Dialogue.Result, m.Dialogue.Diag, m.Dialogue.AC)
		}
		return fail("TC-ABORT")
	}
	if d := m.Dialogue; d != nil && d.Kind == tcap.AARE && d.Result != tcap.ResultAccepted {
		return fail("dialogue refused (diagnostic %d)", d.Diag)
	}
	for _, comp := range m.Components {
		switch comp.Kind {
		case tcap.Invoke:
			switch comp.Op.Local {
			case cap.OpConnect:
				arg, err := cap.DecodeConnectArg(comp.Parameter)
				if err != nil {
					return fail("Connect: %v", err)
				}
				addr, err := arg.Destination(c.cfg.Prefix)
				if err != nil {
					return fail("Connect: %v", err)
				}
				return scp.Location{Addr: addr, State: scp.Online}, nil
			case cap.OpReleaseCall:
				cause, err := cap.DecodeReleaseCallArg(comp.Parameter)
				if err != nil {
					return fail("ReleaseCall: %v", err)
				}
				switch cause.Value {
				case cap.CauseUserBusy:
					return scp.Location{State: scp.Busy}, nil
				case cap.CauseSubscriberAbsent, cap.CauseNoUserResponding:
					return scp.Location{State: scp.Absent}, nil
				case cap.CauseUnallocatedNumber:
					return scp.Location{}, fmt.Errorf("capscp: %s: %w (released, cause 1)", id, scp.ErrUnknownSubscriber)
				}
				return fail("ReleaseCall with cause %d", cause.Value)
			case cap.OpContinue:
				return fail("Continue carries no routing address")
			}
			// Other operations (e.g. event arming) are not ours to act on.
		case tcap.ReturnError:
			if comp.Error.Global == "" && comp.Error.Local == cap.ErrCodeMissingCustomerRecord {
				return scp.Location{}, fmt.Errorf("capscp: %s: %w (missingCustomerRecord)", id, scp.ErrUnknownSubscriber)
			}
			return fail("ReturnError %s", comp.Error)
		case tcap.Reject:
			return fail("Reject, problem %d/%d", comp.ProblemType, comp.Problem)
		}
	}
	return fail("%s without a decision", m.Kind)
}

var _ scp.Locator = (*Client)(nil)
