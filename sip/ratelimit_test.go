package sip_test

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/imcall/b2bua/internal/testenv"
	b2b "github.com/imcall/b2bua/sip"
)

func withLimits(l b2b.Limits) envOpt {
	return func(c *b2bConfig) { c.Limits = l }
}

// rlSocket is a raw UDP socket on one loopback address, so a test can speak
// from several sources.
type rlSocket struct {
	t    *testing.T
	conn *net.UDPConn
	n    int
}

func newRLSocket(t *testing.T, ip string) *rlSocket {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		// 127.0.0.2 and up are not configured everywhere (macOS).
		testenv.Missing(t, "cannot bind %s: %v", ip, err)
	}
	t.Cleanup(func() { c.Close() })
	return &rlSocket{t: t, conn: c}
}

// send sends one request with a fresh Call-ID and returns the status of its
// first final answer and the whole answer.
func (s *rlSocket) send(to, method, user string, extra ...string) (int, string) {
	s.t.Helper()
	s.n++
	la := s.conn.LocalAddr().String()
	cid := fmt.Sprintf("rl-%d-%s", s.n, la)
	cseq := fmt.Sprintf("%d %s", s.n, method)
	msg := strings.Join(append([]string{
		method + " sip:" + user + "@" + to + " SIP/2.0",
		"Via: SIP/2.0/UDP " + la + ";branch=z9hG4bK-rl" + fmt.Sprint(s.n) + strings.NewReplacer(".", "", ":", "").Replace(la) + ";rport",
		"From: <sip:flood@" + la + ">;tag=rl" + fmt.Sprint(s.n),
		"To: <sip:" + user + "@" + to + ">",
		"Call-ID: " + cid,
		"CSeq: " + cseq,
		"Contact: <sip:flood@" + la + ">",
		"Max-Forwards: 70",
	}, extra...), "\r\n") + "\r\nContent-Length: 0\r\n\r\n"
	if _, err := s.conn.WriteTo([]byte(msg), net.UDPAddrFromAddrPort(netip.MustParseAddrPort(to))); err != nil {
		s.t.Fatal(err)
	}
	buf := make([]byte, 65535)
	deadline := time.Now().Add(3 * time.Second)
	for {
		s.conn.SetReadDeadline(deadline)
		n, _, err := s.conn.ReadFrom(buf)
		if err != nil {
			s.t.Fatalf("%s %s: no final answer: %v", method, cid, err)
		}
		res := string(buf[:n])
		m := regexp.MustCompile(`^SIP/2\.0 (\d{3}) `).FindStringSubmatch(res)
		if m == nil || !strings.Contains(res, cid) || !strings.Contains(res, cseq) || m[1][0] == '1' {
			continue
		}
		var code int
		fmt.Sscan(m[1], &code)
		return code, res
	}
}

// TestRateLimitPerSource floods from one loopback source: past the burst it
// gets 503 with Retry-After, while another source and a trusted one are
// still served, and its CANCELs are still answered.
func TestRateLimitPerSource(t *testing.T) {
	e := newEnv(t, withLimits(b2b.Limits{Rate: 1, Burst: 5}), func(c *b2bConfig) {
		c.Trusted = append(c.Trusted, netip.MustParsePrefix("127.0.0.3/32"))
	})
	flood := newRLSocket(t, "127.0.0.1")
	other := newRLSocket(t, "127.0.0.2")
	trusted := newRLSocket(t, "127.0.0.3")

	var codes []int
	retryAfter := ""
	for i := 0; i < 12; i++ {
		code, res := flood.send(e.addr, "INVITE", "nobody")
		codes = append(codes, code)
		if code == 503 && retryAfter == "" {
			m := regexp.MustCompile(`(?m)^Retry-After: (\d+)\r$`).FindStringSubmatch(res)
			if m == nil {
				t.Fatalf("503 without Retry-After:\n%s", res)
			}
			retryAfter = m[1]
		}
	}
	for i, c := range codes[:5] {
		if c == 503 {
			t.Fatalf("request %d within the burst refused: %v", i+1, codes)
		}
	}
	if codes[len(codes)-1] != 503 || retryAfter == "" {
		t.Fatalf("flood not limited: %v", codes)
	}
	for _, m := range []string{"REGISTER", "MESSAGE", "OPTIONS"} {
		if code, _ := flood.send(e.addr, m, "nobody"); code != 503 {
			t.Errorf("%s over the limit: %d, want 503", m, code)
		}
	}
	// A CANCEL of no transaction: answered (481), never rate limited.
	if code, _ := flood.send(e.addr, "CANCEL", "nobody"); code != 481 {
		t.Errorf("CANCEL over the limit: %d, want 481", code)
	}
	for name, s := range map[string]*rlSocket{"another source": other, "a trusted source": trusted} {
		if code, _ := s.send(e.addr, "INVITE", "nobody"); code != 404 {
			t.Errorf("%s: INVITE got %d, want 404", name, code)
		}
	}
	for i := 0; i < 10; i++ {
		if code, _ := trusted.send(e.addr, "OPTIONS", "nobody"); code != 200 {
			t.Fatalf("trusted source limited at request %d: %d", i+1, code)
		}
	}
}
