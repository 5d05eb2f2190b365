package e2e

import (
	"net"
	"strconv"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

// udpPeer is a SIP party on a bare UDP socket: it sends only what the test
// sends, so it can leave a BYE unanswered.
type udpPeer struct {
	t    *testing.T
	conn net.PacketConn
	port int
	msgs chan udpMsg
}

type udpMsg struct {
	m   sipmsg.Message
	src net.Addr
}

func newUDPPeer(t *testing.T, port int) *udpPeer {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	p := &udpPeer{t: t, conn: conn, port: conn.LocalAddr().(*net.UDPAddr).Port, msgs: make(chan udpMsg, 256)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65535)
		for {
			n, src, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			if m, err := sipmsg.ParseMessage(append([]byte(nil), buf[:n]...)); err == nil {
				select {
				case p.msgs <- udpMsg{m, src}:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() { conn.Close(); <-done })
	return p
}

// request waits for a request of method, skipping anything else.
func (p *udpPeer) request(method sipmsg.RequestMethod, within time.Duration) (*sipmsg.Request, net.Addr) {
	p.t.Helper()
	deadline := time.After(within)
	for {
		select {
		case m := <-p.msgs:
			if r, ok := m.m.(*sipmsg.Request); ok && r.Method == method {
				return r, m.src
			}
		case <-deadline:
			p.t.Fatalf("peer :%d: no %s within %v", p.port, method, within)
			return nil, nil
		}
	}
}

// response waits for a final response, skipping anything else.
func (p *udpPeer) response(within time.Duration) *sipmsg.Response {
	p.t.Helper()
	deadline := time.After(within)
	for {
		select {
		case m := <-p.msgs:
			if r, ok := m.m.(*sipmsg.Response); ok && r.StatusCode >= 200 {
				return r
			}
		case <-deadline:
			p.t.Fatalf("peer :%d: no final response within %v", p.port, within)
			return nil
		}
	}
}

func (p *udpPeer) send(m sipmsg.Message, to string) {
	p.t.Helper()
	dst, err := net.ResolveUDPAddr("udp4", to)
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.conn.WriteTo([]byte(m.String()), dst); err != nil {
		p.t.Fatal(err)
	}
}

// answer responds to req with code, as a UAS: our To tag and Contact on a
// 2xx to INVITE (RFC 3261 §12.1.1).
func (p *udpPeer) answer(req *sipmsg.Request, src net.Addr, code int, sdp string) {
	p.t.Helper()
	res := sipmsg.NewResponseFromRequest(req, code, "OK", nil)
	if req.Method == sipmsg.INVITE {
		res.To().Params.Add("tag", "term"+strconv.Itoa(p.port))
		res.AppendHeader(&sipmsg.ContactHeader{Address: sipmsg.Uri{Scheme: "sip", Host: "127.0.0.1", Port: p.port}})
		res.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
		res.SetBody([]byte(sdp))
	}
	p.send(res, src.String())
}

const rawSDP = "v=0\r\no=raw 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"

// invite sends a call from p to user@domain to the B2BUA at dst.
func (p *udpPeer) invite(dst, user, callID string) {
	p.t.Helper()
	self := "127.0.0.1:" + strconv.Itoa(p.port)
	msg := "INVITE sip:" + user + "@" + domain + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + self + ";branch=z9hG4bK-" + callID + "\r\n" +
		"From: <sip:alice@" + domain + ">;tag=caller-" + callID + "\r\n" +
		"To: <sip:" + user + "@" + domain + ">\r\n" +
		"Call-ID: " + callID + "\r\n" +
		"CSeq: 1 INVITE\r\n" +
		"Contact: <sip:alice@" + self + ">\r\n" +
		"Max-Forwards: 70\r\n" +
		"Content-Type: application/sdp\r\n" +
		"Content-Length: " + strconv.Itoa(len(rawSDP)) + "\r\n\r\n" + rawSDP
	m, err := sipmsg.ParseMessage([]byte(msg))
	if err != nil {
		p.t.Fatal(err)
	}
	p.send(m, dst)
}

// ackAnswer waits for the 2xx of the call p placed and ACKs it.
func (p *udpPeer) ackAnswer(dst string) *sipmsg.Response {
	p.t.Helper()
	self := "127.0.0.1:" + strconv.Itoa(p.port)
	res := p.response(10 * time.Second)
	callID := res.CallID().Value()
	if res.StatusCode != 200 {
		p.t.Fatalf("call %s: %d, want 200", callID, res.StatusCode)
	}
	// RFC 3261 §13.2.2.4: the ACK of a 2xx goes to the remote target.
	ack := sipmsg.NewRequest(sipmsg.ACK, *res.Contact().Address.Clone())
	ack.AppendHeader(sipmsg.NewHeader("Via", "SIP/2.0/UDP "+self+";branch=z9hG4bK-ack-"+callID))
	ack.AppendHeader(sipmsg.HeaderClone(res.From()))
	ack.AppendHeader(sipmsg.HeaderClone(res.To()))
	ack.AppendHeader(sipmsg.HeaderClone(res.CallID()))
	ack.AppendHeader(&sipmsg.CSeqHeader{SeqNo: 1, MethodName: sipmsg.ACK})
	mf := sipmsg.MaxForwardsHeader(70)
	ack.AppendHeader(&mf)
	ack.SetBody(nil)
	p.send(ack, dst)
	return res
}
