package daemon

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imcall/b2bua/conference"
	"github.com/imcall/b2bua/mixer"
	"github.com/imcall/b2bua/registry"
)

// sipNext reads the next SIP message on m's socket, answering a NOTIFY
// 200 and collecting its body in frags.
func (m *member) sipNext(t *testing.T, frags *[]string) string {
	t.Helper()
	buf := make([]byte, 8192)
	m.sip.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := m.sip.ReadFrom(buf)
	if err != nil {
		t.Fatalf("%s: nothing from the bridge: %v (NOTIFYs so far %q)", m.user, err, *frags)
	}
	msg := string(buf[:n])
	if strings.HasPrefix(msg, "NOTIFY ") {
		m.sip.WriteTo([]byte(answer200(msg)), from)
		_, body, _ := strings.Cut(msg, "\r\n\r\n")
		*frags = append(*frags, strings.TrimSpace(body)+" | "+header(msg, "Subscription-State")+" | "+header(msg, "Event")+" | "+header(msg, "Content-Type"))
	}
	return msg
}

// withHeader adds h to msg, and makes its Via branch its own (the test's
// in-dialog requests share one per method).
func withHeader(msg, h string) string {
	msg = strings.Replace(msg, ";branch=z9hG4bK-", ";branch=z9hG4bK-"+strconv.Itoa(len(h))+header(msg, "CSeq")[:1]+"-", 1)
	return strings.Replace(msg, "Content-Length: 0", h+"\r\nContent-Length: 0", 1)
}

// TestConferenceFactoryAndRefer: an INVITE to sip:conference@DOMAIN makes
// a conference owned by the caller, who is its first participant; the
// 200's Contact is the new conference URI with isfocus (RFC 4579 §5.2). A
// REFER in that call's dialog dials bob out (RFC 4579 §5.5), and its
// NOTIFYs carry 100, 180 and 200 as message/sipfrag, the last ending the
// subscription (RFC 3515). A REFER from someone neither owner nor
// participant is refused; one for a number without a trunk reports the
// failure.
func TestConferenceFactoryAndRefer(t *testing.T) {
	bob := newPhone(t, "bob", mixer.PCMU, 300)
	dir := t.TempDir()
	subs, _ := json.Marshal([]map[string]string{{"imsi": "001010000000021", "addr": bob.sip.LocalAddr().String(), "state": "online"}})
	if err := os.WriteFile(filepath.Join(dir, "subs.json"), subs, 0o644); err != nil {
		t.Fatal(err)
	}
	lo, hi := confRTP(t)
	d, err := Start(context.Background(), Config{
		DBPath: filepath.Join(dir, "b2bua.db"), Domain: "127.0.0.1",
		SIPListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", APIToken: httpTestToken,
		RTPPortMin: lo, RTPPortMax: hi,
		SCPSubscribers: filepath.Join(dir, "subs.json"),
		Logger:         slog.New(slog.DiscardHandler),
		Trusted:        []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	ctx := context.Background()
	if _, err := d.Store().AddUser(ctx, registry.User{IMID: "bob", Creds: registry.NewCredentials("bob", "127.0.0.1", "bob-pw")}); err != nil {
		t.Fatal(err)
	}
	imsi, _ := registry.ParseIMSI("001010000000021")
	if _, err := d.Store().AddTerminal(ctx, registry.NewTerminal{IMID: "bob", MobileID: imsi, Kind: registry.Legacy, Active: true}); err != nil {
		t.Fatal(err)
	}
	sipTo := net.UDPAddrFromAddrPort(d.SIPAddr())

	ann := newMember(t, "ann", mixer.PCMA, 500)
	res := sipExchange(t, ann.sip, sipTo, ann.invite("sip:conference@127.0.0.1"))
	if !strings.HasPrefix(res, "SIP/2.0 200") {
		t.Fatalf("INVITE to the factory: %.200q", res)
	}
	contact := header(res, "Contact")
	g := regexp.MustCompile(`^<sip:conf-([0-9a-f]+)@[^>]+>;isfocus$`).FindStringSubmatch(contact)
	if g == nil {
		t.Fatalf("the 200's Contact %q is no conference URI with isfocus", contact)
	}
	confID := g[1]
	ann.toTag = regexp.MustCompile(`;tag=([^;\s]+)`).FindStringSubmatch(header(res, "To"))[1]
	ann.sip.WriteTo([]byte(ann.inDialog("ACK", "sip:conference@127.0.0.1", 1)), sipTo)
	var snap conference.Snapshot
	_, b := apiDo(t, d, "GET", "/api/v1/conferences/"+confID, httpTestToken, "")
	if err := json.Unmarshal(b, &snap); err != nil {
		t.Fatal(err)
	}
	if snap.Owner != "ann" || len(snap.Participants) != 1 || snap.Participants[0].Target != "ann" || snap.Participants[0].Status != conference.StatusConnected {
		t.Fatalf("the factory's conference: %s", b)
	}
	confURI := "sip:conf-" + confID + "@127.0.0.1"

	// Someone neither owner nor participant may not add anyone.
	kate, _ := net.ListenPacket("udp", "127.0.0.1:0")
	defer kate.Close()
	refer := withHeader(sipRequest("REFER", confURI, kate.LocalAddr().String(), "refer-kate", ""), "Refer-To: <sip:bob@127.0.0.1>")
	if got := sipExchange(t, kate, sipTo, refer); !strings.HasPrefix(got, "SIP/2.0 403") {
		t.Errorf("kate's REFER: %q, want 403", firstLine(got))
	}

	// ann REFERs bob in her call's dialog.
	var frags []string
	ann.sip.WriteTo([]byte(withHeader(ann.inDialog("REFER", "sip:conference@127.0.0.1", 2), "Refer-To: <sip:bob@127.0.0.1>")), sipTo)
	for {
		if m := ann.sipNext(t, &frags); strings.HasPrefix(m, "SIP/2.0 ") {
			if !strings.HasPrefix(m, "SIP/2.0 202") {
				t.Fatalf("REFER: %q, want 202", firstLine(m))
			}
			break
		}
	}
	bob.ring(confURI)
	bob.respond(bob.invite, 180, "Ringing", "")
	for len(frags) < 2 {
		ann.sipNext(t, &frags)
	}
	bob.respond(bob.invite, 200, "OK", "")
	bob.expect("ACK")
	for len(frags) < 3 {
		ann.sipNext(t, &frags)
	}
	want := []string{
		"SIP/2.0 100 Trying | active;expires=75 | refer | message/sipfrag;version=2.0",
		"SIP/2.0 180 Ringing | active;expires=75 | refer | message/sipfrag;version=2.0",
		"SIP/2.0 200 OK | terminated;reason=noresource | refer | message/sipfrag;version=2.0",
	}
	if strings.Join(frags, "\n") != strings.Join(want, "\n") {
		t.Errorf("REFER NOTIFYs:\n%s\nwant:\n%s", strings.Join(frags, "\n"), strings.Join(want, "\n"))
	}
	if p := waitStatus(t, d, confID, "p2", conference.StatusConnected); p.Target != "bob" || p.Joined != conference.DialedOut {
		t.Errorf("bob: %+v", p)
	}

	// A number with no trunk: the REFER is taken, its NOTIFY says why not.
	frags = nil
	ann.sip.WriteTo([]byte(withHeader(ann.inDialog("REFER", "sip:conference@127.0.0.1", 3), "Refer-To: <tel:+15551230001>")), sipTo)
	for len(frags) < 2 {
		ann.sipNext(t, &frags)
	}
	if !strings.HasPrefix(frags[1], "SIP/2.0 503 ") || !strings.Contains(frags[1], "terminated") {
		t.Errorf("the numbers's NOTIFYs: %q, want 100 then 503, terminated", frags)
	}

	// The owner REFERs from outside any dialog: the 202 makes the
	// subscription's dialog, where the NOTIFYs come.
	out := newMember(t, "ann", mixer.PCMU, 0)
	frags = nil
	refer = withHeader(sipRequest("REFER", confURI, out.sip.LocalAddr().String(), "refer-ann-out", ""), "Refer-To: <sip:+15551230002@127.0.0.1;user=phone>")
	out.sip.WriteTo([]byte(strings.ReplaceAll(refer, "sip:kate@", "sip:ann@")), sipTo)
	var accepted string
	for len(frags) < 2 {
		if m := out.sipNext(t, &frags); strings.HasPrefix(m, "SIP/2.0 ") {
			accepted = m
		}
	}
	if !strings.HasPrefix(accepted, "SIP/2.0 202") || !strings.Contains(header(accepted, "To"), ";tag=") {
		t.Errorf("the owner's REFER: %q, want 202 with a To tag", accepted)
	}
	if !strings.HasPrefix(frags[0], "SIP/2.0 100 Trying") || !strings.HasPrefix(frags[1], "SIP/2.0 503 ") {
		t.Errorf("the owner's REFER NOTIFYs: %q", frags)
	}
}
