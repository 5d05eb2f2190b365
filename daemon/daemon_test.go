package daemon

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func options(transport, to, local string) string {
	return strings.Join([]string{
		"OPTIONS sip:" + to + " SIP/2.0",
		"Via: SIP/2.0/" + transport + " " + local + ";branch=z9hG4bK" + strings.ReplaceAll(local, ":", "x"),
		"From: <sip:probe@127.0.0.1>;tag=1",
		"To: <sip:" + to + ">",
		"Call-ID: probe-" + local,
		"CSeq: 1 OPTIONS",
		"Max-Forwards: 70",
		"Content-Length: 0",
	}, "\r\n") + "\r\n\r\n"
}

func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile
}

// TestStartServeShutdown runs the daemon on embedded defaults (no
// subscribers file), with TLS, and checks what an operator relies on.
func TestStartServeShutdown(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	cfg := Config{
		DBPath:     filepath.Join(dir, "b2bua.db"),
		Domain:     "127.0.0.1",
		SIPListen:  "127.0.0.1:0",
		HTTPListen: "127.0.0.1:0",
		TLSListen:  "127.0.0.1:0",
		TLSCert:    cert,
		TLSKey:     key,
		Logger:     slog.New(slog.DiscardHandler),
	}
	ctx := context.Background()
	d, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.Get("http://" + d.HTTPAddr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || strings.TrimSpace(string(body)) != "ok" {
		t.Errorf("healthz %d %q", res.StatusCode, body)
	}
	// The API is mounted and closed without the token.
	if res, err := http.Get("http://" + d.HTTPAddr() + "/api/v1/users"); err != nil || res.StatusCode != 401 {
		t.Errorf("API without token: %v %v", res, err)
	}
	// The simulator's admin API is mounted with --scp sim, behind the
	// API's token (scp_auth_test.go checks it in full).
	if res, err := http.Get("http://" + d.HTTPAddr() + "/scp/v1/subscribers"); err != nil || res.StatusCode != 401 {
		t.Errorf("SCP admin without token: %v %v", res, err)
	}
	fi, err := os.Stat(d.TokenFile)
	if err != nil || fi.Mode().Perm() != 0o600 || filepath.Dir(d.TokenFile) != dir {
		t.Errorf("token file %s: %v %v", d.TokenFile, fi, err)
	}
	token, _ := os.ReadFile(d.TokenFile)

	sip := d.SIPAddr().String()
	u, err := net.Dial("udp", sip)
	if err != nil {
		t.Fatal(err)
	}
	u.Write([]byte(options("UDP", sip, u.LocalAddr().String())))
	u.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 4096)
	n, err := u.Read(buf)
	if err != nil || !strings.HasPrefix(string(buf[:n]), "SIP/2.0 200") {
		t.Errorf("OPTIONS over UDP: %q %v", buf[:n], err)
	}
	u.Close()

	tlsAddr := d.SIP().TLSAddr()
	c, err := tls.Dial("tcp", tlsAddr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS dial %s: %v", tlsAddr, err)
	}
	c.Write([]byte(options("TLS", sip, c.LocalAddr().String())))
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "SIP/2.0 200") {
		t.Errorf("OPTIONS over TLS: %q %v", line, err)
	}
	c.Close()

	sd, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := d.Shutdown(sd); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}

	// A restart keeps the token and the registry.
	cfg.TLSListen = ""
	d2, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	token2, _ := os.ReadFile(d2.TokenFile)
	if string(token2) != string(token) {
		t.Error("token changed across a restart")
	}
	d2.Close()
}
