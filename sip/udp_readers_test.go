package sip_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/scp"
)

func withReaders(n int) envOpt { return func(c *b2bConfig) { c.UDPReaders = n } }

// TestUDPReadersSpreadFlows sends one OPTIONS from each of 16 sockets (16
// flows) to a server with 4 UDP readers on its port: every one is
// answered, from the SIP port, and the kernel has handed them to more
// than one reader.
func TestUDPReadersSpreadFlows(t *testing.T) {
	e := newEnv(t, withReaders(4))
	const flows = 16
	for i := 0; i < flows; i++ {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		local := c.LocalAddr().String()
		msg := fmt.Sprintf("OPTIONS sip:b2bua@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-spread%d\r\nFrom: <sip:p@127.0.0.1>;tag=%d\r\nTo: <sip:b2bua@127.0.0.1>\r\nCall-ID: spread-%d\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", e.addr, local, i, i, i)
		dst, _ := net.ResolveUDPAddr("udp", e.addr)
		if _, err := c.WriteTo([]byte(msg), dst); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 4096)
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			t.Fatalf("flow %d: no answer: %v", i, err)
		}
		if from.String() != e.addr {
			t.Errorf("flow %d: answer from %s, want the SIP port %s", i, from, e.addr)
		}
		res, err := sipmsg.ParseMessage(buf[:n])
		if r, ok := res.(*sipmsg.Response); err != nil || !ok || r.StatusCode != 200 {
			t.Fatalf("flow %d: answer %q, want 200", i, buf[:n])
		}
	}
	counts := e.srv.UDPReaderDatagrams()
	if len(counts) != 4 {
		t.Fatalf("readers: %v, want 4", counts)
	}
	var sum uint64
	busy := 0
	for _, n := range counts {
		sum += n
		if n > 0 {
			busy++
		}
	}
	if sum != flows || busy < 2 {
		t.Fatalf("datagrams per reader %v: want %d in all, over at least 2 readers", counts, flows)
	}
}

// TestRingingBeforeOKAcrossReaders is TestRingingBeforeOK with four
// readers and four caller/terminal pairs calling at once: each pair's
// flows land on readers of the kernel's choosing, and every caller still
// sees its terminal's 180 before its 200.
func TestRingingBeforeOKAcrossReaders(t *testing.T) {
	e := newEnv(t, withReaders(4))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const pairs, calls = 4, 25
	var wg sync.WaitGroup
	for p := 0; p < pairs; p++ {
		user := fmt.Sprintf("bob%d", p)
		caller := newPeer(t, fmt.Sprintf("alice%d", p))
		term := newPeer(t, fmt.Sprintf("term%d", p))
		e.addUser(user)
		e.addLegacy(user, fmt.Sprintf("00101000000001%d", p), term.addr, scp.Online)
		term.setInvite(answerer(term, 0, nil))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < calls; i++ {
				dlg, _, err := caller.invite(ctx, e.uri(user), sipgo.AnswerOptions{})
				if err != nil {
					t.Errorf("%s call %d: %v", user, i, err)
					return
				}
				cid := dlg.InviteRequest.CallID().Value()
				var got []int
				deadline := time.Now().Add(5 * time.Second)
				for {
					got = caller.wireResponses(cid)
					if indexOf(got, 200) >= 0 || time.Now().After(deadline) {
						break
					}
					time.Sleep(time.Millisecond)
				}
				if i180, i200 := indexOf(got, 180), indexOf(got, 200); i180 < 0 || i200 < 0 || i180 > i200 {
					t.Errorf("%s call %d: caller saw %v, want 180 before 200", user, i, got)
					return
				}
				if err := dlg.Bye(ctx); err != nil {
					t.Errorf("%s call %d: BYE: %v", user, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	waitIdle(t, e)
}
