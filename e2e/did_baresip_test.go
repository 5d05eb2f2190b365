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
	// serve's defaults: MD5 alone, which baresip 1.0 needs (it gives up
	// on a 401 that also offers SHA-256, whatever the order).
	n.serve(serveOpts{})
	dir := t.TempDir()
	acct := `<sip:bob@` + domain + `;transport=udp>;auth_pass=secret;outbound="sip:` + n.sipAddr + `;transport=udp";regint=600;answermode=auto;audio_codecs=PCMA` + "\n"
	// baresip cannot bind port 0: a picked port another process takes
	// first makes it give up at start, and it is started again on a new
	// one, as SIPp is.
	var port int
	for attempt := 1; ; attempt++ {
		port = pickPort(t)
		if startDIDBaresip(t, bin, dir, port, acct) || attempt == 5 {
			break
		}
		t.Logf("baresip: port %d was taken before it bound it; starting again", port)
	}
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

// startDIDBaresip runs baresip from dir with the echoing config on port
// until the test ends; false when it gave up at start because a port it
// binds was in use (it has exited then).
func startDIDBaresip(t *testing.T, bin, dir string, port int, acct string) bool {
	t.Helper()
	cfg := strings.ReplaceAll(baresipConfig, "%PORT%", strconv.Itoa(port))
	for name, body := range map[string]string{"config": cfg, "accounts": acct} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	logPath := filepath.Join(dir, "baresip.log")
	logf, err := os.Create(logPath)
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
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		b, _ := os.ReadFile(logPath)
		if strings.Contains(string(b), "baresip is ready") {
			break
		}
		select {
		case <-exited:
			b, _ = os.ReadFile(logPath)
			if strings.Contains(string(b), "Address already in use") {
				return false
			}
			t.Fatalf("baresip exited at start:\n%s", tail(b, 40))
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("baresip log:\n%s", tail(b, 80))
		}
	})
	return true
}
