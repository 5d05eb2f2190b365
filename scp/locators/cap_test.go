package locators

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/imcall/b2bua/scp"
	"github.com/imcall/b2bua/scp/capscp"
	"github.com/imcall/b2bua/scp/sim"
	"github.com/imcall/b2bua/scp/ss7/assoc"
)

func TestOpenCAP(t *testing.T) {
	s, err := sim.New(sim.Config{Subscribers: []sim.Subscriber{
		{ID: "imsi:001010000000001", Addr: netip.MustParseAddrPort("127.0.0.1:5062"), State: scp.Online},
	}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := capscp.NewServer(capscp.ServerConfig{Locator: s, RoutingContext: 1})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(assoc.WrapListener(ln))
	defer srv.Close()

	l, err := Open(context.Background(), "cap+tcp://"+ln.Addr().String()+"?rc=1&timeout=2s", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer Close(l)
	deadline := time.Now().Add(5 * time.Second)
	for {
		loc, err := l.Locate(context.Background(), "imsi:001010000000001")
		if err == nil {
			if loc.State != scp.Online || loc.Addr.String() != "127.0.0.1:5062" {
				t.Fatalf("%+v", loc)
			}
			break
		}
		// The association comes up in the background.
		if !errors.Is(err, scp.ErrUnavailable) || time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, bad := range []string{"cap+tcp://127.0.0.1:1?colour=blue", "inap+udp://127.0.0.1:1"} {
		if l, err := Open(context.Background(), bad, Options{}); err == nil {
			Close(l)
			t.Errorf("%s accepted", bad)
		}
	}
}
