package e2e

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imcall/b2bua/internal/testenv"
	"github.com/imcall/b2bua/registry"
)

// requireTool returns the path of a peer program; it skips the test when
// the program is missing, or fails it under CI=true (.ci/run installs it).
func requireTool(t *testing.T, name, pkg string) string {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		testenv.Missing(t, "%s not installed (apt-get install %s): %v", name, pkg, err)
	}
	return testenv.NeedTool(t, name)
}

// freeRange is the first of n consecutive UDP ports on 127.0.0.1 that are
// free now (n even, starting even), for an RTP port range.
func freeRange(t *testing.T, n int) int {
	t.Helper()
	for i := 0; i < 100; i++ {
		base := pickPort(t) &^ 1
		if base+n > 65535 {
			continue
		}
		var held []net.PacketConn
		ok := true
		for p := base; p < base+n && ok; p++ {
			pc, err := net.ListenPacket("udp4", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				ok = false
				break
			}
			held = append(held, pc)
		}
		for _, pc := range held {
			pc.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatalf("no %d free consecutive UDP ports", n)
	return 0
}

// sineWAV writes seconds of a 440 Hz tone, 8 kHz 16-bit mono PCM, the
// audio the soft phones send.
func sineWAV(t *testing.T, seconds int) string {
	t.Helper()
	n := 8000 * seconds
	b := make([]byte, 44+2*n)
	copy(b, "RIFF")
	binary.LittleEndian.PutUint32(b[4:], uint32(36+2*n))
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16)
	binary.LittleEndian.PutUint16(b[20:], 1) // PCM
	binary.LittleEndian.PutUint16(b[22:], 1) // mono
	binary.LittleEndian.PutUint32(b[24:], 8000)
	binary.LittleEndian.PutUint32(b[28:], 16000)
	binary.LittleEndian.PutUint16(b[32:], 2)
	binary.LittleEndian.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], uint32(2*n))
	for i := 0; i < n; i++ {
		v := int16(8000 * math.Sin(2*math.Pi*440*float64(i)/8000))
		binary.LittleEndian.PutUint16(b[44+2*i:], uint16(v))
	}
	p := filepath.Join(t.TempDir(), "sine.wav")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// peer is a running soft phone whose output is watched line by line.
type peer struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	exited chan struct{}

	mu    sync.Mutex
	out   []string
	wake  chan struct{} // closed and replaced on every line
	start time.Time
}

func startPeer(t *testing.T, name string, cmd *exec.Cmd, withStdin bool) *peer {
	t.Helper()
	p := &peer{t: t, name: name, cmd: cmd, exited: make(chan struct{}), wake: make(chan struct{}), start: time.Now()}
	r, w := io.Pipe()
	cmd.Stdout, cmd.Stderr = w, w
	if withStdin {
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		p.stdin = in
	}
	// A group of its own, so that its children (Kamailio forks) end with
	// it and release the output pipe.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.out = append(p.out, sc.Text())
			close(p.wake)
			p.wake = make(chan struct{})
			p.mu.Unlock()
		}
		io.Copy(io.Discard, r)
	}()
	go func() {
		cmd.Wait()
		w.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-p.exited
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", p.name, p.output())
		}
	})
	return p
}

func (p *peer) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return tail([]byte(strings.Join(p.out, "\n")), 80)
}

// waitFor waits until a line of output contains s.
func (p *peer) waitFor(s string, d time.Duration) {
	p.t.Helper()
	if !p.seen(s, 0, d) {
		p.t.Fatalf("%s did not print %q within %s", p.name, s, d)
	}
}

// poll sends cmd until its answer contains s, for at most d: linphonec
// prints nothing when its registration succeeds, only when asked.
func (p *peer) poll(cmd, s string, d time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		from := len(p.out)
		p.mu.Unlock()
		p.send(cmd)
		if p.seen(s, from, 300*time.Millisecond) {
			return
		}
	}
	p.t.Fatalf("%s: %q did not answer %q within %s", p.name, cmd, s, d)
}

// seen reports whether a line from index from on contains s within d.
func (p *peer) seen(s string, from int, d time.Duration) bool {
	p.t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	seen := from
	for {
		p.mu.Lock()
		for ; seen < len(p.out); seen++ {
			if strings.Contains(p.out[seen], s) {
				p.mu.Unlock()
				return true
			}
		}
		wake := p.wake
		p.mu.Unlock()
		select {
		case <-wake:
		case <-p.exited:
			p.mu.Lock()
			n := len(p.out)
			p.mu.Unlock()
			if seen == n {
				return false
			}
		case <-timer.C:
			return false
		}
	}
}

// send writes a command line to the peer's console.
func (p *peer) send(line string) {
	p.t.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		p.t.Fatalf("%s: %s: %v", p.name, line, err)
	}
}

// waitExit waits for the peer to end by itself.
func (p *peer) waitExit(d time.Duration) {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(d):
		p.t.Fatalf("%s still running after %s", p.name, d)
	}
}

// baresipPeer runs baresip 1.0 as user of the node, its account sending
// everything to the node (outbound proxy), with the config of
// testdata/baresip. regint 0 does not register. args are baresip's own
// flags (-t, -e).
func baresipPeer(t *testing.T, n *node, user, password string, register bool, args ...string) *peer {
	t.Helper()
	bin := requireTool(t, "baresip", "baresip")
	dir := filepath.Join(t.TempDir(), "baresip-"+user)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	tmpl, err := os.ReadFile(filepath.Join("..", "testdata", "baresip", "config"))
	if err != nil {
		t.Fatal(err)
	}
	rtp := freeRange(t, 20)
	regint := "0"
	if register {
		regint = "600"
	}
	// The account line as baresip's docs write it: the AOR, the password,
	// the node as outbound proxy, and auto answer.
	acct := "<sip:" + user + "@" + domain + ">;auth_pass=" + password +
		";outbound=\"sip:" + n.sipAddr + "\";regint=" + regint + ";answermode=auto\n"
	// baresip cannot bind port 0 and also listens on the next port (TLS):
	// a picked port another process takes first makes it give up at
	// start, and it is started again on a new one, as SIPp is.
	for attempt := 1; ; attempt++ {
		cfg := strings.NewReplacer(
			"{{SIP_PORT}}", strconv.Itoa(pickPort(t)),
			"{{WAV}}", sineWAV(t, 30),
			"{{RTP_PORTS}}", strconv.Itoa(rtp)+"-"+strconv.Itoa(rtp+19),
		).Replace(string(tmpl))
		for name, body := range map[string]string{"config": cfg, "accounts": acct} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		p := startPeer(t, "baresip "+user, exec.Command(bin, append([]string{"-f", dir}, args...)...), false)
		if p.seen("baresip is ready", 0, 10*time.Second) || attempt == 5 || !strings.Contains(p.output(), "Address already in use") {
			return p
		}
		t.Logf("baresip %s: a picked port was taken before it bound it; starting again", user)
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
	}
}

// legStats reads the per-leg media counters of a call record.
func legStats(t *testing.T, rec registry.CallRecord) []struct {
	Leg     string `json:"leg"`
	Packets uint64 `json:"packets"`
} {
	t.Helper()
	var legs []struct {
		Leg     string `json:"leg"`
		Packets uint64 `json:"packets"`
	}
	if err := json.Unmarshal([]byte(rec.Stats), &legs); err != nil {
		t.Fatalf("call record stats %q: %v", rec.Stats, err)
	}
	return legs
}

// requireTwoWayRTP checks that a finished call carried RTP from both
// parties through the proxy: at least min packets from the caller's leg
// (uas-1, the INVITE that reached us) and from the callee's (uac-1).
func requireTwoWayRTP(t *testing.T, rec registry.CallRecord, min uint64) {
	t.Helper()
	got := map[string]uint64{}
	for _, l := range legStats(t, rec) {
		got[l.Leg] += l.Packets
	}
	if got["uas-1"] < min || got["uac-1"] < min {
		t.Errorf("RTP packets from caller (uas-1) %d, from callee (uac-1) %d, want at least %d each; record %+v", got["uas-1"], got["uac-1"], min, rec)
	}
}

// linphonePeer runs linphonec (liblinphone 5) as user of the node, with
// the account of testdata/linphone/linphonerc, answering calls itself (-a)
// and sending the audio of a WAV file. Its console takes commands (send).
func linphonePeer(t *testing.T, n *node, user, password string, register bool) *peer {
	t.Helper()
	bin := requireTool(t, "linphonec", "linphone-cli")
	dir := filepath.Join(t.TempDir(), "linphone-"+user)
	// linphonec keeps its databases under $HOME/.local/share/linphone and
	// starts no account without them.
	home := filepath.Join(dir, "home")
	if err := os.MkdirAll(filepath.Join(home, ".local", "share", "linphone"), 0o755); err != nil {
		t.Fatal(err)
	}
	tmpl, err := os.ReadFile(filepath.Join("..", "testdata", "linphone", "linphonerc"))
	if err != nil {
		t.Fatal(err)
	}
	reg := "0"
	if register {
		reg = "1"
	}
	rc := strings.NewReplacer(
		"{{SIP_PORT}}", strconv.Itoa(pickPort(t)),
		"{{RTP_PORT}}", strconv.Itoa(freeRange(t, 2)),
		"{{NODE}}", n.sipAddr,
		"{{USER}}", user,
		"{{PASSWORD}}", password,
		"{{DOMAIN}}", domain,
		"{{REGISTER}}", reg,
	).Replace(string(tmpl))
	rcPath := filepath.Join(dir, "linphonerc")
	if err := os.WriteFile(rcPath, []byte(rc), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-a", "-c", rcPath)
	cmd.Env = append(os.Environ(), "HOME="+home)
	p := startPeer(t, "linphonec "+user, cmd, true)
	t.Cleanup(func() { p.stdin.Close() })
	p.send("ipv6 disable")
	p.send("soundcard use files")
	p.send("play " + sineWAV(t, 30))
	return p
}

// runSipp is startSipp for one SIPp run named name, with scenario sf on
// port (0 picks one) and args.
func runSipp(t *testing.T, name string, port int, sf string, args ...string) *sipp {
	t.Helper()
	return startSipp(t, sippRun{name: name, scenario: sf, port: port, args: args})
}

// waitRelayed waits until the node's RTP proxy has relayed at least min
// datagrams in all, read from /metrics, and fails the test after d.
func (n *node) waitRelayed(min int, d time.Duration) {
	n.t.Helper()
	re := regexp.MustCompile(`(?m)^b2bua_rtp_packets_relayed_total (\d+)$`)
	got := 0
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		res, err := http.Get("http://" + n.httpAddr + "/metrics")
		if err != nil {
			n.t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if m := re.FindStringSubmatch(string(body)); m != nil {
			if got, _ = strconv.Atoi(m[1]); got >= min {
				return
			}
		}
	}
	n.t.Fatalf("the RTP proxy relayed %d datagrams in %v, want at least %d", got, d, min)
}
