// Package capscp asks a real Intelligent Network SCP where a terminal is,
// in CAMEL Application Part (3GPP TS 29.078) over TCAP, SCCP and M3UA, and
// answers such questions as the SCP (gsmSCF) from any scp.Locator.
//
// The B2BUA is the gsmSSF: it opens a TCAP dialogue with InitialDP carrying
// the IMSI (iMSI) or the MSISDN (calledPartyBCDNumber), and the SCP's
// decision maps to a Location:
//
//	Connect (routing number = IP:port)   → online at that address
//	ReleaseCall cause 17 (user busy)     → busy
//	ReleaseCall cause 20 or 18           → absent
//	ReturnError missingCustomerRecord    → scp.ErrUnknownSubscriber
//	Abort, Reject, other errors, UDTS    → scp.ErrUnavailable
//	no answer before the deadline        → scp.ErrTimeout
//
// Core INAP CS-1 is a second application context on the same stack: same
// operations, its own AC and SSN, the IMSI or MSISDN in a private extension.
package capscp

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/imcall/b2bua/scp"
	"github.com/imcall/b2bua/scp/ss7/assoc"
	"github.com/imcall/b2bua/scp/ss7/cap"
	"github.com/imcall/b2bua/scp/ss7/m3ua"
	"github.com/imcall/b2bua/scp/ss7/pcap"
	"github.com/imcall/b2bua/scp/ss7/sccp"
)

// Protocol selects the application layer.
type Protocol string

// Protocols.
const (
	CAP  Protocol = "cap"
	INAP Protocol = "inap"
)

// Defaults.
const (
	DefaultServiceKey = 100
	DefaultPrefix     = cap.DefaultRoutingPrefix
	DefaultTimeout    = scp.DefaultTimeout
	DefaultOPC        = 1
	DefaultDPC        = 2
	DefaultNI         = 2 // national network (Q.704 §14.2.2)
)

// Config configures the client (gsmSSF) side.
type Config struct {
	// URL names the SCP: cap+tcp://host:port, cap+sctp://host:port,
	// inap+tcp://..., inap+sctp://... (port 2905 when omitted). Query
	// parameters may set the fields below; see ParseURL.
	URL string

	Protocol Protocol
	Network  string // assoc.TCP or assoc.SCTP
	Addr     string // host:port

	// MTP3 routing label and M3UA routing context (0 omits it).
	OPC, DPC       uint32
	NI             uint8
	RoutingContext uint32

	// SCCP addresses. An empty GT routes on point code and SSN;
	// otherwise GT (GTI 4, E.164, international) with SSN, route on SSN.
	LocalGT, RemoteGT   string
	LocalSSN, RemoteSSN uint8 // 0 means 146 (CAP) or 241 (INAP)

	// AC is the application-context name; empty means CAP v2 or INAP CS-1.
	AC         string
	ServiceKey int64 // 0 means DefaultServiceKey
	// CalledNumber, when set, is sent as calledPartyNumber
	// (international, E.164).
	CalledNumber string
	// Prefix starts every routing number (default "9"). [non-standard]
	Prefix string

	// Timeout bounds each lookup (default 2 s).
	Timeout time.Duration
	// Beat is the M3UA BEAT interval (default 10 s).
	Beat time.Duration
	// MinBackoff, MaxBackoff bound the reconnect delay.
	MinBackoff, MaxBackoff time.Duration

	// Pcap, when set, records every M3UA message of the association.
	Pcap *pcap.Writer
	// PcapFile, when set and Pcap is not, is created and records the
	// association; Close closes it.
	PcapFile string
	Logger   *slog.Logger
}

// ParseURL fills a Config from a URL such as
// cap+tcp://10.0.0.5:2905?opc=1&dpc=2&rc=1&lgt=4930000001&rgt=4930000002&sk=100.
// Parameters: opc, dpc, ni, rc, lgt, rgt, lssn, rssn, ac, sk (service key),
// called, prefix, timeout, pcap (a capture file to write).
func ParseURL(spec string) (Config, error) {
	u, err := url.Parse(spec)
	if err != nil {
		return Config{}, fmt.Errorf("capscp: %w", err)
	}
	proto, network, ok := strings.Cut(strings.ToLower(u.Scheme), "+")
	if !ok || (proto != string(CAP) && proto != string(INAP)) || (network != assoc.TCP && network != assoc.SCTP) {
		return Config{}, fmt.Errorf("capscp: scheme %q: want cap+tcp, cap+sctp, inap+tcp or inap+sctp", u.Scheme)
	}
	if u.Host == "" {
		return Config{}, fmt.Errorf("capscp: %q has no host", spec)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = u.Host + ":" + strconv.Itoa(m3ua.Port)
	}
	c := Config{URL: spec, Protocol: Protocol(proto), Network: network, Addr: addr}
	q := u.Query()
	for k := range q {
		if !slices.Contains(urlParams, k) {
			return Config{}, fmt.Errorf("capscp: unknown parameter %q (known: %s)", k, strings.Join(urlParams, ", "))
		}
	}
	num := func(key string, bits int, dst func(uint64)) error {
		if v := q.Get(key); v != "" {
			n, err := strconv.ParseUint(v, 10, bits)
			if err != nil {
				// Say the range, not strconv's words ("value out of range").
				return fmt.Errorf("capscp: parameter %s=%s: must be a whole number from 0 to %d", key, v, uint64(1)<<bits-1)
			}
			dst(n)
		}
		return nil
	}
	if err := errors.Join(
		num("opc", 14, func(n uint64) { c.OPC = uint32(n) }),
		num("dpc", 14, func(n uint64) { c.DPC = uint32(n) }),
		num("ni", 2, func(n uint64) { c.NI = uint8(n) }),
		num("rc", 32, func(n uint64) { c.RoutingContext = uint32(n) }),
		num("lssn", 8, func(n uint64) { c.LocalSSN = uint8(n) }),
		num("rssn", 8, func(n uint64) { c.RemoteSSN = uint8(n) }),
		num("sk", 31, func(n uint64) { c.ServiceKey = int64(n) }),
	); err != nil {
		return Config{}, err
	}
	c.LocalGT, c.RemoteGT = q.Get("lgt"), q.Get("rgt")
	c.AC, c.CalledNumber, c.Prefix, c.PcapFile = q.Get("ac"), q.Get("called"), q.Get("prefix"), q.Get("pcap")
	if v := q.Get("timeout"); v != "" {
		if c.Timeout, err = time.ParseDuration(v); err != nil {
			return Config{}, fmt.Errorf("capscp: parameter timeout: %w", err)
		}
	}
	return c, nil
}

var urlParams = []string{"opc", "dpc", "ni", "rc", "lgt", "rgt", "lssn", "rssn", "ac", "sk", "called", "prefix", "timeout", "pcap"}

// withDefaults validates c and fills its defaults.
func (c Config) withDefaults() (Config, error) {
	if c.URL != "" && c.Addr == "" {
		u, err := ParseURL(c.URL)
		if err != nil {
			return Config{}, err
		}
		// Explicit fields win over the URL's.
		merge(&u, c)
		c = u
	}
	if c.Protocol == "" {
		c.Protocol = CAP
	}
	if c.Protocol != CAP && c.Protocol != INAP {
		return Config{}, fmt.Errorf("capscp: protocol %q", c.Protocol)
	}
	if c.Network == "" {
		c.Network = assoc.TCP
	}
	if c.Addr == "" {
		return Config{}, errors.New("capscp: no SCP address")
	}
	if c.OPC == 0 {
		c.OPC = DefaultOPC
	}
	if c.DPC == 0 {
		c.DPC = DefaultDPC
	}
	if c.NI == 0 {
		c.NI = DefaultNI
	}
	ssn, ac := uint8(sccp.SSNCAP), cap.ACCAPv2
	if c.Protocol == INAP {
		ssn, ac = sccp.SSNINAP, cap.ACINAPCS1
	}
	if c.LocalSSN == 0 {
		c.LocalSSN = ssn
	}
	if c.RemoteSSN == 0 {
		c.RemoteSSN = ssn
	}
	if c.AC == "" {
		c.AC = ac
	}
	if c.ServiceKey == 0 {
		c.ServiceKey = DefaultServiceKey
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	// Validate the addresses and numbers once, here, not per lookup.
	if _, err := c.localAddr().Encode(); err != nil {
		return Config{}, fmt.Errorf("capscp: local address: %w", err)
	}
	if _, err := c.remoteAddr().Encode(); err != nil {
		return Config{}, fmt.Errorf("capscp: remote address: %w", err)
	}
	if c.OPC > 0x3fff || c.DPC > 0x3fff {
		return Config{}, errors.New("capscp: point codes are 14-bit")
	}
	if c.CalledNumber != "" {
		if _, err := (cap.Number{NAI: 4, NPI: 1, Digits: c.CalledNumber}).Encode(); err != nil {
			return Config{}, fmt.Errorf("capscp: called number: %w", err)
		}
	}
	return c, nil
}

func merge(dst *Config, src Config) {
	if src.Protocol != "" {
		dst.Protocol = src.Protocol
	}
	if src.OPC != 0 {
		dst.OPC = src.OPC
	}
	if src.DPC != 0 {
		dst.DPC = src.DPC
	}
	if src.NI != 0 {
		dst.NI = src.NI
	}
	if src.RoutingContext != 0 {
		dst.RoutingContext = src.RoutingContext
	}
	if src.LocalGT != "" {
		dst.LocalGT = src.LocalGT
	}
	if src.RemoteGT != "" {
		dst.RemoteGT = src.RemoteGT
	}
	if src.LocalSSN != 0 {
		dst.LocalSSN = src.LocalSSN
	}
	if src.RemoteSSN != 0 {
		dst.RemoteSSN = src.RemoteSSN
	}
	if src.AC != "" {
		dst.AC = src.AC
	}
	if src.ServiceKey != 0 {
		dst.ServiceKey = src.ServiceKey
	}
	if src.CalledNumber != "" {
		dst.CalledNumber = src.CalledNumber
	}
	if src.Prefix != "" {
		dst.Prefix = src.Prefix
	}
	if src.Timeout != 0 {
		dst.Timeout = src.Timeout
	}
	dst.Beat, dst.MinBackoff, dst.MaxBackoff = src.Beat, src.MinBackoff, src.MaxBackoff
	if src.PcapFile != "" {
		dst.PcapFile = src.PcapFile
	}
	dst.Pcap, dst.Logger = src.Pcap, src.Logger
}

func sccpAddr(gt string, ssn uint8, pc uint32) sccp.Address {
	if gt == "" {
		return sccp.Address{RouteOnSSN: true, HasPC: true, PC: uint16(pc), SSN: ssn}
	}
	return sccp.Address{RouteOnSSN: true, SSN: ssn, GT: &sccp.GlobalTitle{Indicator: 4, NP: 1, NAI: 4, Digits: gt}}
}

func (c Config) localAddr() sccp.Address  { return sccpAddr(c.LocalGT, c.LocalSSN, c.OPC) }
func (c Config) remoteAddr() sccp.Address { return sccpAddr(c.RemoteGT, c.RemoteSSN, c.DPC) }
