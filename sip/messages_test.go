package sip_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imcall/b2bua/registry/sqlite"
	"github.com/imcall/b2bua/scp/sim"
	b2b "github.com/imcall/b2bua/sip"
)

// TestCallCoreDoesNotLinkMessaging: the call core reaches the MESSAGE
// service only through the interfaces of messages.go; neither the service
// nor the packages only it needs are in sip's import graph.
func TestCallCoreDoesNotLinkMessaging(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/imcall/b2bua/sip").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := map[string]bool{}
	for _, p := range strings.Fields(string(out)) {
		deps[p] = true
	}
	if !deps["github.com/imcall/b2bua/registry"] {
		t.Fatalf("go list gave no graph of sip:\n%s", out)
	}
	for _, p := range []string{
		"github.com/imcall/b2bua/sip/messaging",
		"github.com/imcall/b2bua/mediastore",
		"github.com/imcall/b2bua/msgpolicy",
		"github.com/imcall/b2bua/cpim",
	} {
		if deps[p] {
			t.Errorf("sip depends on %s", p)
		}
	}
}

// TestWithoutMessageService: a server with no MESSAGE service plugged in
// refuses MESSAGE outside a dialog with 405, and says so in Allow and in
// the Accept of OPTIONS.
func TestWithoutMessageService(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "b2bua.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	simulator, err := sim.New(sim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := b2b.NewServer(b2b.Config{Domain: "im.test", Terminals: store, Locator: simulator, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	select {
	case <-srv.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("server not ready")
	}
	addr := srv.Addr().String()

	res := exchangeUDP(t, addr, func(l string) string {
		return rawRequest("MESSAGE", "sip:bob@"+addr, l, "Content-Type: text/plain")
	})
	allow := res.GetHeader("Allow")
	if res.StatusCode != 405 || allow == nil || strings.Contains(allow.Value(), "MESSAGE") || !strings.Contains(allow.Value(), "INVITE") {
		t.Errorf("MESSAGE: %d, Allow %v; want 405 with an Allow without MESSAGE", res.StatusCode, allow)
	}
	res = exchangeUDP(t, addr, func(l string) string { return rawRequest("OPTIONS", "sip:"+addr, l) })
	if a := res.GetHeader("Accept"); res.StatusCode != 200 || a == nil || a.Value() != "application/sdp" {
		t.Errorf("OPTIONS: %d, Accept %v; want 200 with application/sdp only", res.StatusCode, a)
	}
}
