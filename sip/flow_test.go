package sip_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	b2b "github.com/imcall/b2bua/sip"
)

// tcpClient is a SIP client on one TCP connection written by hand, so a
// test decides when its flow breaks and how: closed, reset, or left
// without keep-alives.
type tcpClient struct {
	t    *testing.T
	conn *net.TCPConn
	addr string // its end of the flow
	msgs chan sipmsg.Message
	pong chan struct{} // a CRLF answering our double-CRLF ping
}

func dialTCP(t *testing.T, to string) *tcpClient {
	t.Helper()
	return dialTCPFrom(t, "127.0.0.1", to)
}

// dialTCPFrom is dialTCP from another loopback address (a trunk's).
func dialTCPFrom(t *testing.T, host, to string) *tcpClient {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(host)}}
	c, err := d.Dial("tcp", to)
	if err != nil {
		t.Fatal(err)
	}
	cl := &tcpClient{t: t, conn: c.(*net.TCPConn), addr: c.LocalAddr().String(),
		msgs: make(chan sipmsg.Message, 16), pong: make(chan struct{}, 16)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r := bufio.NewReader(c)
		for {
			m, err := readStreamMessage(r, cl.pong)
			if err != nil {
				return
			}
			cl.msgs <- m
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return cl
}

// readStreamMessage reads one message off a SIP stream (RFC 3261 §18.3:
// the headers, then Content-Length bytes); CRLFs between messages are
// keep-alive pongs (RFC 5626 §4.4.1).
func readStreamMessage(r *bufio.Reader, pong chan<- struct{}) (sipmsg.Message, error) {
	var head strings.Builder
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		if head.Len() == 0 && strings.TrimSpace(line) == "" {
			select {
			case pong <- struct{}{}:
			default:
			}
			continue
		}
		head.WriteString(line)
		if strings.TrimSpace(line) == "" {
			break
		}
	}
	tp := textproto.NewReader(bufio.NewReader(strings.NewReader(head.String())))
	_, _ = tp.ReadLine()
	hdr, _ := tp.ReadMIMEHeader()
	n, _ := strconv.Atoi(hdr.Get("Content-Length"))
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return sipmsg.ParseMessage(append([]byte(head.String()), body...))
}

func (cl *tcpClient) send(msg string) {
	cl.t.Helper()
	if _, err := cl.conn.Write([]byte(msg)); err != nil {
		cl.t.Fatal(err)
	}
}

// register logs user in with instance over this flow, as an RFC 5626
// client does (reg-id 1), and gives the answer.
func (cl *tcpClient) register(to, user, instance string) *sipmsg.Response {
	cl.t.Helper()
	cl.send(strings.Join([]string{
		"REGISTER sip:im.test SIP/2.0",
		"Via: SIP/2.0/TCP " + cl.addr + ";branch=z9hG4bK" + sipmsg.GenerateTagN(10),
		"From: <sip:" + user + "@im.test>;tag=" + sipmsg.GenerateTagN(6),
		"To: <sip:" + user + "@im.test>",
		"Call-ID: " + sipmsg.GenerateTagN(16),
		"CSeq: 1 REGISTER",
		"Max-Forwards: 70",
		"Supported: outbound",
		`Contact: <sip:` + user + `@` + cl.addr + `;transport=tcp>;+sip.instance="<` + instance + `>";reg-id=1`,
		"Expires: 3600",
		"Content-Length: 0", "", "",
	}, "\r\n"))
	for {
		select {
		case m := <-cl.msgs:
			if res, ok := m.(*sipmsg.Response); ok && res.StatusCode >= 200 {
				return res
			}
		case <-time.After(5 * time.Second):
			cl.t.Fatal("no answer to REGISTER")
			return nil
		}
	}
}

// loginSource gives where user's login instance is reached, "" when it is
// not logged in.
func loginSource(t *testing.T, e *env, user, instance string) string {
	t.Helper()
	bs, err := e.store.Bindings(context.Background(), user, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		if b.Instance == instance {
			return b.Transport + " " + b.Source
		}
	}
	return ""
}

// TestLoginEndsWithItsFlow: a client logged in over TCP is reached on that
// flow only, so its login ends when the flow fails (RFC 5626 §6): the peer
// closes it, resets it, or stops its keep-alives and the idle timeout
// closes it. A login moved to a new flow outlives the old one.
func TestLoginEndsWithItsFlow(t *testing.T) {
	const inst = "urn:uuid:5f0c2b1e-7a43-4c1d-9e2f-0a1b2c3d4e5f"
	const idle = 600 * time.Millisecond
	cases := []struct {
		name      string
		breakFlow func(t *testing.T, e *env, cl *tcpClient)
	}{
		{"peer closes", func(t *testing.T, e *env, cl *tcpClient) { cl.conn.Close() }},
		{"peer resets", func(t *testing.T, e *env, cl *tcpClient) {
			_ = cl.conn.SetLinger(0) // RST, not FIN
			cl.conn.Close()
		}},
		{"keep-alives stop", func(t *testing.T, e *env, cl *tcpClient) {
			// Pinging at a third of the idle timeout keeps the flow and
			// the login past several idle timeouts, each ping answered.
			for i := 0; i < 9; i++ {
				cl.send("\r\n\r\n")
				select {
				case <-cl.pong:
				case <-time.After(2 * time.Second):
					t.Fatal("no pong to a double-CRLF ping")
				}
				time.Sleep(idle / 3)
			}
			if got := loginSource(t, e, "bob", inst); got != "tcp "+cl.addr {
				t.Fatalf("a flow kept alive lost its login: %q", got)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *b2bConfig) { c.Conns = b2b.ConnLimits{IdleTimeout: idle} })
			e.addUser("bob")
			cl := dialTCP(t, e.addr)
			res := cl.register(e.addr, "bob", inst)
			if res.StatusCode != 200 {
				t.Fatalf("REGISTER: %v", res)
			}
			if h := res.GetHeader("Require"); h == nil || h.Value() != "outbound" {
				t.Errorf("200 to an outbound REGISTER: Require %v, want outbound (RFC 5626 §6)", h)
			}
			if h := res.GetHeader("Flow-Timer"); h == nil || h.Value() != "1" {
				t.Errorf("Flow-Timer %v, want 1 (2/3 of the 600ms idle timeout, at least 1s)", h)
			}
			if got := loginSource(t, e, "bob", inst); got != "tcp "+cl.addr {
				t.Fatalf("login at %q, want tcp %s", got, cl.addr)
			}
			start := time.Now()
			tc.breakFlow(t, e, cl)
			waitFor(t, func() bool { return loginSource(t, e, "bob", inst) == "" })
			// Closed and reset flows end at once; a silent one within
			// the idle timeout (and a little) after its last ping.
			if took := time.Since(start); tc.name != "keep-alives stop" && took > time.Second {
				t.Errorf("login ended %v after the flow broke", took)
			}
		})
	}
}

// TestLoginMovedToNewFlow: a client that registers again over a new flow
// keeps its login when the old flow then closes, and loses it with the
// new one.
func TestLoginMovedToNewFlow(t *testing.T) {
	const inst = "urn:uuid:5f0c2b1e-7a43-4c1d-9e2f-0a1b2c3d4e60"
	e := newEnv(t)
	e.addUser("bob")
	old, next := dialTCP(t, e.addr), dialTCP(t, e.addr)
	if res := old.register(e.addr, "bob", inst); res.StatusCode != 200 {
		t.Fatalf("REGISTER: %v", res)
	}
	if res := next.register(e.addr, "bob", inst); res.StatusCode != 200 {
		t.Fatalf("REGISTER again: %v", res)
	}
	old.conn.Close()
	// Nothing tells when the server has seen the old flow end, and the
	// login must stay: a while, then look.
	time.Sleep(300 * time.Millisecond)
	if got := loginSource(t, e, "bob", inst); got != "tcp "+next.addr {
		t.Fatalf("after the old flow closed the login is at %q, want tcp %s", got, next.addr)
	}
	next.conn.Close()
	waitFor(t, func() bool { return loginSource(t, e, "bob", inst) == "" })
}

// TestDIDCallSkipsFailedFlow: a DID call forks to a client while its TCP
// flow lives (the INVITE comes on that flow) and, once the flow has
// failed, only to the clients still logged in: nothing even tries the
// failed flow's address.
func TestDIDCallSkipsFailedFlow(t *testing.T) {
	const inst = "urn:uuid:5f0c2b1e-7a43-4c1d-9e2f-0a1b2c3d4e61"
	udp := newRawPeer(t)
	caller := newPeer(t, "alice")
	e := didEnv(t, map[string]time.Duration{udp.addr: time.Hour})
	cl := dialTCP(t, e.addr)
	if res := cl.register(e.addr, "bob", inst); res.StatusCode != 200 {
		t.Fatalf("REGISTER: %v", res)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// call rings bob: the UDP client is busy, and so is the TCP client
	// should it be rung (tcp answers for it).
	call := func(tcp func(deadline <-chan time.Time)) {
		t.Helper()
		done := inviteAsync(ctx, caller, e.uri(bobDID))
		inv := udp.next(sipmsg.INVITE, 5*time.Second)
		udp.respond(inv, 486, "Busy Here")
		udp.next(sipmsg.ACK, 3*time.Second)
		tcp(time.After(300 * time.Millisecond))
		if r := <-done; r.res == nil || r.res.StatusCode != 486 {
			t.Fatalf("caller got %v (%v), want 486", r.res, r.err)
		}
		waitIdle(t, e)
	}
	call(func(deadline <-chan time.Time) {
		for {
			select {
			case m := <-cl.msgs:
				if req, ok := m.(*sipmsg.Request); ok && req.Method == sipmsg.INVITE {
					cl.send(tcpResponse(req, 486, "Busy Here"))
					return
				}
			case <-deadline:
				t.Fatal("the client on a live TCP flow was not rung on it")
			}
		}
	})
	_ = cl.conn.SetLinger(0) // a reset leaves no socket holding the address
	cl.conn.Close()
	waitFor(t, func() bool { return loginSource(t, e, "bob", inst) == "" })
	// Had the login stayed, its branch would open a connection to the
	// address the flow came from: listen there to see.
	ln, err := net.Listen("tcp", cl.addr)
	if err != nil {
		t.Fatalf("listen on the failed flow's address: %v", err)
	}
	defer ln.Close()
	dialed := make(chan struct{}, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
			dialed <- struct{}{}
		}
	}()
	call(func(deadline <-chan time.Time) {
		select {
		case <-dialed:
			t.Fatal("a client whose flow failed was rung")
		case <-deadline:
		}
	})
}

// tcpResponse answers req as written on the wire.
func tcpResponse(req *sipmsg.Request, code int, reason string) string {
	res := sipmsg.NewResponseFromRequest(req, code, reason, nil)
	if to := res.To(); to != nil {
		if _, ok := to.Params.Get("tag"); !ok {
			to.Params.Add("tag", sipmsg.GenerateTagN(6))
		}
	}
	return fmt.Sprint(res.String())
}
