package assoc

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imcall/b2bua/scp/ss7/m3ua"
)

func echoServer(t *testing.T, ln net.Listener) *Server {
	t.Helper()
	s, err := NewServer(ServerConfig{RoutingContext: 1, Handler: func(_ context.Context, pd m3ua.ProtocolData, reply Reply) {
		pd.OPC, pd.DPC = pd.DPC, pd.OPC
		_ = reply(pd)
	}})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(WrapListener(ln))
	return s
}

func listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func TestASPDataAndReconnect(t *testing.T) {
	ln := listen(t, "127.0.0.1:0")
	addr := ln.Addr().String()
	srv := echoServer(t, ln)
	got := make(chan m3ua.ProtocolData, 4)
	downs := make(chan error, 4)
	a, err := NewASP(ASPConfig{Network: TCP, Addr: addr, RoutingContext: 1, ASPID: 7, Beat: 20 * time.Millisecond,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		OnData: func(pd m3ua.ProtocolData) { got <- pd }, OnDown: func(err error) {
			select {
			case downs <- err:
			default:
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.WaitUp(ctx); err != nil {
		t.Fatal(err)
	}
	roundTrip := func() {
		t.Helper()
		if err := a.Send(m3ua.ProtocolData{OPC: 1, DPC: 2, SI: 3, NI: 2, Data: []byte("hello")}); err != nil {
			t.Fatal(err)
		}
		select {
		case pd := <-got:
			if pd.OPC != 2 || pd.DPC != 1 || !bytes.Equal(pd.Data, []byte("hello")) {
				t.Fatalf("echo %+v", pd)
			}
		case <-ctx.Done():
			t.Fatal("no echo")
		}
	}
	roundTrip()
	// Several BEAT intervals pass without the association dropping.
	time.Sleep(150 * time.Millisecond)
	if !a.Active() {
		t.Fatal("association dropped while peer answers BEAT")
	}
	// The SCP dies: the ASP reports it, Send fails fast, and it comes
	// back once the SCP listens again on the same address.
	srv.Close()
	select {
	case <-downs:
	case <-ctx.Done():
		t.Fatal("no down event")
	}
	if err := a.Send(m3ua.ProtocolData{}); !errors.Is(err, ErrNotActive) {
		t.Fatalf("send while down: %v", err)
	}
	srv2 := echoServer(t, listen(t, addr))
	defer srv2.Close()
	for !a.Active() {
		select {
		case <-ctx.Done():
			t.Fatal("did not reconnect")
		case <-time.After(5 * time.Millisecond):
		}
	}
	roundTrip()
}

// TestASPGarbageAndSilence: a peer that sends garbage, or goes silent,
// loses the association; the ASP reports it and dials again.
func TestASPGarbageAndSilence(t *testing.T) {
	for _, tc := range []struct {
		name string
		peer func(c net.Conn)
	}{
		{"garbage after handshake", func(c net.Conn) { c.Write([]byte("GET / HTTP/1.1\r\n\r\n")); time.Sleep(time.Second) }},
		{"silent after handshake", func(c net.Conn) { time.Sleep(time.Second) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln := listen(t, "127.0.0.1:0")
			defer ln.Close()
			var accepted atomic.Int32
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					accepted.Add(1)
					go func() {
						defer c.Close()
						fc := newTCPConn(c)
						for range 2 { // ASPUP, then ASPAC
							b, err := fc.ReadMsg()
							if err != nil {
								return
							}
							if m, _ := m3ua.Decode(b); m.Is(m3ua.ClassASPSM, m3ua.TypeASPUP) {
								fc.WriteMsg(m3ua.Message{Class: m3ua.ClassASPSM, Type: m3ua.TypeASPUPAck}.Encode(), 0)
							} else {
								fc.WriteMsg(m3ua.ASPActive(m3ua.TypeASPACAck, 1, 0).Encode(), 0)
							}
						}
						tc.peer(c)
					}()
				}
			}()
			downs := make(chan error, 8)
			a, err := NewASP(ASPConfig{Network: TCP, Addr: ln.Addr().String(), Beat: 20 * time.Millisecond,
				MinBackoff: 10 * time.Millisecond, OnData: func(m3ua.ProtocolData) {}, OnDown: func(err error) {
					select {
					case downs <- err:
					default: // the peer may drop us many times; one report is enough
					}
				}})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			select {
			case err := <-downs:
				t.Logf("down: %v", err)
			case <-time.After(5 * time.Second):
				t.Fatal("association not dropped")
			}
			deadline := time.Now().Add(5 * time.Second)
			for accepted.Load() < 2 {
				if time.Now().After(deadline) {
					t.Fatal("no reconnect attempt")
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}

func TestServerStateMachine(t *testing.T) {
	ln := listen(t, "127.0.0.1:0")
	srv := echoServer(t, ln)
	defer srv.Close()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := newTCPConn(nc)
	exchange := func(send m3ua.Message, want ...string) {
		t.Helper()
		if err := c.WriteMsg(send.Encode(), 0); err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			b, err := c.ReadMsg()
			if err != nil {
				t.Fatal(err)
			}
			m, _ := m3ua.Decode(b)
			if name := m.Name(); name != w {
				t.Fatalf("after %s got %s, want %s", send.Name(), name, w)
			}
			if w == "ERR" {
				code, _ := m.Uint32(m3ua.TagErrorCode)
				t.Logf("%s → ERR 0x%02x", send.Name(), code)
			}
		}
	}
	data := m3ua.Data(1, m3ua.ProtocolData{OPC: 1, DPC: 2, SI: 3, Data: []byte{1}})
	exchange(data, "ERR")                                               // DATA while down
	exchange(m3ua.ASPActive(m3ua.TypeASPAC, 1, 1), "ERR")               // ASPAC while down
	exchange(m3ua.ASPUp(1), "ASPUP_ACK")                                //
	exchange(m3ua.ASPActive(m3ua.TypeASPAC, 1, 9), "ERR")               // wrong routing context
	exchange(m3ua.ASPActive(m3ua.TypeASPAC, 1, 1), "ASPAC_ACK", "NTFY") //
	exchange(m3ua.Beat(m3ua.TypeBEAT, []byte("x")), "BEAT_ACK")         //
	exchange(data, "DATA")                                              //
	exchange(m3ua.Message{Class: 5, Type: 1}, "ERR")                    // unsupported class
	exchange(m3ua.ASPActive(m3ua.TypeASPIA, 0, 1), "ASPIA_ACK")         //
	exchange(data, "ERR")                                               // DATA while inactive
	exchange(m3ua.Message{Class: m3ua.ClassASPSM, Type: m3ua.TypeASPDN}, "ASPDN_ACK")
}

func TestSCTPAtStart(t *testing.T) {
	err := CheckNetwork(SCTP)
	if err == nil {
		t.Skip("this kernel supports SCTP")
	}
	if !errors.Is(err, ErrNoSCTP) || !strings.Contains(err.Error(), "SCTP") {
		t.Fatalf("unclear error: %v", err)
	}
	if _, err := NewASP(ASPConfig{Network: SCTP, Addr: "127.0.0.1:2905", OnData: func(m3ua.ProtocolData) {}}); !errors.Is(err, ErrNoSCTP) {
		t.Fatalf("NewASP: %v", err)
	}
	if _, err := Listen(SCTP, "127.0.0.1:0"); !errors.Is(err, ErrNoSCTP) {
		t.Fatalf("Listen: %v", err)
	}
	if err := CheckNetwork("udp"); err == nil {
		t.Fatal("udp accepted")
	}
}
