package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imcall/b2bua/conference"
)

// subscriber is a SIP endpoint on UDP and, on the same port, TCP (where
// requests over 1300 bytes come, RFC 3261 §18.1.1); it answers NOTIFYs 200
// on the transport they came over.
type subscriber struct {
	t    *testing.T
	c    net.PacketConn
	to   net.Addr
	msgs chan sipIn
	seen []string // NOTIFYs, in order
	tcp  int      // NOTIFYs that came over TCP
}

type sipIn struct {
	msg   string
	reply func(string)
}

func newSubscriber(t *testing.T, d *Daemon, from string) *subscriber {
	c, err := net.ListenPacket("udp", from+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s := &subscriber{t: t, c: c, to: net.UDPAddrFromAddrPort(d.SIPAddr()), msgs: make(chan sipIn, 64)}
	l, err := net.Listen("tcp", c.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() { // ends when the listener closes
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { conn.Close() })
			go readStream(conn, s.msgs)
		}
	}()
	return s
}

// readStream frames SIP messages on a stream by Content-Length.
func readStream(conn net.Conn, out chan<- sipIn) {
	r := bufio.NewReader(conn)
	for {
		var head strings.Builder
		length := 0
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return
			}
			head.WriteString(l)
			if v, ok := strings.CutPrefix(strings.ToLower(l), "content-length:"); ok {
				length, _ = strconv.Atoi(strings.TrimSpace(v))
			}
			if l == "\r\n" {
				break
			}
		}
		body := make([]byte, length)
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		out <- sipIn{msg: head.String() + string(body), reply: func(m string) { conn.Write([]byte(m)) }}
	}
}

// next returns the next message from the daemon over UDP or TCP (the
// answers the test waits for come over UDP through sipExchange), answering
// a NOTIFY 200.
func (s *subscriber) next() string {
	s.t.Helper()
	udp := make(chan sipIn, 1)
	go func() {
		buf := make([]byte, 65535)
		s.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _, err := s.c.ReadFrom(buf)
		if err != nil {
			close(udp)
			return
		}
		udp <- sipIn{msg: string(buf[:n]), reply: func(m string) { s.c.WriteTo([]byte(m), s.to) }}
	}()
	var in sipIn
	select {
	case m, ok := <-udp:
		if !ok {
			s.t.Fatalf("nothing from the daemon (NOTIFYs so far: %d)", len(s.seen))
		}
		if len(m.msg) > 1300 {
			s.t.Errorf("a %d-byte message came over UDP (RFC 3261 §18.1.1: TCP)", len(m.msg))
		}
		in = m
	case in = <-s.msgs:
		if strings.HasPrefix(in.msg, "NOTIFY ") {
			s.tcp++
		}
		s.c.SetReadDeadline(time.Now()) // release the UDP reader
		if m, ok := <-udp; ok {
			s.msgs <- m // keep it for the next call
		}
	}
	if strings.HasPrefix(in.msg, "NOTIFY ") {
		s.seen = append(s.seen, in.msg)
		in.reply(answer200(in.msg))
	}
	return in.msg
}

// notify waits for the next NOTIFY (skipping retransmitted answers).
func (s *subscriber) notify() string {
	s.t.Helper()
	for {
		if m := s.next(); strings.HasPrefix(m, "NOTIFY ") {
			return m
		}
	}
}

func answer200(req string) string {
	var out []string
	out = append(out, "SIP/2.0 200 OK")
	for _, l := range strings.Split(req, "\r\n")[1:] {
		for _, h := range []string{"Via:", "From:", "To:", "Call-ID:", "CSeq:"} {
			if strings.HasPrefix(l, h) {
				out = append(out, l)
			}
		}
	}
	return strings.Join(out, "\r\n") + "\r\nContent-Length: 0\r\n\r\n"
}

func header(m, name string) string {
	re := regexp.MustCompile(`(?mi)^` + regexp.QuoteMeta(name) + `:\s*(.*?)\r$`)
	if g := re.FindStringSubmatch(m); g != nil {
		return g[1]
	}
	return ""
}

func subscribe(local, ruri, callID, toTag string, cseq int, extra string) string {
	to := "<" + ruri + ">"
	if toTag != "" {
		to += ";tag=" + toTag
	}
	return strings.Join([]string{
		"SUBSCRIBE " + ruri + " SIP/2.0",
		"Via: SIP/2.0/UDP " + local + ";branch=z9hG4bK-" + callID + "-" + string(rune('a'+cseq)),
		"From: <sip:kate@127.0.0.1>;tag=k1",
		"To: " + to,
		"Call-ID: " + callID,
		"CSeq: " + string(rune('0'+cseq)) + " SUBSCRIBE",
		"Contact: <sip:kate@" + local + ">",
		"Max-Forwards: 70",
	}, "\r\n") + "\r\n" + extra + "Content-Length: 0\r\n\r\n"
}

// TestConferenceSubscribe: a SUBSCRIBE with Event: conference to a
// conference URI gets 200 and a full document, then a partial one per
// change with a version rising by one, and a final NOTIFY when the
// conference ends; a refresh is answered with its Expires, and an
// unsubscribe ends with a final NOTIFY. Wrong events, short intervals and
// unknown conferences are refused.
func TestConferenceSubscribe(t *testing.T) {
	d, err := Start(context.Background(), Config{
		DBPath: filepath.Join(t.TempDir(), "b2bua.db"), Domain: "127.0.0.1",
		SIPListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", APIToken: httpTestToken,
		Media: MediaPassthrough, Logger: slog.New(slog.DiscardHandler),
		Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	code, b := apiDo(t, d, "POST", "/api/v1/conferences", httpTestToken, `{"owner":"alice"}`)
	if code != 201 {
		t.Fatalf("create: %d %s", code, b)
	}
	var c conference.CreatedResponse
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	uri := c.URI

	s := newSubscriber(t, d, "127.0.0.1")
	local := s.c.LocalAddr().String()
	for _, tc := range []struct {
		name, ruri, extra, want string
	}{
		{"no event", uri, "", "SIP/2.0 489"},
		{"other event", uri, "Event: presence\r\n", "SIP/2.0 489"},
		{"too short", uri, "Event: conference\r\nExpires: 5\r\n", "SIP/2.0 423"},
		{"unknown conference", "sip:conf-0123456789abcdef@127.0.0.1", "Event: conference\r\n", "SIP/2.0 404"},
		{"not a conference", "sip:alice@127.0.0.1", "Event: conference\r\n", "SIP/2.0 404"},
	} {
		got := sipExchange(t, s.c, s.to, subscribe(local, tc.ruri, "bad-"+strings.ReplaceAll(tc.name, " ", "-"), "", 1, tc.extra))
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: %.60q, want %s", tc.name, got, tc.want)
		}
	}
	// An untrusted subscriber is challenged like a caller.
	other := newSubscriber(t, d, "127.0.0.2")
	if got := sipExchange(t, other.c, other.to, subscribe(other.c.LocalAddr().String(), uri, "untrusted", "", 1, "Event: conference\r\n")); !strings.HasPrefix(got, "SIP/2.0 407") {
		t.Errorf("untrusted: %.60q, want 407", got)
	}

	ok := sipExchange(t, s.c, s.to, subscribe(local, uri, "sub-1", "", 1, "Event: conference\r\nExpires: 600\r\n"))
	if !strings.HasPrefix(ok, "SIP/2.0 200") || header(ok, "Expires") != "600" {
		t.Fatalf("subscribe: %q", ok)
	}
	toTag := regexp.MustCompile(`(?m)^To:.*;tag=([^;\r]+)`).FindStringSubmatch(ok)
	if toTag == nil || header(ok, "Contact") == "" {
		t.Fatalf("200 without a To tag or Contact: %q", ok)
	}
	version := func(m string) string {
		return regexp.MustCompile(`version="(\d+)"`).FindStringSubmatch(m)[1]
	}
	n := s.notify()
	if header(n, "Event") != "conference" || !strings.HasPrefix(header(n, "Subscription-State"), "active;expires=") ||
		header(n, "Content-Type") != conference.ContentType || !strings.Contains(n, `state="full"`) || version(n) != "1" ||
		!strings.Contains(n, `entity="`+uri+`"`) {
		t.Fatalf("first NOTIFY:\n%s", n)
	}
	if code, b := apiDo(t, d, "POST", "/api/v1/conferences/"+c.ID+"/participants", httpTestToken, `{"target":"bob"}`); code != 201 {
		t.Fatalf("add: %d %s", code, b)
	}
	// bob is listed (pending), then his dial-out fails (no calls here).
	for i, want := range []string{"pending", "disconnected"} {
		n = s.notify()
		if !strings.Contains(n, `state="partial"`) || version(n) != string(rune('2'+i)) || !strings.Contains(n, "<status>"+want+"</status>") {
			t.Fatalf("NOTIFY %d, want partial with %s:\n%s", i+2, want, n)
		}
	}
	if s.tcp == 0 {
		t.Error("the NOTIFY with bob's ending (over 1300 bytes) did not come over TCP")
	}
	refresh := sipExchange(t, s.c, s.to, subscribe(local, uri, "sub-1", toTag[1], 2, "Event: conference\r\nExpires: 300\r\n"))
	if !strings.HasPrefix(refresh, "SIP/2.0 200") || header(refresh, "Expires") != "300" {
		t.Fatalf("refresh: %q", refresh)
	}
	if got := sipExchange(t, s.c, s.to, subscribe(local, uri, "sub-1", "no-such-tag", 3, "Event: conference\r\n")); !strings.HasPrefix(got, "SIP/2.0 481") {
		t.Errorf("refresh of an unknown dialog: %.60q, want 481", got)
	}
	if code, b := apiDo(t, d, "DELETE", "/api/v1/conferences/"+c.ID, httpTestToken, ""); code != 200 {
		t.Fatalf("end: %d %s", code, b)
	}
	for {
		n = s.notify()
		if strings.HasPrefix(header(n, "Subscription-State"), "terminated") {
			break
		}
	}
	if header(n, "Subscription-State") != "terminated;reason=noresource" {
		t.Errorf("final NOTIFY: %s", header(n, "Subscription-State"))
	}

	// A second conference, subscribed and unsubscribed.
	code, b = apiDo(t, d, "POST", "/api/v1/conferences", httpTestToken, `{"owner":"alice"}`)
	if code != 201 {
		t.Fatalf("create: %d %s", code, b)
	}
	json.Unmarshal(b, &c)
	ok = sipExchange(t, s.c, s.to, subscribe(local, c.URI, "sub-2", "", 1, "Event: conference\r\n"))
	toTag = regexp.MustCompile(`(?m)^To:.*;tag=([^;\r]+)`).FindStringSubmatch(ok)
	if !strings.HasPrefix(ok, "SIP/2.0 200") || header(ok, "Expires") != "3600" || toTag == nil {
		t.Fatalf("subscribe without Expires: %q", ok)
	}
	s.notify()
	sipExchange(t, s.c, s.to, subscribe(local, c.URI, "sub-2", toTag[1], 2, "Event: conference\r\nExpires: 0\r\n"))
	if n = s.notify(); header(n, "Subscription-State") != "terminated;reason=timeout" || version(n) != "2" {
		t.Errorf("NOTIFY after unsubscribe:\n%s", n)
	}
}
