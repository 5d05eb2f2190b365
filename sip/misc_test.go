package sip_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/scp"
)

// rawRequest is a request written by hand, as a fuzzer or a broken UA would.
func rawRequest(method, ruri, local string, extra ...string) string {
	lines := []string{
		method + " " + ruri + " SIP/2.0",
		"Via: SIP/2.0/UDP " + local + ";branch=z9hG4bK" + sipmsg.GenerateTagN(10),
		"From: <sip:probe@127.0.0.1>;tag=" + sipmsg.GenerateTagN(6),
		"To: <" + ruri + ">",
		"Call-ID: " + sipmsg.GenerateTagN(16),
		"CSeq: 1 " + method,
		"Max-Forwards: 70",
	}
	lines = append(lines, extra...)
	return strings.Join(lines, "\r\n") + "\r\nContent-Length: 0\r\n\r\n"
}

// exchangeUDP sends msg from a fresh UDP socket and returns the first
// response that is not a 100.
func exchangeUDP(t *testing.T, to string, msg func(local string) string) *sipmsg.Response {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ua, _ := net.ResolveUDPAddr("udp", to)
	if _, err := c.WriteTo([]byte(msg(c.LocalAddr().String())), ua); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65535)
	for {
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no response: %v", err)
		}
		m, err := sipmsg.ParseMessage(buf[:n])
		if err != nil {
			// A 400 to a request whose CSeq was garbage echoes that
			// CSeq; keep its status line and Warning.
			line, _, _ := strings.Cut(string(buf[:n]), "\r\n")
			var code int
			if _, serr := fmt.Sscanf(line, "SIP/2.0 %d", &code); serr != nil {
				t.Fatalf("unparsable response %q: %v", buf[:n], err)
			}
			res := sipmsg.NewResponse(code, "")
			if strings.Contains(string(buf[:n]), "\r\nWarning:") {
				res.AppendHeader(sipmsg.NewHeader("Warning", "present"))
			}
			return res
		}
		res, ok := m.(*sipmsg.Response)
		if ok && res.StatusCode != 100 {
			return res
		}
	}
}

func TestOutOfDialogAnswers(t *testing.T) {
	e := newEnv(t)
	ruri := "sip:bob@" + e.addr
	tests := []struct {
		name   string
		msg    func(local string) string
		status int
		check  func(t *testing.T, res *sipmsg.Response)
	}{
		{
			name:   "OPTIONS probe",
			msg:    func(l string) string { return rawRequest("OPTIONS", "sip:"+e.addr, l) },
			status: 200,
			check: func(t *testing.T, res *sipmsg.Response) {
				allow := res.GetHeader("Allow")
				if allow == nil || !strings.Contains(allow.Value(), "INVITE") || !strings.Contains(allow.Value(), "REGISTER") {
					t.Errorf("Allow %v", allow)
				}
				if a := res.GetHeader("Accept"); a == nil || !strings.Contains(a.Value(), "application/sdp") {
					t.Errorf("Accept %v", a)
				}
			},
		},
		{
			name:   "unsupported method",
			msg:    func(l string) string { return rawRequest("SUBSCRIBE", ruri, l, "Event: presence") },
			status: 405,
			check: func(t *testing.T, res *sipmsg.Response) {
				if a := res.GetHeader("Allow"); a == nil || !strings.Contains(a.Value(), "INVITE") {
					t.Errorf("405 Allow %v", a)
				}
			},
		},
		{
			name: "Max-Forwards exhausted",
			msg: func(l string) string {
				return strings.Replace(rawRequest("INVITE", ruri, l, "Contact: <sip:probe@"+l+">"), "Max-Forwards: 70", "Max-Forwards: 0", 1)
			},
			status: 483,
		},
		{
			name: "BYE outside any dialog",
			msg: func(l string) string {
				return strings.Replace(rawRequest("BYE", ruri, l), "To: <"+ruri+">", "To: <"+ruri+">;tag=nope", 1)
			},
			status: 481,
		},
		{
			name: "garbage start line",
			msg: func(l string) string {
				return strings.Replace(rawRequest("OPTIONS", ruri, l), "OPTIONS "+ruri+" SIP/2.0", "OPTIONS  SIP/2.0 what", 1)
			},
			status: 400,
		},
		{
			name: "malformed CSeq",
			msg: func(l string) string {
				return strings.Replace(rawRequest("OPTIONS", ruri, l), "CSeq: 1 OPTIONS", "CSeq: one OPTIONS", 1)
			},
			status: 400,
			check: func(t *testing.T, res *sipmsg.Response) {
				if w := res.GetHeader("Warning"); w == nil {
					t.Error("400 without Warning")
				}
			},
		},
		{
			name:   "missing Call-ID",
			msg:    func(l string) string { return removeLine(rawRequest("OPTIONS", ruri, l), "Call-ID:") },
			status: 400,
		},
		{
			name:   "still serving after all that",
			msg:    func(l string) string { return rawRequest("OPTIONS", "sip:"+e.addr, l) },
			status: 200,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := exchangeUDP(t, e.addr, tc.msg)
			if res.StatusCode != tc.status {
				t.Fatalf("got %s, want %d", res.StartLine(), tc.status)
			}
			if tc.check != nil {
				tc.check(t, res)
			}
		})
	}
}

func removeLine(msg, prefix string) string {
	var out []string
	for _, l := range strings.Split(msg, "\r\n") {
		if !strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\r\n")
}

// TestMalformedOverTCP: sipgo closes a TCP connection it cannot frame; the
// server keeps answering on new connections.
func TestMalformedOverTCP(t *testing.T) {
	e := newEnv(t)
	bad, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	bad.Write([]byte("THIS IS NOT SIP\r\n\r\n"))
	bad.SetReadDeadline(time.Now().Add(3 * time.Second))
	// Closed, not answered and not left open: a FIN, or a reset when the
	// close beat the rest of the garbage.
	if n, err := bad.Read(make([]byte, 100)); n > 0 || !(errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
		t.Fatalf("connection with garbage: read %d bytes, %v; want it closed", n, err)
	}
	good, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	local := good.LocalAddr().String()
	msg := strings.Replace(rawRequest("OPTIONS", "sip:"+e.addr+";transport=tcp", local), "SIP/2.0/UDP", "SIP/2.0/TCP", 1)
	good.Write([]byte(msg))
	good.SetReadDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(good).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "SIP/2.0 200") {
		t.Fatalf("OPTIONS over a new TCP connection: %q %v", line, err)
	}
}

// TestLoopDetected: the SCP points bob at the B2BUA itself; the INVITE
// that comes back is refused with 482 and the caller hears about it.
func TestLoopDetected(t *testing.T) {
	e := newEnv(t)
	caller := newPeer(t, "alice")
	e.addUser("bob")
	e.addLegacy("bob", "001010000000001", e.addr, scp.Online)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, res, err := caller.invite(ctx, e.uri("bob"), sipgo.AnswerOptions{})
	if err == nil || res == nil || res.StatusCode != 482 {
		t.Fatalf("looped call: %v %v, want 482", res, err)
	}
	caller.waitRequest(sipmsg.MESSAGE, 2*time.Second)
	waitIdle(t, e)
}

// TestShutdown: draining refuses new calls with 503 and Retry-After while a
// live call runs on; when the drain is cut short both legs get BYE.
func TestShutdown(t *testing.T) {
	e := newEnv(t)
	caller := newPeer(t, "alice")
	term := newPeer(t, "term")
	e.addUser("bob")
	e.addLegacy("bob", "001010000000001", term.addr, scp.Online)
	term.setInvite(answerer(term, 0, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, _, err := caller.invite(ctx, e.uri("bob"), sipgo.AnswerOptions{}); err != nil {
		t.Fatal(err)
	}
	drain, cut := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.srv.Shutdown(drain) }()
	waitFor(t, func() bool {
		res := exchangeUDP(t, e.addr, func(l string) string { return rawRequest("OPTIONS", "sip:"+e.addr, l) })
		return res.StatusCode == 503
	})
	_, res, err := caller.invite(ctx, e.uri("bob"), sipgo.AnswerOptions{})
	if err == nil || res == nil || res.StatusCode != 503 || res.GetHeader("Retry-After") == nil {
		t.Fatalf("INVITE while draining: %v %v, want 503 with Retry-After", res, err)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with a call up", err)
	case <-time.After(200 * time.Millisecond):
	}
	if e.srv.ActiveCalls() != 1 {
		t.Fatalf("%d live calls, want 1", e.srv.ActiveCalls())
	}
	cut()
	term.waitRequest(sipmsg.BYE, 5*time.Second)
	caller.waitRequest(sipmsg.BYE, 5*time.Second)
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	if err := e.srv.FlushRecords(ctx); err != nil {
		t.Fatal(err)
	}
	recs, _ := e.store.Calls(ctx, 1)
	if len(recs) != 1 || recs[0].EndCause != "shutdown" {
		t.Errorf("record %+v", recs)
	}
}
