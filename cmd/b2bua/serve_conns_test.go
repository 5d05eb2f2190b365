package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startServe runs b2bua serve under prlimit with a descriptor limit of
// nofile, with args added, and returns its SIP address and its log.
func startServe(t *testing.T, nofile int, args ...string) (string, *lockedBuffer, *exec.Cmd) {
	t.Helper()
	return startServeLimits(t, nofile, nofile, args...)
}

// startServeLimits is startServe with soft and hard descriptor limits.
func startServeLimits(t *testing.T, soft, hard int, args ...string) (string, *lockedBuffer, *exec.Cmd) {
	t.Helper()
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Fatalf("prlimit (util-linux) is needed: %v", err)
	}
	db := newDB(t)
	dir := filepath.Dir(db)
	all := append([]string{fmt.Sprintf("--nofile=%d:%d", soft, hard), binary, "--db", db, "serve",
		"--sip-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--trusted", "127.0.0.0/8",
		"--media", "passthrough", "--api-token-file", filepath.Join(dir, "api.token")}, args...)
	cmd := exec.Command(prlimit, all...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	log := &lockedBuffer{}
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		time.Sleep(100 * time.Millisecond)
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	return readyAddr(t, log), log, cmd
}

// options is an OPTIONS request from local over transport.
func options(transport, local, id string) string {
	return strings.Join([]string{
		"OPTIONS sip:127.0.0.1 SIP/2.0",
		"Via: SIP/2.0/" + transport + " " + local + ";branch=z9hG4bK-" + id,
		"From: <sip:probe@127.0.0.1>;tag=p1",
		"To: <sip:127.0.0.1>",
		"Call-ID: " + id,
		"CSeq: 1 OPTIONS",
		"Max-Forwards: 70",
		"Content-Length: 0",
	}, "\r\n") + "\r\n\r\n"
}

// udpOptions sends OPTIONS over UDP and returns the status line of the
// answer ("" for none within 5 s).
func udpOptions(t *testing.T, sipAddr, id string) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	to, _ := net.ResolveUDPAddr("udp", sipAddr)
	c.WriteTo([]byte(options("UDP", c.LocalAddr().String(), id)), to)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 65535)
	n, _, err := c.ReadFrom(buf)
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(string(buf[:n]), "\r\n")
	return line
}

// tcpOptions sends OPTIONS on a new TCP connection and returns the status
// line of the answer ("" for none within 5 s, or no connection).
func tcpOptions(sipAddr, id string) string {
	c, err := net.DialTimeout("tcp", sipAddr, 2*time.Second)
	if err != nil {
		return ""
	}
	defer c.Close()
	c.Write([]byte(options("TCP", c.LocalAddr().String(), id)))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line)
}

// TestServeRaisesNofile: started with a soft descriptor limit below the
// hard one, serve runs at the hard limit, logs it, and sizes the SIP
// connection limit from it (a quarter: 128 of 512, not 32 of 128).
func TestServeRaisesNofile(t *testing.T) {
	_, log, _ := startServeLimits(t, 128, 512)
	for _, want := range []string{"msg=\"descriptor limit\" nofile=512 hard=512", "max_conns=128 "} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}
}

// TestServeDescriptorExhaustion fills b2bua serve, run with a low
// descriptor limit, with idle TCP connections. With the default connection
// limits (a quarter of the descriptors) the overflow is refused at once and
// descriptors stay in reserve; with limits above the descriptor limit,
// accept fails with EMFILE, is logged and retried. Either way SIP keeps
// answering over UDP, and over new TCP connections once the idle ones have
// closed; the process stays up.
func TestServeDescriptorExhaustion(t *testing.T) {
	for _, tc := range []struct {
		name    string
		nofile  int
		args    []string
		refused bool     // connections past the limit are closed at once
		logs    []string // what the log must show
	}{
		{"default limits", 128, nil, true, []string{"nofile=128", "max_conns=32 max_conns_per_source=32"}},
		{"limits above the descriptor limit", 64, []string{"--sip-max-conns", "10000", "--sip-max-conns-per-source", "10000"}, false, []string{"SIP accept failed: retrying"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sipAddr, log, cmd := startServe(t, tc.nofile, tc.args...)
			if got := tcpOptions(sipAddr, "before"); !strings.HasPrefix(got, "SIP/2.0 200") {
				t.Fatalf("TCP OPTIONS before: %q\nlog:\n%s", got, log.String())
			}
			const idle = 150 // more than the descriptor limit allows
			var conns []net.Conn
			for range idle {
				c, err := net.DialTimeout("tcp", sipAddr, 2*time.Second)
				if err != nil {
					break // the backlog is full: exhausted as well
				}
				conns = append(conns, c)
			}
			closedAtOnce := 0
			one := make([]byte, 1)
			for _, c := range conns {
				c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
				if _, err := c.Read(one); err != nil && !isTimeout(err) {
					closedAtOnce++
				}
			}
			t.Logf("%d idle connections opened, %d closed by the server at once", len(conns), closedAtOnce)
			if tc.refused && closedAtOnce < len(conns)-40 {
				t.Errorf("only %d of %d connections past the limit were refused", closedAtOnce, len(conns))
			}
			if got := udpOptions(t, sipAddr, "during"); !strings.HasPrefix(got, "SIP/2.0 200") {
				t.Errorf("UDP OPTIONS while the connections are open: %q", got)
			}
			for _, want := range tc.logs {
				deadline := time.Now().Add(10 * time.Second)
				for !strings.Contains(log.String(), want) && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
				}
				if !strings.Contains(log.String(), want) {
					t.Errorf("the log lacks %q:\n%s", want, log.String())
				}
			}
			for _, c := range conns {
				c.Close()
			}
			// The backlog drains and the closed ones are reaped; new TCP
			// connections are served again.
			var got string
			for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
				if got = tcpOptions(sipAddr, fmt.Sprintf("after-%d", time.Now().UnixNano())); strings.HasPrefix(got, "SIP/2.0 200") {
					break
				}
			}
			if !strings.HasPrefix(got, "SIP/2.0 200") {
				t.Fatalf("TCP OPTIONS after the idle connections closed: %q\nlog:\n%s", got, log.String())
			}
			if got := udpOptions(t, sipAddr, "after-udp"); !strings.HasPrefix(got, "SIP/2.0 200") {
				t.Errorf("UDP OPTIONS after: %q", got)
			}
			if cmd.ProcessState != nil {
				t.Fatalf("serve exited: %v", cmd.ProcessState)
			}
		})
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestServeSlowConnections runs b2bua serve with short connection timeouts
// and holds SIP TCP connections open the ways a slowloris does: each is
// closed by the server within its bound, while a connection kept alive by
// RFC 5626 keep-alives stays open and is still served.
func TestServeSlowConnections(t *testing.T) {
	const idleT, msgT = 1500 * time.Millisecond, 800 * time.Millisecond
	sipAddr, log, _ := startServe(t, 4096, "--sip-idle-timeout", idleT.String(), "--sip-message-timeout", msgT.String())
	const slack = 1500 * time.Millisecond
	for _, tc := range []struct {
		name  string
		send  func(c net.Conn, stop <-chan struct{}) // what the client does until stop
		bound time.Duration                          // the server closes within bound(+slack), not before
	}{
		{"silent after connect", func(net.Conn, <-chan struct{}) {}, msgT},
		{"idle after a message", func(c net.Conn, _ <-chan struct{}) {
			c.Write([]byte(options("TCP", c.LocalAddr().String(), "idle-after")))
		}, idleT},
		{"headers a byte at a time", func(c net.Conn, stop <-chan struct{}) {
			msg := options("TCP", c.LocalAddr().String(), "trickle")
			for i := 0; i < len(msg)-4; i++ {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				if _, err := c.Write([]byte{msg[i]}); err != nil {
					return
				}
			}
		}, msgT},
		{"body short of its Content-Length", func(c net.Conn, _ <-chan struct{}) {
			msg := strings.Replace(options("TCP", c.LocalAddr().String(), "short-body"), "Content-Length: 0", "Content-Length: 100", 1)
			c.Write([]byte(msg + "only ten b"))
		}, msgT},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", sipAddr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			stop := make(chan struct{})
			defer close(stop)
			go tc.send(c, stop)
			c.SetReadDeadline(start.Add(tc.bound + slack + 2*time.Second))
			buf := make([]byte, 4096)
			var err2 error
			for err2 == nil {
				_, err2 = c.Read(buf)
			}
			took := time.Since(start)
			if isTimeout(err2) || took > tc.bound+slack {
				t.Fatalf("connection still open after %v, want closed within %v\nlog:\n%s", took, tc.bound, log.String())
			}
			if took < tc.bound-100*time.Millisecond {
				t.Fatalf("connection closed after %v, before its %v bound", took, tc.bound)
			}
			t.Logf("closed after %v (bound %v)", took.Round(time.Millisecond), tc.bound)
		})
	}
	t.Run("kept alive by CRLF", func(t *testing.T) {
		c, err := net.Dial("tcp", sipAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		r := bufio.NewReader(c)
		c.Write([]byte(options("TCP", c.LocalAddr().String(), "ka-1")))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if line, _ := r.ReadString('\n'); !strings.HasPrefix(line, "SIP/2.0 200") {
			t.Fatalf("first OPTIONS: %q", line)
		}
		// RFC 5626 §4.4.1: a double-CRLF ping, answered by a CRLF pong, for
		// twice the idle timeout.
		for end := time.Now().Add(2 * idleT); time.Now().Before(end); time.Sleep(idleT / 3) {
			if _, err := c.Write([]byte("\r\n\r\n")); err != nil {
				t.Fatalf("keep-alive: %v", err)
			}
		}
		c.Write([]byte(options("TCP", c.LocalAddr().String(), "ka-2")))
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("the kept-alive connection was closed: %v", err)
			}
			if strings.HasPrefix(line, "SIP/2.0") {
				if !strings.HasPrefix(line, "SIP/2.0 200") || !strings.Contains(readHead(r), "ka-2") {
					t.Fatalf("second OPTIONS: %q", line)
				}
				break
			}
		}
	})
}

// readHead reads header lines up to the empty line and returns them.
func readHead(r *bufio.Reader) string {
	var b strings.Builder
	for {
		l, err := r.ReadString('\n')
		b.WriteString(l)
		if err != nil || l == "\r\n" {
			return b.String()
		}
	}
}

// TestServeTCPResponseNotReflected sends requests over TCP whose connection
// is closed right after the request is written, each with a top Via naming
// another host (127.0.0.2) at port P. RFC 3261 §18.2.2: with the request's
// connection gone, the answer goes on a new connection to the received
// address (the source, 127.0.0.1) at the sent-by port P, never to an
// address taken only from the message: 127.0.0.1:P gets every answer to a
// request whose connection closed cleanly, 127.0.0.2:P gets no connection.
func TestServeTCPResponseNotReflected(t *testing.T) {
	source, decoy := listenPair(t)
	port := source.Addr().(*net.TCPAddr).Port
	reached := make(chan string, 100)
	go func() {
		for {
			c, err := decoy.Accept()
			if err != nil {
				return
			}
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			b := make([]byte, 200)
			n, _ := c.Read(b)
			reached <- string(b[:n])
			c.Close()
		}
	}()
	answered := make(chan string, 100) // Call-IDs of 200s at the source's port
	go func() {
		for {
			c, err := source.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if !strings.HasPrefix(line, "SIP/2.0 200") {
						continue
					}
					for _, h := range strings.Split(readHead(r), "\r\n") {
						if id, ok := strings.CutPrefix(h, "Call-ID: "); ok {
							answered <- id
						}
					}
				}
			}()
		}
	}()
	sipAddr, log, _ := startServe(t, 4096)
	const n = 20
	sentBy := fmt.Sprintf("127.0.0.2:%d", port)
	want := map[string]bool{}
	for i := range n {
		c, err := net.Dial("tcp", sipAddr)
		if err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf("gone-%d", i)
		req := options("TCP", sentBy, id)
		if i%2 == 1 {
			// A received and rport of its own making are no better.
			req = strings.Replace(req, "Via: SIP/2.0/TCP "+sentBy, "Via: SIP/2.0/TCP "+sentBy+";received=127.0.0.2;rport=1", 1)
		}
		c.Write([]byte(req))
		if i%4 < 2 {
			c.Close() // FIN: the server reads the request, then the end
			want[id] = true
		} else {
			// RST: the connection is gone at once (the request may be
			// lost with it, so no answer is required).
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	}
	deadline := time.After(6 * time.Second)
	for len(want) > 0 {
		select {
		case got := <-reached:
			t.Fatalf("the host named in the Via received a connection: %q\nlog:\n%s", got, log.String())
		case id := <-answered:
			delete(want, id)
		case <-deadline:
			t.Fatalf("no answer at the source address, sent-by port for %v\nlog:\n%s", want, log.String())
		}
	}
	select {
	case got := <-reached:
		t.Fatalf("the host named in the Via received a connection: %q\nlog:\n%s", got, log.String())
	case <-time.After(time.Second):
	}
	// The server still answers on a live connection.
	if got := tcpOptions(sipAddr, "alive"); !strings.HasPrefix(got, "SIP/2.0 200") {
		t.Fatalf("TCP OPTIONS afterwards: %q", got)
	}
}

// listenPair listens on TCP at 127.0.0.1 and 127.0.0.2 on one port.
func listenPair(t *testing.T) (net.Listener, net.Listener) {
	t.Helper()
	for range 20 {
		a, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		b, err := net.Listen("tcp", fmt.Sprintf("127.0.0.2:%d", a.Addr().(*net.TCPAddr).Port))
		if err != nil {
			a.Close()
			continue
		}
		t.Cleanup(func() { a.Close(); b.Close() })
		return a, b
	}
	t.Fatal("no port free on both 127.0.0.1 and 127.0.0.2")
	return nil, nil
}
