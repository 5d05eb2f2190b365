package assoc

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/imcall/b2bua/scp/ss7/m3ua"
)

// TestM3UAOverSCTP brings an association up over a real SCTP socket on
// loopback (ASPUP, ASPAC, BEAT) and echoes DATA through the server, the
// transport the README names for production. A kernel without SCTP cannot
// run it: the skip says so, and the README says SCTP is untested there.
func TestM3UAOverSCTP(t *testing.T) {
	if err := CheckNetwork(SCTP); err != nil {
		t.Skipf("NOT RUN: M3UA over SCTP is untested on this machine, its kernel has no SCTP: %v", err)
	}
	ln, err := Listen(SCTP, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(ServerConfig{RoutingContext: 1, Handler: func(_ context.Context, pd m3ua.ProtocolData, reply Reply) {
		pd.OPC, pd.DPC = pd.DPC, pd.OPC
		_ = reply(pd)
	}})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	got := make(chan m3ua.ProtocolData, 1)
	a, err := NewASP(ASPConfig{Network: SCTP, Addr: ln.Addr().String(), RoutingContext: 1, ASPID: 7, Beat: 20 * time.Millisecond,
		OnData: func(pd m3ua.ProtocolData) { got <- pd }})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.WaitUp(ctx); err != nil {
		t.Fatalf("association over SCTP to %s: %v", ln.Addr(), err)
	}
	for i := range 3 {
		msg := []byte{'m', byte('0' + i)}
		if err := a.Send(m3ua.ProtocolData{OPC: 1, DPC: 2, SI: 3, NI: 2, Data: msg}); err != nil {
			t.Fatal(err)
		}
		select {
		case pd := <-got:
			if pd.OPC != 2 || pd.DPC != 1 || !bytes.Equal(pd.Data, msg) {
				t.Fatalf("echo %d over SCTP: %+v", i, pd)
			}
		case <-ctx.Done():
			t.Fatalf("no echo %d over SCTP", i)
		}
	}
	// BEAT keeps it up for several intervals.
	time.Sleep(100 * time.Millisecond)
	if !a.Active() {
		t.Fatal("association over SCTP dropped while the peer answers BEAT")
	}
}
