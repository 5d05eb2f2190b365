package e2e

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// protosGroups is the part of PROTOS c07-sip this test replays (about 1,100
// of its 4,527 cases, some 25 s): the valid case, every group that breaks
// the request line, the transaction header fields (Via, From/To tags and
// brackets, Call-ID, CSeq, Max-Forwards, Content-Length, Expires) and the
// CRLF framing, plus samples of broken SDP. bench/protos.sh runs the rest.
const protosGroups = "valid,sip-method,sip-request-uri,sip-version,sip-via-version,sip-from-tag," +
	"sip-contact-left-paranthesis,sip-to-left-paranthesis,sip-to-right-paranthesis,sip-call-id-at," +
	"sip-expires,sip-max-forwards,sip-cseq-integer,sip-cseq-string,sip-content-length," +
	"sip-request-crlf,crlf-request,sdp-origin-ip,sdp-media-port"

// protos400Groups are groups whose every case breaks the request line or
// a header field the B2BUA needs to answer at all (RFC 3261 §8.2.2,
// §8.1.1): each case the server answers must be answered 400 and nothing
// else. They were chosen from a full run (bench/RESULTS.md).
var protos400Groups = map[string][2]int{ // group: first case, count
	"sip-version":              {255, 75},
	"sip-to-left-paranthesis":  {1436, 16},
	"sip-to-right-paranthesis": {1452, 16},
	"sip-request-crlf":         {2407, 10},
	"crlf-request":             {2417, 10},
}

// versionLine is a request line ending in a well-formed SIP version ("SIP"
// "/" 1*DIGIT "." 1*DIGIT, RFC 3261 §25.1).
var versionLine = regexp.MustCompile(`^[^\r\n]* SIP/([0-9]+)\.([0-9]+)\r\n`)

// otherVersion reports whether msg's request line has a well-formed version
// other than 2.0.
func otherVersion(msg []byte) bool {
	m := versionLine.FindSubmatch(msg)
	return m != nil && (string(m[1]) != "2" || string(m[2]) != "0")
}

// protosCorpus finds the suite at ../shared beside the repository, or
// fails under CI and skips elsewhere when it or python3 is missing.
func protosCorpus(t *testing.T) string {
	t.Helper()
	dir, _ := filepath.Abs(filepath.Join("..", "..", "shared", "corpus", "protos-c07-sip"))
	if d := os.Getenv("PROTOS_DIR"); d != "" {
		dir = d
	}
	_, errCorpus := os.Stat(filepath.Join(dir, "run-protos.py"))
	_, errPy := exec.LookPath("python3")
	for _, err := range []error{errCorpus, errPy} {
		if err == nil {
			continue
		}
		if os.Getenv("CI") == "true" {
			t.Fatalf("PROTOS c07-sip needs python3 and the suite at %s under CI=true: %v", dir, err)
		}
		t.Skipf("PROTOS c07-sip: %v", err)
	}
	return dir
}

// TestPROTOS replays part of the PROTOS c07-sip suite against the real
// binary: it must not crash or stop answering, it must still answer
// OPTIONS afterwards, and requests broken where it cannot proceed get 400.
// Some cases name foreign hosts in Via, so where the kernel allows it the
// test runs itself again inside a network namespace with only lo up.
func TestPROTOS(t *testing.T) {
	corpus := protosCorpus(t)
	if os.Getenv("B2BUA_PROTOS_NETNS") == "" {
		bin := b2buaBin(t)
		if _, err := exec.LookPath("unshare"); err == nil && exec.Command("unshare", "-rn", "true").Run() == nil {
			cmd := exec.Command("unshare", "-rn", os.Args[0], "-test.run", "^TestPROTOS$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), "B2BUA_PROTOS_NETNS=1", "B2BUA_PROTOS_BIN="+bin, "PROTOS_DIR="+corpus)
			out, err := cmd.CombinedOutput()
			t.Logf("inside unshare -rn:\n%s", out)
			if err != nil || !strings.Contains(string(out), "--- PASS: TestPROTOS") {
				t.Fatalf("PROTOS run in a network namespace failed: %v", err)
			}
			return
		}
		t.Log("unshare -rn not available: running on the host's loopback")
		runPROTOS(t, bin, corpus)
		return
	}
	if ip, err := exec.LookPath("ip"); err == nil {
		_ = exec.Command(ip, "link", "set", "lo", "up").Run()
	}
	runPROTOS(t, os.Getenv("B2BUA_PROTOS_BIN"), corpus)
}

func runPROTOS(t *testing.T, bin, corpus string) {
	dir := t.TempDir()
	sipAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	httpAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	logf, err := os.Create(filepath.Join(dir, "b2bua.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	// The suite sends everything from one address: the per-source rate
	// limit would answer part of it 503 and hide the parser's answers.
	cmd := exec.Command(bin, "--db", filepath.Join(dir, "b2bua.db"), "--domain", "protos.example", "serve",
		"--sip-listen", sipAddr, "--http-listen", httpAddr, "--sip-rate", "0", "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("b2bua log:\n%s", protosTail(string(b), 40))
		}
	}()
	waitReady(t, httpAddr, exited)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	run := exec.CommandContext(ctx, "python3", filepath.Join(corpus, "run-protos.py"),
		"--target", sipAddr, "--to-host", "protos.example", "--groups", protosGroups, "--deadline", "60")
	out, err := run.CombinedOutput()
	t.Logf("run-protos.py:\n%s", out)
	if err != nil {
		t.Fatalf("run-protos.py: %v", err)
	}
	m := regexp.MustCompile(`protos: (\d+) sent, (\d+) answered, (\d+) probes-ok, (\d+) crashes`).FindStringSubmatch(string(out))
	if m == nil || m[4] != "0" || m[1] == "0" || strings.Contains(string(out), "stopped:") {
		t.Fatalf("the suite did not run to the end without a crash")
	}
	select {
	case err := <-exited:
		exited <- err
		t.Fatalf("b2bua exited during the suite: %v", err)
	default:
	}

	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	target, _ := net.ResolveUDPAddr("udp", sipAddr)
	if code := protosExchange(t, conn, target, []byte(protosOptions(conn, sipAddr)), "protos-final-probe"); code != 200 {
		t.Fatalf("OPTIONS after the suite: %d, want 200", code)
	}

	cases := protosCases(t, filepath.Join(corpus, "c07-sip-cases.tar.gz"))
	for group, r := range protos400Groups {
		answered := 0
		for n := r[0]; n < r[0]+r[1]; n++ {
			c, ok := cases[n]
			if !ok || len(c[0]) > 60000 {
				continue
			}
			cid := fmt.Sprintf("protos400-%d", n)
			inv := protosFill(c[0], conn, sipAddr, n, cid)
			code := protosExchange(t, conn, target, inv, cid)
			_, _ = conn.WriteTo(protosFill(c[1], conn, sipAddr, n, cid), target)
			if code == 0 {
				t.Logf("%s case %d: no answer", group, n)
				continue
			}
			answered++
			// RFC 3261 §21.5.7, RFC 4475 §3.1.2.16: a well-formed
			// version other than 2.0 is 505, anything else 400.
			want := 400
			if otherVersion(c[0]) {
				want = 505
			}
			if code != want {
				t.Errorf("%s case %d: answered %d, want %d", group, n, code, want)
			}
		}
		if answered == 0 {
			t.Errorf("%s: no case answered", group)
		}
		t.Logf("%s: %d of %d cases answered 400", group, answered, r[1])
	}
	if code := protosExchange(t, conn, target, []byte(protosOptions(conn, sipAddr)), "protos-final-probe"); code != 200 {
		t.Fatalf("OPTIONS at the end: %d, want 200", code)
	}
	if b, _ := os.ReadFile(logf.Name()); strings.Contains(string(b), "panic:") {
		t.Fatal("the b2bua log shows a panic")
	}
}

func waitReady(t *testing.T, httpAddr string, exited chan error) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("b2bua exited before it was ready: %v", err)
		default:
		}
		if res, err := http.Get("http://" + httpAddr + "/healthz"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("b2bua not ready within 15s")
}

func protosOptions(conn *net.UDPConn, sipAddr string) string {
	la := conn.LocalAddr().String()
	return "OPTIONS sip:" + sipAddr + " SIP/2.0\r\nVia: SIP/2.0/UDP " + la + ";branch=z9hG4bK-final-probe\r\n" +
		"Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=fp\r\nTo: <sip:" + sipAddr + ">\r\n" +
		"Call-ID: protos-final-probe\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
}

// protosExchange sends msg and returns the status of the first final
// answer whose Call-ID is cid; 0 when none comes within 300 ms.
func protosExchange(t *testing.T, conn *net.UDPConn, to *net.UDPAddr, msg []byte, cid string) int {
	t.Helper()
	if _, err := conn.WriteTo(msg, to); err != nil {
		t.Fatal(err)
	}
	status := regexp.MustCompile(`^SIP/2\.0 (\d{3}) `)
	callID := regexp.MustCompile(`(?im)^(?:call-id|i)[ \t]*:[ \t]*(\S+)`)
	buf := make([]byte, 65535)
	deadline := time.Now().Add(300 * time.Millisecond)
	for {
		conn.SetReadDeadline(deadline)
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			return 0
		}
		m, c := status.FindSubmatch(buf[:n]), callID.FindSubmatch(buf[:n])
		// The suite's Call-IDs are "<Call-ID>@<From-IP>".
		if m == nil || c == nil || (string(c[1]) != cid && !strings.HasPrefix(string(c[1]), cid+"@")) || m[1][0] == '1' {
			continue
		}
		code, _ := strconv.Atoi(string(m[1]))
		return code
	}
}

// protosCases reads the suite's archive: case number → INVITE template and
// teardown template (each stored as "<len> <bytes>").
func protosCases(t *testing.T, archive string) map[int][2][]byte {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	out := map[int][2][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n, err := strconv.Atoi(path.Base(h.Name))
		if h.Typeflag != tar.TypeReg || err != nil {
			continue
		}
		raw, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		var parts [][]byte
		for len(raw) > 0 && len(parts) < 2 {
			sp := strings.IndexByte(string(raw), ' ')
			l, err := strconv.Atoi(string(raw[:sp]))
			if sp < 0 || err != nil || sp+1+l > len(raw) {
				t.Fatalf("case %d: bad framing", n)
			}
			parts = append(parts, raw[sp+1:sp+1+l])
			raw = raw[sp+1+l:]
		}
		if len(parts) == 2 {
			out[n] = [2][]byte{parts[0], parts[1]}
		}
	}
	return out
}

// protosFill fills a template's placeholders the way the suite's runner
// does, with our own Call-ID.
func protosFill(tmpl []byte, conn *net.UDPConn, sipAddr string, n int, cid string) []byte {
	port := strconv.Itoa(conn.LocalAddr().(*net.UDPAddr).Port)
	s := strings.NewReplacer(
		"<To>", "protos@protos.example", "<From>", "protos@127.0.0.1",
		"<From-Address>", "127.0.0.1", "<From-IP>", "127.0.0.1", "<Local-Port>", port,
		"<Call-ID>", cid, "<Branch-ID>", fmt.Sprintf("%07d-e2e", n), "<CSeq>", strconv.Itoa(n+1),
		"<Teardown-Method>", "CANCEL",
	).Replace(string(tmpl))
	body := 0
	if i := strings.Index(s, "\r\n\r\n"); i >= 0 {
		body = len(s) - i - 4
	}
	return []byte(strings.ReplaceAll(s, "<Content-Length>", strconv.Itoa(body)))
}

// protosTail is the last n lines of s.
func protosTail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
