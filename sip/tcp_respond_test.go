package sip_test

import (
	"bufio"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/scp"
)

// tcpCaller is a caller over TCP that listens at its sent-by address, as a
// SIP element on TCP does (RFC 3261 §18.2.2 opens connections to it).
type tcpCaller struct {
	t    *testing.T
	ln   net.Listener
	msgs chan string // every message the B2BUA sent to the listener
}

func newTCPCaller(t *testing.T) *tcpCaller {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &tcpCaller{t: t, ln: ln, msgs: make(chan string, 64)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go c.read(conn, nil)
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return c
}

// read passes every message on conn to msgs, or to to when it is not nil.
func (c *tcpCaller) read(conn net.Conn, to chan<- string) {
	defer conn.Close()
	if to == nil {
		to = c.msgs
	}
	r := bufio.NewReader(conn)
	for {
		var b strings.Builder
		clen := 0
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			b.WriteString(line)
			if line == "\r\n" {
				break
			}
			if v, ok := strings.CutPrefix(line, "Content-Length: "); ok {
				clen, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
		body := make([]byte, clen)
		if _, err := r.Read(body); clen > 0 && err != nil {
			return
		}
		to <- b.String() + string(body)
	}
}

// next waits for a message whose first line starts with prefix.
func next(t *testing.T, from <-chan string, prefix string) string {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case m := <-from:
			if strings.HasPrefix(m, prefix) {
				return m
			}
		case <-deadline:
			t.Fatalf("no %q within 5s", prefix)
			return ""
		}
	}
}

// TestTCPAnswerAfterConnectionGone: a caller's INVITE came over TCP and
// its connection closed while the call rang. RFC 3261 §18.2.2: the answers
// go on a new connection to the received address at the sent-by port;
// the INVITE transaction lives on, so a CANCEL over a new connection still
// matches it (RFC 3261 §9.2) and gets its 200 and the INVITE's 487.
func TestTCPAnswerAfterConnectionGone(t *testing.T) {
	short := func(c *b2bConfig) {
		c.AckTimeout = 2 * time.Second
		c.TxTimeout = 2 * time.Second
	}
	for _, tc := range []struct {
		name   string
		cancel bool
	}{{"answered", false}, {"CANCELed", true}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, short)
			term := newRawPeer(t)
			e.addUser("bob")
			e.addLegacy("bob", "001010000000001", term.addr, scp.Online)
			caller := newTCPCaller(t)
			sentBy := caller.ln.Addr().String()
			inv := strings.Join([]string{
				"INVITE sip:bob@im.test SIP/2.0",
				"Via: SIP/2.0/TCP " + sentBy + ";branch=z9hG4bK-gone1",
				"From: <sip:alice@im.test>;tag=a1",
				"To: <sip:bob@im.test>",
				"Call-ID: tcp-gone-" + tc.name,
				"CSeq: 1 INVITE",
				"Contact: <sip:alice@" + sentBy + ";transport=tcp>",
				"Max-Forwards: 70",
				"Content-Type: application/sdp",
				"Content-Length: " + strconv.Itoa(len(testSDP)),
				"", testSDP}, "\r\n")
			first, err := net.Dial("tcp", e.addr)
			if err != nil {
				t.Fatal(err)
			}
			onFirst := make(chan string, 16)
			go caller.read(first, onFirst)
			first.Write([]byte(inv))
			next(t, onFirst, "SIP/2.0 100")
			tinv := term.next(sipmsg.INVITE, 5*time.Second)
			first.Close() // gone while ringing
			term.respond(tinv, 180, "Ringing")
			next(t, caller.msgs, "SIP/2.0 180")
			if !tc.cancel {
				term.respond(tinv, 200, "OK")
				if m := next(t, caller.msgs, "SIP/2.0 200"); !strings.Contains(m, "CSeq: 1 INVITE") {
					t.Fatalf("200 is not the INVITE's:\n%s", m)
				}
				return
			}
			cancel := strings.Join([]string{
				"CANCEL sip:bob@im.test SIP/2.0",
				"Via: SIP/2.0/TCP " + sentBy + ";branch=z9hG4bK-gone1",
				"From: <sip:alice@im.test>;tag=a1",
				"To: <sip:bob@im.test>",
				"Call-ID: tcp-gone-" + tc.name,
				"CSeq: 1 CANCEL",
				"Max-Forwards: 70",
				"Content-Length: 0", "", ""}, "\r\n")
			second, err := net.Dial("tcp", e.addr)
			if err != nil {
				t.Fatal(err)
			}
			onSecond := make(chan string, 16)
			go caller.read(second, onSecond)
			defer second.Close()
			second.Write([]byte(cancel))
			both := make(chan string, 32)
			go func() {
				for {
					select {
					case m := <-onSecond:
						both <- m
					case m := <-caller.msgs:
						both <- m
					case <-time.After(6 * time.Second):
						return
					}
				}
			}()
			if m := next(t, both, "SIP/2.0 200"); !strings.Contains(m, "CSeq: 1 CANCEL") {
				t.Fatalf("the CANCEL's answer:\n%s", m)
			}
			next(t, both, "SIP/2.0 487")
			can := term.next(sipmsg.CANCEL, 5*time.Second)
			term.respond(can, 200, "OK")
			term.respond(tinv, 487, "Request Terminated")
			waitIdle(t, e)
		})
	}
}
