package sip_test

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/scp"
	b2b "github.com/imcall/b2bua/sip"
)

// rawCaller is a caller on a bare UDP socket whose INVITE carries the
// option-tag headers a test chooses, and who sends PRACK and ACK by hand.
type rawCaller struct {
	*rawPeer
	dst    *net.UDPAddr
	inv    *sipmsg.Request
	callID string
	seq    int
}

func newRawCaller(t *testing.T, b2bua string) *rawCaller {
	t.Helper()
	dst, err := net.ResolveUDPAddr("udp", b2bua)
	if err != nil {
		t.Fatal(err)
	}
	return &rawCaller{rawPeer: newRawPeer(t), dst: dst, seq: 1}
}

// call sends INVITE sip:user@domain with extra header lines.
func (p *rawCaller) call(user, domain string, extra ...string) {
	p.t.Helper()
	p.callID = sipmsg.GenerateTagN(16)
	msg := "INVITE sip:" + user + "@" + domain + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + p.addr + ";branch=z9hG4bK-" + p.callID + "\r\n" +
		"From: <sip:alice@" + domain + ">;tag=" + p.tag + "\r\n" +
		"To: <sip:" + user + "@" + domain + ">\r\n" +
		"Call-ID: " + p.callID + "\r\n" +
		"CSeq: 1 INVITE\r\n" +
		"Contact: <sip:alice@" + p.addr + ">\r\n" +
		"Max-Forwards: 70\r\n"
	for _, h := range extra {
		msg += h + "\r\n"
	}
	msg += "Content-Type: application/sdp\r\n" +
		"Content-Length: " + strconv.Itoa(len(testSDP)) + "\r\n\r\n" + testSDP
	m, err := sipmsg.ParseMessage([]byte(msg))
	if err != nil {
		p.t.Fatal(err)
	}
	p.inv = m.(*sipmsg.Request)
	p.send(m, p.dst)
}

// inDialog sends method on the dialog res (a response to our INVITE)
// opened, with extra header lines.
func (p *rawCaller) inDialog(method string, res *sipmsg.Response, seq int, extra ...string) {
	p.t.Helper()
	p.inDialogBody(method, res, seq, "", extra...)
}

// inDialogBody is inDialog with an SDP body ("" for none).
func (p *rawCaller) inDialogBody(method string, res *sipmsg.Response, seq int, sdp string, extra ...string) {
	p.t.Helper()
	tag, _ := res.To().Params.Get("tag")
	target := res.Contact().Address.String()
	msg := method + " " + target + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + p.addr + ";branch=z9hG4bK-" + sipmsg.GenerateTagN(10) + "\r\n" +
		"From: <sip:alice@im.test>;tag=" + p.tag + "\r\n" +
		"To: <sip:bob@im.test>;tag=" + tag + "\r\n" +
		"Call-ID: " + p.callID + "\r\n" +
		"CSeq: " + strconv.Itoa(seq) + " " + method + "\r\n" +
		"Max-Forwards: 70\r\n"
	for _, h := range extra {
		msg += h + "\r\n"
	}
	if sdp != "" {
		msg += "Contact: <sip:alice@" + p.addr + ">\r\nContent-Type: application/sdp\r\n"
	}
	msg += "Content-Length: " + strconv.Itoa(len(sdp)) + "\r\n\r\n" + sdp
	m, err := sipmsg.ParseMessage([]byte(msg))
	if err != nil {
		p.t.Fatal(err)
	}
	p.send(m, p.dst)
}

// prack acknowledges the reliable provisional res (RFC 3262 §7.2).
func (p *rawCaller) prack(res *sipmsg.Response, seq int) {
	p.t.Helper()
	p.inDialog("PRACK", res, seq, "RAck: "+hdr(res, "RSeq")+" 1 INVITE")
}

// response waits for a response to method with a status code of at least
// min; others are skipped.
func (p *rawPeer) response(method sipmsg.RequestMethod, min int, d time.Duration) *sipmsg.Response {
	p.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case r := <-p.resps:
			if r.CSeq().MethodName == method && r.StatusCode >= min {
				return r
			}
		case <-deadline:
			p.t.Fatalf("raw peer: no %s response >= %d within %v", method, min, d)
			return nil
		}
	}
}

// noResponse fails if a response to method of at least min arrives within d.
func (p *rawPeer) noResponse(method sipmsg.RequestMethod, min int, d time.Duration) {
	p.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case r := <-p.resps:
			if r.CSeq().MethodName == method && r.StatusCode >= min {
				p.t.Fatalf("raw peer: %d to %s within %v, want none yet", r.StatusCode, method, d)
			}
		case <-deadline:
			return
		}
	}
}

// provisional sends a provisional (with SDP when sdp is set) from the
// terminal; rseq > 0 sends it reliably.
func (p *rawPeer) provisional(r rawReq, code int, sdp bool, rseq int) {
	p.t.Helper()
	var body []byte
	if sdp {
		body = []byte(strings.ReplaceAll(testSDP, "40000", "40002"))
	}
	res := sipmsg.NewResponseFromRequest(r.req, code, "Session Progress", body)
	res.To().Params.Add("tag", p.tag)
	res.AppendHeader(&sipmsg.ContactHeader{Address: sipmsg.Uri{Scheme: "sip", Host: "127.0.0.1", Port: netipPort(p.addr)}})
	if rseq > 0 {
		res.AppendHeader(sipmsg.NewHeader("Require", "100rel"))
		res.AppendHeader(sipmsg.NewHeader("RSeq", strconv.Itoa(rseq)))
	}
	if sdp {
		res.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
	}
	p.send(res, r.src)
}

// answer sends the terminal's 200, with SDP when sdp is set.
func (p *rawPeer) answer(r rawReq, sdp bool) {
	p.t.Helper()
	var body []byte
	if sdp {
		body = []byte(strings.ReplaceAll(testSDP, "40000", "40002"))
	}
	res := sipmsg.NewResponseFromRequest(r.req, 200, "OK", body)
	res.To().Params.Add("tag", p.tag)
	res.AppendHeader(&sipmsg.ContactHeader{Address: sipmsg.Uri{Scheme: "sip", Host: "127.0.0.1", Port: netipPort(p.addr)}})
	if sdp {
		res.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
	}
	p.send(res, r.src)
}

// TestReliableProvisionalToCaller: a caller that offers 100rel (Supported
// or Require) gets the terminal's 183 reliably, with Require: 100rel and
// an RSeq, retransmitted from T1 until its PRACK (RFC 3262 §3); the PRACK
// gets 200, a PRACK naming another RSeq 481; the 2xx carries no second
// answer, since the caller had it in the reliable 183. A caller that
// offers nothing gets the 183 as it was.
func TestReliableProvisionalToCaller(t *testing.T) {
	const t1 = 20 * time.Millisecond
	tests := []struct {
		name     string
		header   string
		reliable bool
	}{
		{"supported", "Supported: 100rel", true},
		{"required", "Require: 100rel", true},
		{"neither", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *b2bConfig) { c.T1 = t1 })
			caller, term := newRawCaller(t, e.addr), newRawPeer(t)
			e.addUser("bob")
			e.addLegacy("bob", "001010000000001", term.addr, scp.Online)
			var extra []string
			if tt.header != "" {
				extra = append(extra, tt.header)
			}
			caller.call("bob", "im.test", extra...)
			tinv := term.next(sipmsg.INVITE, 5*time.Second)
			if !strings.Contains(hdr(tinv.req, "Supported"), "100rel") {
				t.Errorf("INVITE to the terminal: Supported %q, want 100rel (each leg on its own)", hdr(tinv.req, "Supported"))
			}
			term.provisional(tinv, 183, true, 0)
			first := caller.response(sipmsg.INVITE, 183, 5*time.Second)
			if first.StatusCode != 183 || len(first.Body()) == 0 {
				t.Fatalf("caller got %d with %d bytes of SDP, want the 183 with SDP", first.StatusCode, len(first.Body()))
			}
			if !tt.reliable {
				if hdr(first, "RSeq") != "" || strings.Contains(hdr(first, "Require"), "100rel") {
					t.Errorf("183 to a caller without 100rel is reliable:\n%s", first)
				}
				term.answer(tinv, true)
				ok := caller.response(sipmsg.INVITE, 200, 5*time.Second)
				if len(ok.Body()) == 0 {
					t.Error("200 without SDP to a caller that had the answer only in an unreliable 183")
				}
				return
			}
			rseq := hdr(first, "RSeq")
			if n, err := strconv.ParseUint(rseq, 10, 32); err != nil || n == 0 || n >= 1<<31 || !strings.Contains(hdr(first, "Require"), "100rel") {
				t.Fatalf("183 to a 100rel caller: RSeq %q Require %q, want 1..2^31-1 and 100rel", rseq, hdr(first, "Require"))
			}
			// Retransmitted from T1 until the PRACK.
			again := caller.response(sipmsg.INVITE, 183, 10*t1)
			if hdr(again, "RSeq") != rseq {
				t.Errorf("retransmission RSeq %q, want %q", hdr(again, "RSeq"), rseq)
			}
			caller.inDialog("PRACK", first, 2, "RAck: "+rseq+"9 1 INVITE")
			if r := caller.response(sipmsg.PRACK, 200, 5*time.Second); r.StatusCode != 481 {
				t.Errorf("PRACK with a wrong RAck: %d, want 481", r.StatusCode)
			}
			caller.prack(first, 3)
			if r := caller.response(sipmsg.PRACK, 200, 5*time.Second); r.StatusCode != 200 {
				t.Errorf("PRACK: %d, want 200", r.StatusCode)
			}
			// Drain what was sent before the PRACK arrived; then nothing.
			time.Sleep(2 * t1)
			for len(caller.resps) > 0 {
				<-caller.resps
			}
			caller.noResponse(sipmsg.INVITE, 183, 8*t1)

			term.answer(tinv, true)
			ok := caller.response(sipmsg.INVITE, 200, 5*time.Second)
			if len(ok.Body()) != 0 {
				t.Errorf("200 repeats SDP after the answer went in a reliable 183:\n%s", ok)
			}
			caller.inDialog("ACK", ok, 1)
			caller.inDialog("BYE", ok, 4)
			term.next(sipmsg.BYE, 5*time.Second)
		})
	}
}

// TestAnswerWaitsForPRACK: the terminal answers while our reliable 183
// with SDP waits for the caller's PRACK; the 200 goes only after the PRACK
// (RFC 3262 §3).
func TestAnswerWaitsForPRACK(t *testing.T) {
	const t1 = 50 * time.Millisecond
	e := newEnv(t, func(c *b2bConfig) { c.T1 = t1 })
	caller, term := newRawCaller(t, e.addr), newRawPeer(t)
	e.addUser("bob")
	e.addLegacy("bob", "001010000000001", term.addr, scp.Online)
	caller.call("bob", "im.test", "Supported: 100rel")
	tinv := term.next(sipmsg.INVITE, 5*time.Second)
	term.provisional(tinv, 183, true, 0)
	first := caller.response(sipmsg.INVITE, 183, 5*time.Second)
	term.answer(tinv, true)
	term.next(sipmsg.ACK, 5*time.Second)
	caller.noResponse(sipmsg.INVITE, 200, 10*t1)
	caller.prack(first, 2)
	caller.response(sipmsg.PRACK, 200, 5*time.Second)
	ok := caller.response(sipmsg.INVITE, 200, 5*time.Second)
	if ok.StatusCode != 200 {
		t.Fatalf("caller got %d, want 200 after its PRACK", ok.StatusCode)
	}
}

// TestNoPRACKRefusesCall: a caller that never PRACKs gets the 183 until
// 64*T1, then 504 (RFC 3262 §3: reject with a 5xx), and the terminal is
// CANCELed.
func TestNoPRACKRefusesCall(t *testing.T) {
	const t1 = 10 * time.Millisecond
	e := newEnv(t, func(c *b2bConfig) { c.T1 = t1 })
	caller, term := newRawCaller(t, e.addr), newRawPeer(t)
	e.addUser("bob")
	e.addLegacy("bob", "001010000000001", term.addr, scp.Online)
	caller.call("bob", "im.test", "Require: 100rel")
	tinv := term.next(sipmsg.INVITE, 5*time.Second)
	term.provisional(tinv, 183, true, 0)
	start := time.Now()
	caller.response(sipmsg.INVITE, 183, 5*time.Second)
	final := caller.response(sipmsg.INVITE, 300, 5*time.Second)
	if final.StatusCode != 504 || time.Since(start) < 60*t1 {
		t.Errorf("caller got %d after %v, want 504 after 64*T1 (%v)", final.StatusCode, time.Since(start), 64*t1)
	}
	term.next(sipmsg.CANCEL, 5*time.Second)
}

// TestPRACKTowardsTerminal: a terminal that sends its 183 reliably gets
// our PRACK on its early dialog, once per RSeq: its retransmission is
// neither PRACKed nor relayed again, one out of sequence neither (RFC 3262
// §4). Its 200 without SDP reaches a caller without 100rel with the answer
// of the 183.
func TestPRACKTowardsTerminal(t *testing.T) {
	e := newEnv(t, func(c *b2bConfig) { c.T1 = 20 * time.Millisecond })
	caller, term := newRawCaller(t, e.addr), newRawPeer(t)
	e.addUser("bob")
	e.addLegacy("bob", "001010000000001", term.addr, scp.Online)
	caller.call("bob", "im.test")
	tinv := term.next(sipmsg.INVITE, 5*time.Second)
	term.provisional(tinv, 183, true, 7)
	pr := term.next(sipmsg.PRACK, 5*time.Second)
	if got := hdr(pr.req, "RAck"); got != "7 "+strconv.Itoa(int(tinv.req.CSeq().SeqNo))+" INVITE" {
		t.Errorf("RAck %q, want \"7 %d INVITE\"", got, tinv.req.CSeq().SeqNo)
	}
	if tag, _ := pr.req.To().Params.Get("tag"); tag != term.tag {
		t.Errorf("PRACK To tag %q, want the 183's %q", tag, term.tag)
	}
	if pr.req.CSeq().SeqNo <= tinv.req.CSeq().SeqNo {
		t.Errorf("PRACK CSeq %d, want above the INVITE's %d", pr.req.CSeq().SeqNo, tinv.req.CSeq().SeqNo)
	}
	term.respond(pr, 200, "OK")
	first := caller.response(sipmsg.INVITE, 183, 5*time.Second)
	if hdr(first, "RSeq") != "" || len(first.Body()) == 0 {
		t.Errorf("183 to a caller without 100rel: RSeq %q, %d bytes of SDP; want unreliable with SDP", hdr(first, "RSeq"), len(first.Body()))
	}
	term.provisional(tinv, 183, true, 7) // retransmission
	term.provisional(tinv, 183, true, 9) // out of sequence
	term.provisional(tinv, 180, false, 8)
	pr8 := term.next(sipmsg.PRACK, 5*time.Second)
	if got := hdr(pr8.req, "RAck"); !strings.HasPrefix(got, "8 ") {
		t.Errorf("second PRACK RAck %q, want RSeq 8", got)
	}
	term.respond(pr8, 200, "OK")
	if r := caller.response(sipmsg.INVITE, 180, 5*time.Second); r.StatusCode != 180 {
		t.Errorf("caller got %d, want the 180 (the retransmitted and the out-of-sequence 183 not relayed)", r.StatusCode)
	}
	term.answer(tinv, false)
	term.next(sipmsg.ACK, 5*time.Second)
	ok := caller.response(sipmsg.INVITE, 200, 5*time.Second)
	if !strings.Contains(string(ok.Body()), "m=audio 40002") {
		t.Errorf("200 to the caller lacks the 183's answer:\n%s", ok)
	}
	if n := term.count(sipmsg.PRACK); n != 2 {
		t.Errorf("terminal got %d PRACKs, want 2 (RSeq 7 and 8)", n)
	}
	caller.inDialog("ACK", ok, 1)
	caller.inDialog("BYE", ok, 2)
	term.respond(term.next(sipmsg.BYE, 5*time.Second), 200, "OK")
}

// TestRequireOptionTags: a Require we support (100rel, timer) is served;
// any other tag gets 420 naming only it (RFC 3261 §8.2.2.3).
func TestRequireOptionTags(t *testing.T) {
	tests := []struct {
		require     string
		status      int
		unsupported string
	}{
		{"100rel", 100, ""},
		{"100rel, foo", 420, "foo"},
	}
	for _, tt := range tests {
		t.Run(tt.require, func(t *testing.T) {
			e := newEnv(t, func(c *b2bConfig) { c.T1 = 10 * time.Millisecond })
			caller, term := newRawCaller(t, e.addr), newRawPeer(t)
			e.addUser("bob")
			e.addLegacy("bob", "001010000000001", term.addr, scp.Online)
			caller.call("bob", "im.test", "Require: "+tt.require)
			res := caller.response(sipmsg.INVITE, 100, 5*time.Second)
			if res.StatusCode != tt.status || hdr(res, "Unsupported") != tt.unsupported {
				t.Fatalf("answer %d Unsupported %q, want %d %q", res.StatusCode, hdr(res, "Unsupported"), tt.status, tt.unsupported)
			}
			if tt.status == 100 {
				term.next(sipmsg.INVITE, 5*time.Second)
			}
		})
	}
}

// hdr is the value of m's first header name, "" without one.
func hdr(m interface{ GetHeader(string) sipmsg.Header }, name string) string {
	if h := m.GetHeader(name); h != nil {
		return h.Value()
	}
	return ""
}

// confRecorder is a conference service that counts the INVITEs it takes.
type confRecorder struct{ invites chan *sipmsg.Request }

func (r confRecorder) HandleInvite(req *sipmsg.Request, tx sipmsg.ServerTransaction, _ string) {
	r.invites <- req
	_ = tx.Respond(sipmsg.NewResponseFromRequest(req, 486, "Busy Here", nil))
}

func (confRecorder) HandleInDialog(*sipmsg.Request, sipmsg.ServerTransaction) bool { return false }
func (confRecorder) HandleRefer(*sipmsg.Request, sipmsg.ServerTransaction, string) {}

// TestConferenceRequire: conference legs have neither reliable
// provisionals nor session timers, so an INVITE to a conference URI that
// requires either gets 420 naming it and never reaches the conference; one
// that only supports them does.
func TestConferenceRequire(t *testing.T) {
	tests := []struct {
		header      string
		status      int
		unsupported string
	}{
		{"Require: 100rel", 420, "100rel"},
		{"Require: timer", 420, "timer"},
		{"Supported: 100rel, timer", 486, ""},
	}
	for _, tt := range tests {
		t.Run(tt.header, func(t *testing.T) {
			rec := confRecorder{invites: make(chan *sipmsg.Request, 1)}
			e := newEnvWith(t, func(s *b2b.Server) { s.HandleConferences(rec) })
			caller := newRawCaller(t, e.addr)
			caller.call("conf-abc", "im.test", tt.header)
			res := caller.response(sipmsg.INVITE, 200, 5*time.Second)
			if res.StatusCode != tt.status || hdr(res, "Unsupported") != tt.unsupported {
				t.Errorf("answer %d Unsupported %q, want %d %q", res.StatusCode, hdr(res, "Unsupported"), tt.status, tt.unsupported)
			}
			if got := len(rec.invites) == 1; got != (tt.status == 486) {
				t.Errorf("conference took the INVITE: %v, want %v", got, tt.status == 486)
			}
		})
	}
}
