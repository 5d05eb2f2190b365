package e2e

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestLogHoldsNoSecrets runs the product at debug log level through an
// authenticated call, a failed authentication, provisioning requests with
// right and wrong tokens, the SCP admin API and malformed SIP carrying
// credentials, and checks that the log shows no password, no HA1, no API
// token and no Authorization header value.
func TestLogHoldsNoSecrets(t *testing.T) {
	t.Parallel()
	const (
		alicePw = "Alice-pw-5d1c9e"
		bobPw   = "Bob-pw-77a0f3"
		carolPw = "Carol-pw-e4b2aa"
		wrongPw = "Wrong-pw-0b9d41"
		marker  = "6a1e0c5b9f3d4e2a8c7b6d5e4f3a2b1c" // a digest response in malformed SIP
		wrongTk = "wrong-token-3c8e1f"
	)
	n := newNode(t)
	n.addUser("alice", alicePw)
	n.addUser("bob", bobPw)
	n.addTerminal("bob", bobIMSI, "legacy", true)
	term := terminal(t, "terminal_answer.xml")
	n.serve(serveOpts{subscribers: []subscriber{online(bobIMSI, term.port)}})
	tokenBytes, err := os.ReadFile(filepath.Join(n.dir, "b2bua.token"))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tokenBytes))

	n.call("caller_call_bye.xml", "alice", alicePw, "bob").wait()
	term.wait()
	n.call("caller_wrong_password.xml", "alice", wrongPw, "bob").wait()

	api := func(method, path, auth, body string) int {
		req, _ := http.NewRequest(method, "http://"+n.httpAddr+path, strings.NewReader(body))
		req.Header.Set("Authorization", auth)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode
	}
	if got := api("POST", "/api/v1/users", "Bearer "+token, `{"im_id":"carol","password":"`+carolPw+`"}`); got != 201 {
		t.Fatalf("create user: %d", got)
	}
	if got := api("PUT", "/api/v1/users/carol/password", "Bearer "+token, `{"password":"`+carolPw+`x"}`); got/100 != 2 {
		t.Fatalf("set password: %d", got)
	}
	if got := api("GET", "/api/v1/users", "Bearer "+wrongTk, ""); got != 401 {
		t.Fatalf("wrong token: %d", got)
	}
	if got := api("GET", "/scp/v1/subscribers", "Bearer "+token, ""); got != 200 {
		t.Fatalf("SCP admin: %d", got)
	}

	// Malformed SIP with credentials, over UDP and TCP: each is logged
	// (sipgo's parse failure, or our 400), and the log must not carry the
	// credentials. Each event is awaited before the next message, so a
	// message that never reached the log cannot pass the redaction check.
	cred := `Digest username="alice", realm="` + domain + `", nonce="abc", uri="sip:bob@` + domain + `", response="` + marker + `"`
	// Content-Length says 500 bytes, the datagram holds fewer (RFC 3261
	// §18.3: on UDP the message is discarded; on a stream the framing
	// would wait for the rest, so it is sent on UDP only).
	shortBody := "INVITE sip:bob@" + domain + " SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKs1\r\nFrom: <sip:alice@" + domain + ">;tag=1\r\nTo: <sip:bob@" + domain + ">\r\nCall-ID: s1\r\nCSeq: 1 INVITE\r\nProxy-Authorization: " + cred + "\r\nContent-Length: 500\r\n\r\nv=0\r\n"
	// A non-numeric Max-Forwards and an unbalanced Contact.
	badHeaders := "REGISTER sip:" + domain + " SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKs2\r\nFrom: <sip:alice@" + domain + ">;tag=1\r\nTo: <sip:alice@" + domain + ">\r\nCall-ID: s2\r\nCSeq: 1 REGISTER\r\nAuthorization: " + cred + "\r\nMax-Forwards: x\r\nContact: <sip:a@127.0.0.1:9>>\r\nContent-Length: 0\r\n\r\n"
	logPath := filepath.Join(n.dir, "b2bua.log")
	for _, tc := range []struct {
		name, network, msg string
		event              func(local string) string // the log line's pattern
	}{
		{"short body", "udp", shortBody, func(local string) string {
			return `msg="malformed request refused" .*from=` + regexp.QuoteMeta(local) + ` status=400\b`
		}},
		{"bad headers", "udp", badHeaders, func(local string) string {
			return `msg="malformed request refused" .*from=` + regexp.QuoteMeta(local) + ` status=400\b`
		}},
		{"bad headers", "tcp", badHeaders, func(local string) string {
			return `msg="malformed request refused" .*from=` + regexp.QuoteMeta(local) + ` status=400\b|` +
				`msg="failed to parse" .*Transport<TCP>.*data="REGISTER sip:` + domain + ` SIP/2\.0`
		}},
	} {
		c, err := net.Dial(tc.network, n.sipAddr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte(tc.msg)); err != nil {
			t.Fatal(err)
		}
		re := regexp.MustCompile(tc.event(c.LocalAddr().String()))
		if !logMatches(logPath, re, 5*time.Second) {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("%s over %s: no log line matching %s:\n%s", tc.name, tc.network, re, protosTail(string(b), 10))
		}
		c.Close()
	}

	logBytes, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	log := string(logBytes)
	if !strings.Contains(log, "level=DEBUG") {
		t.Fatalf("the log is not at debug level:\n%s", protosTail(log, 20))
	}
	secrets := map[string]string{
		"token": token, "wrong token": wrongTk, "digest response": marker,
		"Digest credentials": `Digest username=`, "response parameter": `response="`,
	}
	for user, pw := range map[string]string{"alice": alicePw, "bob": bobPw, "carol": carolPw, "carol new": carolPw + "x", "wrong": wrongPw} {
		secrets[user+" password"] = pw
		u := strings.Fields(user)[0]
		if user == "wrong" {
			u = "alice"
		}
		m := md5.Sum([]byte(u + ":" + domain + ":" + pw))
		s := sha256.Sum256([]byte(u + ":" + domain + ":" + pw))
		secrets[user+" MD5 HA1"] = hex.EncodeToString(m[:])
		secrets[user+" SHA-256 HA1"] = hex.EncodeToString(s[:])
	}
	for name, s := range secrets {
		if i := strings.Index(log, s); i >= 0 {
			start := max(0, strings.LastIndex(log[:i], "\n"))
			end := i + strings.IndexByte(log[i:]+"\n", '\n')
			t.Errorf("the log holds the %s: %s", name, log[start:end])
		}
	}
}

// logMatches reports whether the file at path holds a line matching re within
// d, reading it again every 20 ms.
func logMatches(path string, re *regexp.Regexp, d time.Duration) bool {
	re = regexp.MustCompile("(?m)" + re.String())
	for deadline := time.Now().Add(d); ; {
		if b, err := os.ReadFile(path); err == nil && re.Match(b) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}
