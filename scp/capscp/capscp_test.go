package capscp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/imcall/b2bua/scp"
	"github.com/imcall/b2bua/scp/sim"
	"github.com/imcall/b2bua/scp/ss7/assoc"
	"github.com/imcall/b2bua/scp/ss7/cap"
	"github.com/imcall/b2bua/scp/ss7/m3ua"
	"github.com/imcall/b2bua/scp/ss7/pcap"
	"github.com/imcall/b2bua/scp/ss7/sccp"
	vectors "github.com/imcall/b2bua/scp/ss7/ss7test"
	"github.com/imcall/b2bua/scp/ss7/tcap"
)

const (
	imsiOnline  = "001010123456789"
	imsiBusy    = "001010000000002"
	imsiAbsent  = "001010000000003"
	imsiOnline6 = "001010000000004"
	imsiUnknown = "001010000000099"
	// MSISDN subscribers, located by the number in calledPartyBCDNumber.
	msisdnOnline  = "+441632960001"
	msisdnBusy    = "+441632960002"
	msisdnUnknown = "+441632960099"
)

var (
	addrOnline = netip.MustParseAddrPort("192.0.2.10:5060")
	addrMSISDN = netip.MustParseAddrPort("192.0.2.12:5062")
)

func newSim(t testing.TB) *sim.Simulator {
	t.Helper()
	s, err := sim.New(sim.Config{Subscribers: []sim.Subscriber{
		{ID: "imsi:" + imsiOnline, Addr: addrOnline, State: scp.Online},
		{ID: "imsi:" + imsiBusy, Addr: netip.MustParseAddrPort("192.0.2.11:5060"), State: scp.Busy},
		{ID: "imsi:" + imsiAbsent, State: scp.Absent},
		{ID: "imsi:" + imsiOnline6, Addr: netip.MustParseAddrPort("[2001:db8::10]:5060"), State: scp.Online},
		{ID: "msisdn:" + msisdnOnline, Addr: addrMSISDN, State: scp.Online},
		{ID: "msisdn:" + msisdnBusy, State: scp.Busy},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func listen(t testing.TB, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	var err error
	// Re-listening on a just-closed port can race the kernel briefly.
	for range 50 {
		if ln, err = net.Listen("tcp", addr); err == nil {
			return ln
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal(err)
	return nil
}

// startSCP runs the real gsmSCF server on ln.
func startSCP(t testing.TB, ln net.Listener, loc scp.Locator, w *pcap.Writer) *Server {
	t.Helper()
	s, err := NewServer(ServerConfig{Locator: loc, RoutingContext: 1, Pcap: w})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(assoc.WrapListener(ln))
	t.Cleanup(func() { s.Close() })
	return s
}

func newClient(t testing.TB, cfg Config) *Client {
	t.Helper()
	if cfg.RoutingContext == 0 {
		cfg.RoutingContext = 1
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff, cfg.MaxBackoff = 10*time.Millisecond, 50*time.Millisecond
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.WaitUp(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

type outcome struct {
	id    string
	state scp.State
	addr  netip.AddrPort
	err   error
}

var outcomes = []outcome{
	{"imsi:" + imsiOnline, scp.Online, addrOnline, nil},
	{"imsi:" + imsiBusy, scp.Busy, netip.AddrPort{}, nil},
	{"imsi:" + imsiAbsent, scp.Absent, netip.AddrPort{}, nil},
	{"imsi:" + imsiOnline6, scp.Online, netip.MustParseAddrPort("[2001:db8::10]:5060"), nil},
	{"imsi:" + imsiUnknown, "", netip.AddrPort{}, scp.ErrUnknownSubscriber},
	{"mac:00:1a:2b:3c:4d:5e", "", netip.AddrPort{}, scp.ErrUnknownSubscriber},
	{"imsi:12", "", netip.AddrPort{}, scp.ErrUnknownSubscriber},
	{"msisdn:" + msisdnOnline, scp.Online, addrMSISDN, nil},
	{"msisdn:" + msisdnBusy, scp.Busy, netip.AddrPort{}, nil},
	{"msisdn:" + msisdnUnknown, "", netip.AddrPort{}, scp.ErrUnknownSubscriber},
	{"msisdn:441632960001", "", netip.AddrPort{}, scp.ErrUnknownSubscriber}, // no '+': not E.164
}

func check(t testing.TB, o outcome, loc scp.Location, err error) {
	t.Helper()
	if o.err != nil {
		if !errors.Is(err, o.err) {
			t.Errorf("%s: err %v, want %v", o.id, err, o.err)
		}
		return
	}
	if err != nil || loc.State != o.state || loc.Addr != o.addr {
		t.Errorf("%s: got %+v, %v; want %s %v", o.id, loc, err, o.state, o.addr)
	}
}

func TestOutcomes(t *testing.T) {
	for _, proto := range []Protocol{CAP, INAP} {
		t.Run(string(proto), func(t *testing.T) {
			ln := listen(t, "127.0.0.1:0")
			startSCP(t, ln, newSim(t), nil)
			c := newClient(t, Config{Protocol: proto, Addr: ln.Addr().String()})
			for _, o := range outcomes {
				loc, err := c.Locate(context.Background(), o.id)
				check(t, o, loc, err)
			}
		})
	}
}

func TestURL(t *testing.T) {
	c, err := ParseURL("cap+tcp://127.0.0.1?opc=5&dpc=6&rc=7&lgt=4930000001&rgt=4930000002&sk=42&timeout=300ms&called=491701234567")
	if err != nil {
		t.Fatal(err)
	}
	if c.Network != assoc.TCP || c.Addr != "127.0.0.1:2905" || c.OPC != 5 || c.DPC != 6 || c.RoutingContext != 7 ||
		c.LocalGT != "4930000001" || c.ServiceKey != 42 || c.Timeout != 300*time.Millisecond || c.CalledNumber != "491701234567" {
		t.Fatalf("%+v", c)
	}
	for _, bad := range []string{"http://x", "cap+udp://x:1", "cap+tcp://", "cap+tcp://x?opc=99999", "cap+tcp://x?timeout=soon"} {
		if _, err := ParseURL(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	// A number out of its field's range says the range, not strconv's words.
	for bad, want := range map[string]string{
		"cap+tcp://x?opc=99999": "capscp: parameter opc=99999: must be a whole number from 0 to 16383",
		"cap+tcp://x?ni=x":      "capscp: parameter ni=x: must be a whole number from 0 to 3",
	} {
		if _, err := ParseURL(bad); err == nil || err.Error() != want {
			t.Errorf("%s: %v, want %q", bad, err, want)
		}
	}
	if _, err := New(Config{URL: "cap+tcp://127.0.0.1:1?lgt=12ab"}); err == nil {
		t.Error("bad GT accepted")
	}
	if err := assoc.CheckNetwork(assoc.SCTP); err != nil {
		if _, err := New(Config{URL: "cap+sctp://127.0.0.1:2905"}); !errors.Is(err, assoc.ErrNoSCTP) {
			t.Errorf("cap+sctp without kernel SCTP: %v", err)
		}
	}
}

// TestConcurrent: hundreds of lookups in parallel over one association.
func TestConcurrent(t *testing.T) {
	ln := listen(t, "127.0.0.1:0")
	startSCP(t, ln, newSim(t), nil)
	c := newClient(t, Config{Addr: ln.Addr().String(), Timeout: 10 * time.Second})
	const n = 400
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := outcomes[i%5]
			loc, err := c.Locate(context.Background(), o.id)
			check(t, o, loc, err)
		}()
	}
	wg.Wait()
	if n := c.openTransactions(); n != 0 {
		t.Fatalf("%d transactions left open", n)
	}
}

// waitUntil polls cond every millisecond and fails the test, naming what
// it waited for, when cond is still false after within.
func waitUntil(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(within); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", within, what)
		}
	}
}

func (c *Client) openTransactions() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// blockingLocator never answers until released: an SCP that is slow.
type blockingLocator struct{ release chan struct{} }

func (b blockingLocator) Locate(ctx context.Context, _ string) (scp.Location, error) {
	select {
	case <-b.release:
	case <-ctx.Done():
	}
	return scp.Location{}, scp.ErrUnavailable
}

// TestSCPDeath: the SCP dies mid-lookup; the lookup fails at once with
// ErrUnavailable (not at its 30 s deadline), lookups fail fast while it is
// down, and the client reconnects once it is back.
func TestSCPDeath(t *testing.T) {
	ln := listen(t, "127.0.0.1:0")
	addr := ln.Addr().String()
	block := blockingLocator{release: make(chan struct{})}
	defer close(block.release)
	srv, err := NewServer(ServerConfig{Locator: block, LocateTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(assoc.WrapListener(ln))
	c := newClient(t, Config{Addr: addr, Timeout: 30 * time.Second})
	done := make(chan error, 1)
	go func() {
		_, err := c.Locate(context.Background(), "imsi:"+imsiOnline)
		done <- err
	}()
	waitUntil(t, 10*time.Second, "the lookup's transaction to open", func() bool { return c.openTransactions() > 0 })
	go srv.Close()
	err = <-done
	if !errors.Is(err, scp.ErrUnavailable) {
		t.Fatalf("lookup during SCP death: %v", err)
	}
	if _, err := c.Locate(context.Background(), "imsi:"+imsiOnline); !errors.Is(err, scp.ErrUnavailable) {
		t.Fatalf("lookup while SCP down: %v", err)
	}
	startSCP(t, listen(t, addr), newSim(t), nil)
	deadline := time.Now().Add(10 * time.Second)
	for {
		loc, err := c.Locate(context.Background(), "imsi:"+imsiOnline)
		if err == nil {
			if loc.Addr != addrOnline {
				t.Fatalf("after reconnect: %+v", loc)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no reconnect: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fakeSCP answers each Begin with what respond returns (raw TCAP; nil
// sends nothing), wrapped in UDT — or as given when it is already SCCP.
func fakeSCP(t *testing.T, respond func(req tcap.Message, raw []byte) (reply []byte, sccpType uint8)) (string, chan []byte) {
	t.Helper()
	ln := listen(t, "127.0.0.1:0")
	seen := make(chan []byte, 16)
	s, err := assoc.NewServer(assoc.ServerConfig{Handler: func(_ context.Context, pd m3ua.ProtocolData, reply assoc.Reply) {
		u, err := sccp.Decode(pd.Data)
		if err != nil {
			t.Error(err)
			return
		}
		seen <- u.Data
		req, err := tcap.Decode(u.Data)
		if err != nil || req.Kind != tcap.Begin {
			return
		}
		out, typ := respond(req, u.Data)
		if out == nil {
			return
		}
		r := sccp.Message{Type: typ, Class: sccp.Class1, Cause: 3, Called: u.Calling, Calling: u.Called, Data: out}
		b, _ := r.Encode()
		_ = reply(m3ua.ProtocolData{OPC: pd.DPC, DPC: pd.OPC, SI: 3, NI: pd.NI, SLS: pd.SLS, Data: b})
	}})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(assoc.WrapListener(ln))
	t.Cleanup(func() { s.Close() })
	return ln.Addr().String(), seen
}

// withDTID rewrites a verified End/Abort vector for the request's otid.
func withDTID(t *testing.T, vec string, otid []byte) []byte {
	b := bytes.Clone(vectors.Get(t, vec))
	i := bytes.Index(b, []byte{0x49, 0x04, 0, 0, 0, 1})
	copy(b[i+2:], otid)
	return b
}

func TestFaults(t *testing.T) {
	tests := []struct {
		name    string
		respond func(t *testing.T, req tcap.Message, raw []byte) ([]byte, uint8)
		want    error
	}{
		{"abort AC not supported", func(t *testing.T, req tcap.Message, _ []byte) ([]byte, uint8) {
			return withDTID(t, "tcap-abort-ac-not-supported", req.OTID), sccp.TypeUDT
		}, scp.ErrUnavailable},
		{"p-abort", func(t *testing.T, req tcap.Message, _ []byte) ([]byte, uint8) {
			return withDTID(t, "tcap-abort-unrecognized-tid", req.OTID), sccp.TypeUDT
		}, scp.ErrUnavailable},
		{"reject", func(t *testing.T, req tcap.Message, _ []byte) ([]byte, uint8) {
			return withDTID(t, "tcap-end-reject-mistyped", req.OTID), sccp.TypeUDT
		}, scp.ErrUnavailable},
		{"missing customer record", func(t *testing.T, req tcap.Message, _ []byte) ([]byte, uint8) {
			return withDTID(t, "tcap-end-missing-customer-record", req.OTID), sccp.TypeUDT
		}, scp.ErrUnknownSubscriber},
		{"UDTS subsystem failure", func(t *testing.T, _ tcap.Message, raw []byte) ([]byte, uint8) {
			return raw, sccp.TypeUDTS
		}, scp.ErrUnavailable},
		{"garbage TCAP", func(t *testing.T, _ tcap.Message, _ []byte) ([]byte, uint8) {
			return []byte{0x64, 0x03, 0xde, 0xad}, sccp.TypeUDT
		}, scp.ErrTimeout},
		{"no answer", func(t *testing.T, _ tcap.Message, _ []byte) ([]byte, uint8) { return nil, 0 }, scp.ErrTimeout},
		{"bad routing number", func(t *testing.T, req tcap.Message, _ []byte) ([]byte, uint8) {
			b := withDTID(t, "tcap-end-connect", req.OTID)
			b[len(b)-9] = 0x59 // first octet digit 2 → 5: octet 925
			return b, sccp.TypeUDT
		}, scp.ErrUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr, _ := fakeSCP(t, func(req tcap.Message, raw []byte) ([]byte, uint8) { return tc.respond(t, req, raw) })
			c := newClient(t, Config{Addr: addr, Timeout: 200 * time.Millisecond})
			_, err := c.Locate(context.Background(), "imsi:"+imsiOnline)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			t.Log(err)
			if n := c.openTransactions(); n != 0 {
				t.Fatalf("%d transactions left open", n)
			}
		})
	}
}

// TestContinue: an SCP that answers with TC-CONTINUE gets its Connect
// acted on, and the client ends the dialogue.
func TestContinue(t *testing.T) {
	addr, seen := fakeSCP(t, func(req tcap.Message, _ []byte) ([]byte, uint8) {
		end, _ := tcap.Decode(vectors.Get(t, "tcap-end-connect"))
		m := tcap.Message{Kind: tcap.Continue, OTID: []byte{9, 9, 9, 9}, DTID: req.OTID, Dialogue: end.Dialogue, Components: end.Components}
		b, _ := m.Encode()
		return b, sccp.TypeUDT
	})
	c := newClient(t, Config{Addr: addr})
	loc, err := c.Locate(context.Background(), "imsi:"+imsiOnline)
	if err != nil || loc.Addr != addrOnline {
		t.Fatalf("%+v %v", loc, err)
	}
	<-seen // the Begin
	select {
	case b := <-seen:
		m, err := tcap.Decode(b)
		if err != nil || m.Kind != tcap.End || !bytes.Equal(m.DTID, []byte{9, 9, 9, 9}) {
			t.Fatalf("after Continue the client sent %+v %v", m, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("client did not end the dialogue")
	}
}

// TestLateAnswer: an answer after the deadline is discarded; it neither
// leaks a transaction nor reaches the next lookup.
func TestLateAnswer(t *testing.T) {
	var mu sync.Mutex
	delay := 300 * time.Millisecond
	answered := make(chan struct{}, 4)
	addr, _ := fakeSCP(t, func(req tcap.Message, _ []byte) ([]byte, uint8) {
		mu.Lock()
		d := delay
		delay = 0
		mu.Unlock()
		time.Sleep(d)
		defer func() { answered <- struct{}{} }()
		if d > 0 {
			return withDTID(t, "tcap-end-release-busy", req.OTID), sccp.TypeUDT
		}
		return withDTID(t, "tcap-end-connect", req.OTID), sccp.TypeUDT
	})
	c := newClient(t, Config{Addr: addr, Timeout: 100 * time.Millisecond})
	if _, err := c.Locate(context.Background(), "imsi:"+imsiOnline); !errors.Is(err, scp.ErrTimeout) {
		t.Fatalf("first lookup: %v", err)
	}
	c.cfg.Timeout = 5 * time.Second
	loc, err := c.Locate(context.Background(), "imsi:"+imsiOnline)
	if err != nil || loc.State != scp.Online {
		t.Fatalf("second lookup got %+v %v (the late busy answer leaked?)", loc, err)
	}
	<-answered
	<-answered
	if n := c.openTransactions(); n != 0 {
		t.Fatalf("%d transactions left open", n)
	}
}

// TestVectorsOnTheWire: the client's first DATA is byte for byte the
// verified M3UA message of the brief, and the server's answers are the
// verified TC-END messages.
func TestVectorsOnTheWire(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wire.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pcap.NewWriter(f)
	if err != nil {
		t.Fatal(err)
	}
	ln := listen(t, "127.0.0.1:0")
	startSCP(t, ln, newSim(t), nil)
	c := newClient(t, Config{Addr: ln.Addr().String(), LocalGT: "4930000002", RemoteGT: "4930000001",
		CalledNumber: "491701234567", Pcap: w})
	want := []struct {
		id, vec string
	}{
		{"imsi:" + imsiOnline, "tcap-end-connect"},
		{"imsi:" + imsiOnline, "tcap-end-connect"},
		{"imsi:" + imsiBusy, "tcap-end-release-busy"},
		{"imsi:" + imsiAbsent, "tcap-end-release-absent"},
		{"imsi:" + imsiUnknown, "tcap-end-missing-customer-record"},
	}
	for _, w := range want {
		c.Locate(context.Background(), w.id)
	}
	c.Close()
	f.Close()
	f, _ = os.Open(path)
	defer f.Close()
	pkts, err := pcap.ReadM3UA(f)
	if err != nil {
		t.Fatal(err)
	}
	var data [][]byte
	for _, p := range pkts {
		if m, _ := m3ua.Decode(p.Data); m.Is(m3ua.ClassXFER, m3ua.TypeDATA) {
			data = append(data, p.Data)
		}
	}
	if len(data) != 2*len(want) {
		t.Fatalf("%d DATA messages", len(data))
	}
	if got := data[0]; !bytes.Equal(got, vectors.Get(t, "m3ua-data-begin")) {
		t.Fatalf("first Begin\n got % x\nwant % x", got, vectors.Get(t, "m3ua-data-begin"))
	}
	for i, w := range want {
		m, _ := m3ua.Decode(data[2*i+1])
		pd, _ := m3ua.DataOf(m)
		u, err := sccp.Decode(pd.Data)
		if err != nil {
			t.Fatal(err)
		}
		otid := []byte{0, 0, 0, byte(i + 1)}
		if exp := withDTID(t, w.vec, otid); !bytes.Equal(u.Data, exp) {
			t.Errorf("answer %d (%s)\n got % x\nwant % x", i, w.vec, u.Data, exp)
		}
	}
}

func ExampleNew() {
	c, err := New(Config{URL: "cap+tcp://127.0.0.1:2905?opc=1&dpc=2&rc=1&sk=100"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	fmt.Println(c.cfg.AC, c.cfg.LocalSSN, c.cfg.RemoteSSN)
	// Output: 0.4.0.0.1.0.50.1 146 146
}

// TestSubscriberID: what the gsmSCF looks up for an InitialDP. The IMSI is
// the terminal's own identity and wins; a number is an MSISDN only when it
// is international E.164.
func TestSubscriberID(t *testing.T) {
	msisdn := &cap.BCDNumber{TON: cap.TONInternational, NPI: cap.NPIE164, Digits: "441632960001"}
	ext, _ := msisdn.Encode()
	imsiExt, _ := cap.EncodeIMSI(imsiOnline)
	tests := []struct {
		name string
		arg  cap.InitialDPArg
		want string // "" : nothing to look up
	}{
		{"imsi", cap.InitialDPArg{IMSI: imsiOnline}, "imsi:" + imsiOnline},
		{"imsi wins", cap.InitialDPArg{IMSI: imsiOnline, CalledPartyBCDNumber: msisdn}, "imsi:" + imsiOnline},
		{"msisdn", cap.InitialDPArg{CalledPartyBCDNumber: msisdn}, "msisdn:+441632960001"},
		{"inap imsi", cap.InitialDPArg{Extensions: []cap.Extension{{OID: cap.OIDIMSI, Value: imsiExt}}}, "imsi:" + imsiOnline},
		{"inap msisdn", cap.InitialDPArg{Extensions: []cap.Extension{{OID: cap.OIDMSISDN, Value: ext}}}, "msisdn:+441632960001"},
		{"national number", cap.InitialDPArg{CalledPartyBCDNumber: &cap.BCDNumber{TON: 2, NPI: 1, Digits: "1632960001"}}, ""},
		{"private plan", cap.InitialDPArg{CalledPartyBCDNumber: &cap.BCDNumber{TON: 1, NPI: 9, Digits: "441632960001"}}, ""},
		{"no digits", cap.InitialDPArg{CalledPartyBCDNumber: &cap.BCDNumber{TON: 1, NPI: 1}}, ""},
		{"calledPartyNumber only", cap.InitialDPArg{CalledPartyNumber: &cap.Number{NAI: 4, NPI: 1, Digits: "441632960001"}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := subscriberID(tc.arg)
			if got != tc.want || ok != (tc.want != "") {
				t.Fatalf("got %q %v, want %q", got, ok, tc.want)
			}
		})
	}
}
