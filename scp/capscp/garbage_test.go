package capscp

import (
	"bufio"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imcall/b2bua/scp"
	"github.com/imcall/b2bua/scp/ss7/m3ua"
)

// TestGarbageOnAssociation: an SCP that answers a lookup with bytes that
// are not M3UA loses the association; the lookup fails at once (not at its
// deadline) and the client connects again.
func TestGarbageOnAssociation(t *testing.T) {
	ln := listen(t, "127.0.0.1:0")
	defer ln.Close()
	var conns atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					b, err := m3ua.ReadMessage(r)
					if err != nil {
						return
					}
					m, _ := m3ua.Decode(b)
					switch {
					case m.Is(m3ua.ClassASPSM, m3ua.TypeASPUP):
						c.Write(m3ua.Message{Class: m3ua.ClassASPSM, Type: m3ua.TypeASPUPAck}.Encode())
					case m.Is(m3ua.ClassASPTM, m3ua.TypeASPAC):
						c.Write(m3ua.ASPActive(m3ua.TypeASPACAck, 1, 1).Encode())
					case m.Is(m3ua.ClassXFER, m3ua.TypeDATA):
						c.Write([]byte("\x07garbage, not M3UA at all\r\n"))
					}
				}
			}()
		}
	}()
	c := newClient(t, Config{Addr: ln.Addr().String(), Timeout: 30 * time.Second})
	done := make(chan error, 1)
	go func() {
		_, err := c.Locate(context.Background(), "imsi:"+imsiOnline)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, scp.ErrUnavailable) {
			t.Fatalf("lookup answered with garbage: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("lookup waited for its deadline")
	}
	waitUntil(t, 10*time.Second, "the client to reconnect", func() bool { return conns.Load() >= 2 })
	if n := c.openTransactions(); n != 0 {
		t.Fatalf("%d transactions left open", n)
	}
}
