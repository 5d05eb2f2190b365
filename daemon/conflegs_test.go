package daemon

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imcall/b2bua/conference"
	"github.com/imcall/b2bua/mixer"
)

// reinvite is m's re-INVITE in its dialog with a=dir.
func (m *member) reinvite(ruri, dir string, cseq int) string {
	msg := m.invite(ruri)
	msg = strings.Replace(msg, "To: <"+ruri+">", "To: <"+ruri+">;tag="+m.toTag, 1)
	msg = strings.Replace(msg, "CSeq: 1 INVITE", "CSeq: "+strconv.Itoa(cseq)+" INVITE", 1)
	msg = strings.Replace(msg, ";branch=z9hG4bK-inv-", ";branch=z9hG4bK-reinv"+strconv.Itoa(cseq)+"-", 1)
	body := strings.Replace(msg[strings.Index(msg, "\r\n\r\n")+4:], "a=sendrecv", "a="+dir, 1)
	head := msg[:strings.Index(msg, "\r\n\r\n")]
	head = regexp.MustCompile(`Content-Length: \d+`).ReplaceAllString(head, "Content-Length: "+strconv.Itoa(len(body)))
	return head + "\r\n\r\n" + body
}

// TestConferenceCallLegs: a dial-in's 200 is sent again until the ACK
// (RFC 3261 §13.3.1.4); a re-INVITE with sendonly holds the participant
// (answered recvonly, on-hold, no media timeout while held) and one with
// sendrecv resumes it; once resumed, RTP that stops for the media timeout
// ends the call with BYE and Reason cause 102.
func TestConferenceCallLegs(t *testing.T) {
	lo, hi := confRTP(t)
	d, err := Start(context.Background(), Config{
		DBPath: filepath.Join(t.TempDir(), "b2bua.db"), Domain: "127.0.0.1",
		SIPListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", APIToken: httpTestToken,
		RTPPortMin: lo, RTPPortMax: hi,
		MediaTimeout: time.Second,
		Logger:       slog.New(slog.DiscardHandler),
		Trusted:      []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	code, b := apiDo(t, d, "POST", "/api/v1/conferences", httpTestToken, `{"owner":"alice"}`)
	if code != 201 {
		t.Fatalf("create: %d %s", code, b)
	}
	confID := regexp.MustCompile(`"id":"([0-9a-f]+)"`).FindStringSubmatch(string(b))[1]
	uri := "sip:conf-" + confID + "@127.0.0.1"
	sipTo := net.UDPAddrFromAddrPort(d.SIPAddr())
	bob := newMember(t, "bob", mixer.PCMU, 300)
	var frags []string
	bob.sip.WriteTo([]byte(bob.invite(uri)), sipTo)
	var oks []time.Time
	var ok string
	for len(oks) < 3 {
		if m := bob.sipNext(t, &frags); strings.HasPrefix(m, "SIP/2.0 200") {
			ok = m
			oks = append(oks, time.Now())
		}
	}
	// T1 = 500 ms, doubling: the first again after 0.5 s, the next 1 s on.
	if gap := oks[2].Sub(oks[1]); gap < 800*time.Millisecond || gap > 1500*time.Millisecond {
		t.Errorf("the 200 was sent again %v after the one before, want about 1 s", gap)
	}
	bob.toTag = regexp.MustCompile(`;tag=([^;\s]+)`).FindStringSubmatch(header(ok, "To"))[1]
	g := regexp.MustCompile(`m=audio (\d+) `).FindStringSubmatch(ok)
	port, _ := strconv.Atoi(g[1])
	bob.relay = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
	bob.sip.WriteTo([]byte(bob.inDialog("ACK", uri, 1)), sipTo)

	// bob talks while the 200's retransmission is checked to have stopped.
	var mu sync.Mutex
	talking := true
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(mixer.FrameDuration)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				mu.Lock()
				on := talking
				mu.Unlock()
				if on {
					bob.sendTone(t)
				}
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	bob.sip.SetReadDeadline(time.Now().Add(2500 * time.Millisecond))
	buf := make([]byte, 8192)
	if n, _, err := bob.sip.ReadFrom(buf); err == nil {
		t.Errorf("after the ACK: %.60q", buf[:n])
	}

	// Hold: answered recvonly, shown on-hold; silence is no media timeout.
	res := sipExchange(t, bob.sip, sipTo, bob.reinvite(uri, "sendonly", 2))
	if !strings.HasPrefix(res, "SIP/2.0 200") || !strings.Contains(res, "a=recvonly") {
		t.Fatalf("hold: %q", res)
	}
	// The re-INVITE's 200 too is sent again until its ACK.
	if again := bob.sipNext(t, &frags); !strings.HasPrefix(again, "SIP/2.0 200") || header(again, "CSeq") != "2 INVITE" {
		t.Errorf("after the hold's 200: %.60q, want it again", again)
	}
	bob.sip.WriteTo([]byte(strings.Replace(bob.inDialog("ACK", uri, 2), "-ack-", "-ack2-", 1)), sipTo)
	waitStatus(t, d, confID, "p1", conference.StatusOnHold)
	mu.Lock()
	talking = false
	mu.Unlock()
	time.Sleep(2500 * time.Millisecond) // over twice the media timeout, on hold
	if p := participantOf(t, d, confID, "p1"); p.Status != conference.StatusOnHold {
		t.Fatalf("held and silent: %s %+v, want on-hold", p.Status, p.Ended)
	}

	// Resumed and still silent: the media timeout ends the call.
	res = sipExchange(t, bob.sip, sipTo, bob.reinvite(uri, "sendrecv", 3))
	if !strings.HasPrefix(res, "SIP/2.0 200") || !strings.Contains(res, "a=sendrecv") {
		t.Fatalf("resume: %q", res)
	}
	bob.sip.WriteTo([]byte(strings.Replace(bob.inDialog("ACK", uri, 3), "-ack-", "-ack3-", 1)), sipTo)
	resumed := time.Now()
	waitStatus(t, d, confID, "p1", conference.StatusConnected)
	var bye string
	for !strings.HasPrefix(bye, "BYE ") {
		bye = bob.sipNext(t, &frags)
	}
	bob.sip.WriteTo([]byte(answer200(bye)), sipTo)
	if after := time.Since(resumed); after < 700*time.Millisecond || after > 3*time.Second {
		t.Errorf("BYE %v after the resume, want the 1 s media timeout, counted from the last check while held (4 a timeout)", after)
	}
	if r := header(bye, "Reason"); !strings.HasPrefix(r, "Q.850;cause=102") {
		t.Errorf("BYE Reason %q, want cause 102", r)
	}
	// bob was its last participant: the conference is over.
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, _ := apiDo(t, d, "GET", "/api/v1/conferences/"+confID, httpTestToken, "")
		if code == 404 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the conference outlived its last participant: %d", code)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
