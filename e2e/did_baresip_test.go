package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// requireBaresip skips the test when baresip is missing, or fails it
// under CI=true, and returns its path.
func requireBaresip(t *testing.T) string {
	t.Helper()
	return requireTool(t, "baresip", "baresip")
}

// baresipConfig is a baresip configuration as its sample config writes
// one, for a headless client: G.711, and the aubridge device as both player
// and source, so that the client sends back the audio it receives.
const baresipConfig = `poll_method		epoll
sip_listen		127.0.0.1:%PORT%
audio_player		aubridge,loop
audio_source		aubridge,loop
audio_alert		aubridge,alert
module_path		/usr/lib/baresip/modules
module			g711.so
module			aubridge.so
module			account.so
module			menu.so
module			stdio.so
`

// TestDIDBaresip: bob logs in on baresip, which answers a trunk call to
// his number by itself (answermode=auto); RTP flows both ways through the
// proxy (baresip echoes what it hears).
func TestDIDBaresip(t *testing.T) {
	t.Parallel()
	bin := requireBaresip(t)
	requirePCAP(t)
	n := provisionDID(t, "none")
	// baresip 1.0 (libre) gives up on a 401 that also offers SHA-256,
	// whatever the order ("Function not implemented"): MD5 alone here.
	n.serve(serveOpts{extra: []string{"--digest-algorithms", "MD5"}})
	dir := t.TempDir()
	port := pickPort(t)
	cfg := strings.ReplaceAll(baresipConfig, "%PORT%", strconv.Itoa(port))
	acct := `<sip:bob@` + domain + `;transport=udp>;auth_pass=secret;outbound="sip:` + n.sipAddr + `;transport=udp";regint=600;answermode=auto;audio_codecs=PCMA` + "\n"
	for name, body := range map[string]string{"config": cfg, "accounts": acct} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	logf, err := os.Create(filepath.Join(dir, "baresip.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-f", dir, "-t", strconv.Itoa(int(sippTimeout/time.Second)))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "baresip.log"))
			t.Logf("baresip log:\n%s", tail(b, 80))
		}
	})
	// Logged in once client list shows baresip's Contact.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(n.cli("", "client", "list", "--im", "bob"), "127.0.0.1:"+strconv.Itoa(port)) {
		if time.Now().After(deadline) {
			t.Fatalf("baresip not logged in within 10s:\n%s", n.cli("", "client", "list", "--im", "bob"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	n.trunkCall("trunk_call.xml", "sip:"+bobNumber+"@"+domain+";user=phone").wait()
	n.requireTwoWayRTP("uac-1")
}
