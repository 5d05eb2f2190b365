package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imcall/b2bua/registry"
)

const aliceMSISDN = "+15550001111"

// TestDualPathCall: alice's phone calls bob over the data network
// (digest-authenticated, 127.0.0.1) and a second later over the carrier
// network (a trunk at 127.0.0.2 asserting alice's MSISDN). Both legs join
// one call: bob's SIPp terminal sees exactly one INVITE and no re-INVITE.
// The data path's audio ends first and it stays silent: the far party is
// switched to the carrier path (/metrics counts the switch). The carrier
// path hangs up and the call goes on; the data path hangs up and bob gets
// the BYE.
func TestDualPathCall(t *testing.T) {
	t.Parallel()
	requirePCAP(t)
	n := provision(t)
	n.cli("", "terminal", "add", "--im", "alice", "--msisdn", aliceMSISDN, "--kind", "legacy", "--active")
	n.cli("", "trunk", "add", "carrier", "--cidr", "127.0.0.2/32")
	far := pickPort(t)
	n.serve(serveOpts{subscribers: []subscriber{online(bobIMSI, far)},
		extra: []string{"--rtp-ports", "38400-38499", "--dual-path-window", "10s"}})
	bob := terminalOn(t, "terminal_answer.xml", far)

	data := runSipp(t, "data", 0, "dual_data_path.xml",
		"-s", "bob", "-key", "caller", "alice", "-key", "domain", domain,
		"-au", "alice", "-ap", "secret",
		"-mp", strconv.Itoa(pickPort(t)), "-d", "10000", n.sipAddr)
	waitLog(t, filepath.Join(bob.dir, "messages.log"), "ACK sip:", 1, 10*time.Second)
	time.Sleep(time.Second) // the second path comes a second after the first was answered
	carrier := runSipp(t, "carrier", 0, "dual_carrier_path.xml",
		"-i", "127.0.0.2", "-s", "bob", "-key", "msisdn", aliceMSISDN, "-key", "domain", domain,
		"-mp", strconv.Itoa(pickPort(t)), "-d", "8000", n.sipAddr)
	carrier.wait()
	select {
	case <-bob.exited:
		t.Fatalf("bob's call ended with the carrier path\n%s", bob.logs())
	default:
	}
	data.wait()
	bob.wait()

	msgs, _ := os.ReadFile(filepath.Join(bob.dir, "messages.log"))
	received := regexp.MustCompile(`(?m)^\s*(INVITE|BYE) sip:`).FindAllStringSubmatch(string(msgs), -1)
	var invites, byes int
	for _, m := range received {
		if m[1] == "INVITE" {
			invites++
		} else {
			byes++
		}
	}
	if invites != 1 || byes != 1 {
		t.Errorf("bob's terminal got %d INVITEs and %d BYEs, want one of each", invites, byes)
	}
	if v := metric(t, n, "b2bua_dual_path_switches_total"); v < 1 {
		t.Errorf("no path switch counted after the data path went silent")
	}
	// One call record: both paths, the carrier path left first, and the
	// switches with the silence of the path each one left.
	rec := n.lastCall(func(r registry.CallRecord) bool { return !r.EndedAt.IsZero() })
	var st struct {
		Paths []struct {
			Path   string    `json:"path"`
			LeftAt time.Time `json:"left_at"`
		} `json:"paths"`
		Switches int     `json:"switches"`
		GapsMs   []int64 `json:"switch_gaps_ms"`
	}
	if err := json.Unmarshal([]byte(rec.Stats), &st); err != nil {
		t.Fatalf("record stats %q: %v", rec.Stats, err)
	}
	if len(st.Paths) != 2 || st.Paths[0].Path != "data" || st.Paths[1].Path != "carrier" || !st.Paths[1].LeftAt.Before(st.Paths[0].LeftAt) {
		t.Errorf("record paths %+v", st.Paths)
	}
	if st.Switches < 1 || len(st.GapsMs) != st.Switches {
		t.Errorf("record: %d switches, gaps %v", st.Switches, st.GapsMs)
	}
	t.Logf("path switches %d, silence of the path left at each (ms): %v", st.Switches, st.GapsMs)
}

// metric reads one value from n's /metrics.
func metric(t *testing.T, n *node, name string) int {
	t.Helper()
	res, err := http.Get("http://" + n.httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\d+)$`).FindStringSubmatch(string(body))
	if m == nil {
		t.Fatalf("/metrics lacks %s:\n%s", name, body)
	}
	v, _ := strconv.Atoi(m[1])
	return v
}

// dualNode is a node with alice's MSISDN, the trunk at 127.0.0.2, mallory,
// and bob's SIPp terminal running sf with -d ring.
func dualNode(t *testing.T, sf string, ring time.Duration) (*node, *sipp) {
	t.Helper()
	requirePCAP(t)
	n := provision(t)
	n.addUser("mallory", "secret")
	n.cli("", "terminal", "add", "--im", "alice", "--msisdn", aliceMSISDN, "--kind", "legacy", "--active")
	n.cli("", "trunk", "add", "carrier", "--cidr", "127.0.0.2/32")
	far := pickPort(t)
	n.serve(serveOpts{subscribers: []subscriber{online(bobIMSI, far)}})
	bob := runSipp(t, strings.TrimSuffix(sf, ".xml"), far, sf, "-d", strconv.Itoa(int(ring/time.Millisecond)))
	bob.waitBound()
	return n, bob
}

func (n *node) dataPath(name, sf, user string, hangAfter time.Duration, extra ...string) *sipp {
	args := []string{"-s", "bob", "-key", "caller", user, "-key", "domain", domain,
		"-au", user, "-ap", "secret",
		"-mp", strconv.Itoa(pickPort(n.t)), "-d", strconv.Itoa(int(hangAfter / time.Millisecond))}
	return runSipp(n.t, name, 0, sf, append(append(args, extra...), n.sipAddr)...)
}

func (n *node) carrierPath(hangAfter time.Duration) *sipp {
	return runSipp(n.t, "carrier", 0, "dual_carrier_path.xml",
		"-i", "127.0.0.2", "-s", "bob", "-key", "msisdn", aliceMSISDN, "-key", "domain", domain,
		"-mp", strconv.Itoa(pickPort(n.t)), "-d", strconv.Itoa(int(hangAfter/time.Millisecond)), n.sipAddr)
}

// farCounts is how many INVITEs and BYEs bob's terminal received.
func farCounts(s *sipp) (invites, byes int) {
	msgs, _ := os.ReadFile(filepath.Join(s.dir, "messages.log"))
	for _, m := range regexp.MustCompile(`(?m)^\s*(INVITE|BYE) sip:`).FindAllStringSubmatch(string(msgs), -1) {
		if m[1] == "INVITE" {
			invites++
		} else {
			byes++
		}
	}
	return invites, byes
}

// TestDualPathSecondLegWhileRinging: the carrier path calls first; the
// data path joins while bob's phone rings; bob's answer reaches both.
func TestDualPathSecondLegWhileRinging(t *testing.T) {
	t.Parallel()
	n, bob := dualNode(t, "terminal_ring_answer.xml", 3*time.Second)
	carrier := n.carrierPath(4 * time.Second)
	waitLog(t, filepath.Join(bob.dir, "messages.log"), "INVITE sip:", 1, 10*time.Second)
	data := n.dataPath("data", "dual_data_path.xml", "alice", 2*time.Second)
	data.wait()
	carrier.wait()
	bob.wait()
	if inv, byes := farCounts(bob); inv != 1 || byes != 1 {
		t.Errorf("bob's terminal got %d INVITEs and %d BYEs, want one of each", inv, byes)
	}
}

var (
	sentAck = regexp.MustCompile(`(?s)ACK sip:\S+ SIP/2.0.*?Call-ID: (\S+).*?CSeq: 2 ACK`)
	fromTag = regexp.MustCompile(`(?m)^\s*From: .*;tag=(\S+)`)
	toTag   = regexp.MustCompile(`(?m)^\s*To: .*;tag=(\S+)`)
)

// TestDualPathJoinHeader: alice's second client names the first path's
// dialog in Join (RFC 3911) and joins the call; mallory naming it is
// refused with 403.
func TestDualPathJoinHeader(t *testing.T) {
	t.Parallel()
	n, bob := dualNode(t, "terminal_answer.xml", 0)
	first := n.dataPath("first", "dual_data_path.xml", "alice", 6*time.Second)
	log := filepath.Join(first.dir, "messages.log")
	waitLog(t, log, "CSeq: 2 ACK", 1, 10*time.Second)
	b, _ := os.ReadFile(log)
	// the ACK of the 200, not of the 407 before it
	blocks := strings.Split(string(b), "ACK sip:")
	ack := "ACK sip:" + blocks[len(blocks)-1]
	cid, ft, tt := sentAck.FindStringSubmatch(ack), fromTag.FindStringSubmatch(ack), toTag.FindStringSubmatch(ack)
	if cid == nil || ft == nil || tt == nil {
		t.Fatalf("no dialog in the first path's ACK:\n%s", ack)
	}
	join := cid[1] + ";to-tag=" + tt[1] + ";from-tag=" + ft[1]
	n.dataPath("mallory", "caller_join_refused.xml", "mallory", 0, "-key", "join", join).wait()
	n.dataPath("second", "dual_join_path.xml", "alice", time.Second, "-key", "join", join).wait()
	first.wait()
	bob.wait()
	if inv, byes := farCounts(bob); inv != 1 || byes != 1 {
		t.Errorf("bob's terminal got %d INVITEs and %d BYEs, want one of each", inv, byes)
	}
}
