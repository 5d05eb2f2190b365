package sip

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/imcall/b2bua/scp/sim"
)

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestTLSThroughGuard: SIP over TLS is served through the guarded listener
// (limits, deadlines), and a connection that never starts its handshake is
// closed within the message timeout.
func TestTLSThroughGuard(t *testing.T) {
	loc, err := sim.New(sim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	const msgT = 500 * time.Millisecond
	s, err := NewServer(Config{Domain: "im.test", Terminals: noTerminals{}, Locator: loc, Logger: slog.New(slog.DiscardHandler),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}, TLSAddr: "127.0.0.1:0",
		Conns: ConnLimits{MessageTimeout: msgT}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	<-s.Ready()

	c, err := tls.Dial("tcp", s.TLSAddr(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	local := c.LocalAddr().String()
	c.Write([]byte("OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TLS " + local + ";branch=z9hG4bK-tls1\r\nFrom: <sip:p@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: tls1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := bufio.NewReader(c).ReadString('\n'); !strings.HasPrefix(line, "SIP/2.0 200") {
		t.Fatalf("OPTIONS over TLS: %q %v", line, err)
	}

	raw, err := net.Dial("tcp", s.TLSAddr()) // no handshake, ever
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	start := time.Now()
	raw.SetReadDeadline(start.Add(5 * time.Second))
	_, err = raw.Read(make([]byte, 10))
	if took := time.Since(start); err == nil || took > msgT+2*time.Second || took < msgT-100*time.Millisecond {
		t.Fatalf("silent TLS connection: read %v after %v, want closed after %v", err, took, msgT)
	}
}
