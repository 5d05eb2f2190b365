package sip_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/scp"
)

// TestShutdownWhileRequestsArrive: MESSAGEs (relayed on client
// transactions started from handler goroutines) and INVITEs keep arriving
// while Shutdown waits for the server's goroutines. Shutdown must return
// without the race detector seeing new work counted against its wait, and
// every INVITE must get a final answer.
func TestShutdownWhileRequestsArrive(t *testing.T) {
	e := newEnv(t)
	term := newPeer(t, "term")
	e.addUser("bob")
	e.addLegacy("bob", "001010000000001", term.addr, scp.Online)

	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	dst, _ := net.ResolveUDPAddr("udp", e.addr)
	local := conn.LocalAddr().String()
	var finals atomic.Int64
	go func() {
		buf := make([]byte, 65535)
		for {
			n, src, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			m, err := sipmsg.ParseMessage(append([]byte(nil), buf[:n]...))
			if err != nil {
				continue
			}
			switch r := m.(type) {
			case *sipmsg.Response:
				if r.CSeq().MethodName == sipmsg.INVITE && r.StatusCode >= 200 {
					finals.Add(1)
				}
			case *sipmsg.Request:
				// The IM notices of the failed calls.
				if !r.IsAck() {
					_, _ = conn.WriteTo([]byte(sipmsg.NewResponseFromRequest(r, 200, "OK", nil).String()), src)
				}
			}
		}
	}()
	var seq atomic.Int64
	send := func(method string) {
		i := seq.Add(1)
		body := "hello"
		extra := "Content-Type: text/plain\r\n"
		if method == "INVITE" {
			body = ""
			extra = "Contact: <sip:alice@" + local + ">\r\n"
		}
		msg := fmt.Sprintf("%s sip:bob@im.test SIP/2.0\r\n"+
			"Via: SIP/2.0/UDP %s;branch=z9hG4bK-sd-%d\r\n"+
			"From: <sip:alice@im.test>;tag=f%d\r\n"+
			"To: <sip:bob@im.test>\r\n"+
			"Call-ID: sd-%d\r\n"+
			"CSeq: 1 %s\r\n"+
			"Max-Forwards: 70\r\n%s"+
			"Content-Length: %d\r\n\r\n%s", method, local, i, i, i, method, extra, len(body), body)
		_, _ = conn.WriteTo([]byte(msg), dst)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var invites atomic.Int64
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if g == 0 {
					invites.Add(1)
					send("INVITE")
				} else {
					send("MESSAGE")
				}
				time.Sleep(time.Millisecond)
			}
		}(g)
	}
	time.Sleep(100 * time.Millisecond)
	for i := 0; i < 20; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := e.srv.Shutdown(ctx)
		cancel()
		if err != nil {
			t.Fatalf("Shutdown %d: %v", i, err)
		}
	}
	close(stop)
	wg.Wait()
	waitFor(t, func() bool { return e.srv.ActiveCalls() == 0 })
	// Every INVITE got its final answer: the call's (the terminal is busy)
	// or the 503 of a draining server.
	waitFor(t, func() bool { return finals.Load() >= invites.Load() })
}

// TestShutdownAbandonsUnansweredNotices: a failed call's IM notice goes to a
// caller who never answers it; shutdown with no live call must not wait
// out the notice's Timer F (32 s) for it.
func TestShutdownAbandonsUnansweredNotices(t *testing.T) {
	e := newEnv(t)
	e.addUser("bob")
	e.addLegacy("bob", "001010000000001", "127.0.0.1:9", scp.Busy)
	caller := newRawPeer(t)
	caller.invite(e.addr, "bob", "im.test")
	if res := caller.nextResponse(300, 5*time.Second); res.StatusCode != 486 {
		t.Fatalf("caller got %d, want 486", res.StatusCode)
	}
	caller.next(sipmsg.MESSAGE, 5*time.Second) // the notice, left unanswered
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Shutdown took %v waiting for an unanswered notice", d)
	}
}
