package sip_test

import (
	"bufio"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestTorture sends the torture vectors of testdata/sip/torture (written
// from the descriptions of RFC 4475 and RFC 5118) over UDP and TCP and
// checks each answer against what those RFCs say an endpoint answers.
func TestTorture(t *testing.T) {
	e := newEnv(t)
	allow405 := func(t *testing.T, res string) {
		if status(res) == 405 && header(res, "Allow") == "" {
			t.Errorf("405 without Allow:\n%s", res)
		}
	}
	tests := []struct {
		file       string
		transports []string
		want       []int // any of these
		check      func(t *testing.T, res string)
		why        string
	}{
		{"mismatch01", []string{"UDP", "TCP"}, []int{400}, nil, "RFC 4475 §3.1.2.17: CSeq method differs from the start line"},
		{"mcl01", []string{"UDP", "TCP"}, []int{400}, nil, "RFC 4475 §3.3.9: two different Content-Lengths"},
		{"badvers", []string{"UDP", "TCP"}, []int{505}, func(t *testing.T, res string) {
			if !strings.HasPrefix(res, "SIP/2.0 505 ") || strings.Contains(res, "SIP/7.0 505") {
				t.Errorf("505 must be SIP/2.0, never the unknown version:\n%s", res)
			}
		}, "RFC 4475 §3.1.2.16, RFC 3261 §21.5.7"},
		{"badinv01", []string{"UDP", "TCP"}, []int{400}, nil, "RFC 4475 §3.1.2.1: empty parameters"},
		{"ipv6-bad", []string{"UDP", "TCP"}, []int{400}, nil, "RFC 5118 §4.2: IPv6 reference without brackets"},
		{"scalar02", []string{"UDP", "TCP"}, []int{400}, nil, "RFC 4475 §3.1.2.4: overlarge scalar fields"},
		{"clerr", []string{"UDP"}, []int{400}, nil, "RFC 4475 §3.1.2.2: Content-Length past the datagram"},
		{"ncl", []string{"UDP"}, []int{400}, nil, "RFC 4475 §3.1.2.3: negative Content-Length"},
		{"wsinv", []string{"UDP", "TCP"}, []int{404}, nil, "RFC 4475 §3.1.1.1: valid; nobody is no user here"},
		{"intmeth", []string{"UDP", "TCP"}, []int{405, 501}, allow405, "RFC 4475 §3.1.1.2: valid unknown method"},
		{"esc02", []string{"UDP", "TCP"}, []int{405, 501}, allow405, "RFC 4475 §3.1.1.5: valid unknown method"},
		{"inv2543", []string{"UDP", "TCP"}, []int{404}, nil, "RFC 4475 §3.4.1: RFC 2543 form, processed"},
		{"longreq", []string{"UDP", "TCP"}, []int{200}, nil, "RFC 4475 §3.1.1.7: valid, its answer is over 1300 bytes"},
		{"unkscm", []string{"UDP", "TCP"}, []int{416}, nil, "RFC 4475 §3.3.2: unknown Request-URI scheme"},
		{"novelsc", []string{"UDP", "TCP"}, []int{416}, nil, "RFC 4475 §3.3.3: a scheme we do not serve"},
		{"bext01", []string{"UDP", "TCP"}, []int{420}, func(t *testing.T, res string) {
			if header(res, "Unsupported") != "nothing" {
				t.Errorf("420 must list the option tag in Unsupported:\n%s", res)
			}
		}, "RFC 4475 §3.3.5, RFC 3261 §8.2.2.3: unsupported Require"},
	}
	for _, tc := range tests {
		raw, err := os.ReadFile(filepath.Join("..", "testdata", "sip", "torture", tc.file+".sip"))
		if err != nil {
			t.Fatal(err)
		}
		for _, tr := range tc.transports {
			t.Run(tc.file+"/"+tr, func(t *testing.T) {
				res := tortureExchange(t, e.addr, tr, string(raw))
				got := status(res)
				for _, w := range tc.want {
					if got == w {
						if tc.check != nil {
							tc.check(t, res)
						}
						return
					}
				}
				t.Fatalf("got %d, want %v (%s):\n%s", got, tc.want, tc.why, res)
			})
		}
	}
}

// tortureExchange sends msg over transport with $T and $LOCAL filled in and
// returns the first answer that is not a 100 ("" for none in 3 s).
func tortureExchange(t *testing.T, to, transport, msg string) string {
	t.Helper()
	fill := func(local string) []byte {
		return []byte(strings.NewReplacer("$T", transport, "$LOCAL", local).Replace(msg))
	}
	if transport == "UDP" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ua, _ := net.ResolveUDPAddr("udp", to)
		c.WriteTo(fill(c.LocalAddr().String()), ua)
		buf := make([]byte, 65535)
		for {
			c.SetReadDeadline(time.Now().Add(3 * time.Second))
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				return ""
			}
			if res := string(buf[:n]); status(res) != 100 {
				return res
			}
		}
	}
	c, err := net.Dial("tcp", to)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(fill(c.LocalAddr().String()))
	r := bufio.NewReader(c)
	for {
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		var b strings.Builder
		for {
			l, err := r.ReadString('\n')
			b.WriteString(l)
			if err != nil {
				return b.String()
			}
			if l == "\r\n" {
				break
			}
		}
		res := b.String()
		if n, _ := strconv.Atoi(header(res, "Content-Length")); n > 0 {
			body := make([]byte, n)
			if _, err := io.ReadFull(r, body); err != nil {
				return res
			}
			res += string(body)
		}
		if status(res) != 100 {
			return res
		}
	}
}

// status is the status code of a raw response, 0 for none.
func status(res string) int {
	line, _, _ := strings.Cut(res, "\r\n")
	f := strings.Fields(line)
	if len(f) < 2 || !strings.HasPrefix(f[0], "SIP/") {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// header is the value of the first header name (or its compact form) of a
// raw message.
func header(msg, name string) string {
	head, _, _ := strings.Cut(msg, "\r\n\r\n")
	for _, l := range strings.Split(head, "\r\n")[1:] {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
