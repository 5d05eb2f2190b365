package daemon

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/imcall/b2bua/registry"
)

// sipExchange sends msg from c to the daemon and returns the final answer
// to it.
func sipExchange(t *testing.T, c net.PacketConn, to net.Addr, msg string) string {
	t.Helper()
	callID := strings.TrimSpace(strings.SplitN(strings.SplitN(msg, "Call-ID: ", 2)[1], "\r\n", 2)[0])
	if _, err := c.WriteTo([]byte(msg), to); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65535)
	for {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no answer to\n%s: %v", msg, err)
		}
		// Skip provisional answers, the IM notices the B2BUA sends the
		// caller, and retransmissions for earlier requests.
		got := string(buf[:n])
		if strings.HasPrefix(got, "SIP/2.0 ") && !strings.HasPrefix(got, "SIP/2.0 1") && strings.Contains(got, "Call-ID: "+callID+"\r\n") {
			return got
		}
	}
}

func sipRequest(method, ruri, local, callID, extra string) string {
	to := ruri
	if method == "REGISTER" {
		to = "sip:kate@127.0.0.1"
	}
	return strings.Join([]string{
		method + " " + ruri + " SIP/2.0",
		"Via: SIP/2.0/UDP " + local + ";branch=z9hG4bK-" + callID + fmt.Sprint(len(extra)),
		"From: <sip:kate@127.0.0.1>;tag=k1",
		"To: <" + to + ">",
		"Call-ID: " + callID,
		"CSeq: " + fmt.Sprint(1+len(extra)%7) + " " + method,
		"Contact: <sip:kate@" + local + ">",
		"Max-Forwards: 70",
	}, "\r\n") + "\r\n" + extra + "Content-Length: 0\r\n\r\n"
}

// TestSIPIMIDRule: SIP applies the registry's one IM ID rule. kate exists
// (without a terminal, so a call to her gets 480); a Request-URI that some
// mapping would turn into kate gets 404, and a digest username other than
// exactly "kate" does not authenticate, even with kate's password.
func TestSIPIMIDRule(t *testing.T) {
	dir := t.TempDir()
	d, err := Start(context.Background(), Config{
		DBPath:           filepath.Join(dir, "b2bua.db"),
		Domain:           "127.0.0.1",
		SIPListen:        "127.0.0.1:0",
		HTTPListen:       "127.0.0.1:0",
		APIToken:         "imid-test-token",
		Media:            MediaPassthrough,
		DigestAlgorithms: []string{"MD5"},
		Trusted:          []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		Logger:           slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Store().AddUser(context.Background(), registry.User{IMID: "kate",
		Creds: registry.NewCredentials("kate", "127.0.0.1", "kate-pw")}); err != nil {
		t.Fatal(err)
	}
	to := net.UDPAddrFromAddrPort(d.SIPAddr())

	trusted, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer trusted.Close()
	for _, tc := range []struct{ ruri, want string }{
		{"sip:kate@127.0.0.1", "SIP/2.0 480"},
		{"sip:Kate@127.0.0.1", "SIP/2.0 404"},
		{"sip:KATE@127.0.0.1", "SIP/2.0 404"},
		{"sip:%E2%84%AAate@127.0.0.1", "SIP/2.0 404"}, // KELVIN SIGN
		{"sip:%EF%BD%8Bate@127.0.0.1", "SIP/2.0 404"}, // FULLWIDTH k
	} {
		got := sipExchange(t, trusted, to, sipRequest("INVITE", tc.ruri, trusted.LocalAddr().String(), "inv-"+tc.ruri[4:8], ""))
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("INVITE %s: %q, want %s", tc.ruri, firstLine(got), tc.want)
		}
	}

	// From an untrusted address, REGISTER is challenged; answer it as kate
	// would, under other spellings of her name.
	untrusted, err := net.ListenPacket("udp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer untrusted.Close()
	local := untrusted.LocalAddr().String()
	nonceRE := regexp.MustCompile(`nonce="([^"]+)"`)
	for _, tc := range []struct{ user, want string }{
		{"Kate", "SIP/2.0 40"},
		{"\u212aate", "SIP/2.0 40"},
		{"kate ", "SIP/2.0 40"},
		{"kate", "SIP/2.0 200"},
	} {
		callID := "reg-" + hex.EncodeToString([]byte(tc.user))
		got := sipExchange(t, untrusted, to, sipRequest("REGISTER", "sip:127.0.0.1", local, callID, ""))
		m := nonceRE.FindStringSubmatch(got)
		if !strings.HasPrefix(got, "SIP/2.0 401") || m == nil {
			t.Fatalf("REGISTER without credentials: %q, want a 401 challenge", got)
		}
		// kate's HA1, whatever the username says.
		ha1 := md5hex("kate:127.0.0.1:kate-pw")
		const cnonce, nc = "c0ffee", "00000001"
		resp := md5hex(ha1 + ":" + m[1] + ":" + nc + ":" + cnonce + ":auth:" + md5hex("REGISTER:sip:127.0.0.1"))
		auth := fmt.Sprintf("Authorization: Digest username=%q, realm=\"127.0.0.1\", nonce=%q, uri=\"sip:127.0.0.1\", response=%q, algorithm=MD5, qop=auth, nc=%s, cnonce=%q\r\n",
			tc.user, m[1], resp, nc, cnonce)
		got = sipExchange(t, untrusted, to, sipRequest("REGISTER", "sip:127.0.0.1", local, callID, auth))
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("REGISTER as %q with kate's password: %q, want %s", tc.user, firstLine(got), tc.want)
		}
	}
}

func md5hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\r\n")
	return l
}
