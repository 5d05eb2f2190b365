package capscp

import (
	"context"
	"testing"

	"github.com/imcall/b2bua/scp/ss7/assoc"
)

// TestOutcomesOverSCTP looks every outcome up through the real gsmSCF
// server over an M3UA association on a real SCTP socket (cap+sctp), the
// production transport. A kernel without SCTP cannot run it: the skip
// says so, and the README says SCTP is untested there.
func TestOutcomesOverSCTP(t *testing.T) {
	if err := assoc.CheckNetwork(assoc.SCTP); err != nil {
		t.Skipf("NOT RUN: CAP over SCTP is untested on this machine, its kernel has no SCTP: %v", err)
	}
	ln, err := assoc.Listen(assoc.SCTP, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(ServerConfig{Locator: newSim(t), RoutingContext: 1})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	c := newClient(t, Config{Network: assoc.SCTP, Addr: ln.Addr().String()})
	for _, o := range outcomes {
		loc, err := c.Locate(context.Background(), o.id)
		check(t, o, loc, err)
	}
}
