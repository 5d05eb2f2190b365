package sip_test

import (
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

// rawPeer is a terminal on a bare UDP socket: no transaction layer, so a
// test decides exactly what it sends, what it never sends and what it
// retransmits, and sees every request the B2BUA sends, ACKs included.
type rawPeer struct {
	t     *testing.T
	conn  net.PacketConn
	addr  string
	reqs  chan rawReq
	resps chan *sipmsg.Response
	tag   string

	mu   sync.Mutex
	seen []*sipmsg.Request
}

// rawReq is a request with the address it came from.
type rawReq struct {
	req *sipmsg.Request
	src net.Addr
	raw string // as it came on the wire
}

func newRawPeer(t *testing.T) *rawPeer {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &rawPeer{t: t, conn: conn, addr: conn.LocalAddr().String(), reqs: make(chan rawReq, 256), resps: make(chan *sipmsg.Response, 256), tag: sipmsg.GenerateTagN(8)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65535)
		for {
			n, src, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			raw := string(buf[:n])
			m, err := sipmsg.ParseMessage([]byte(raw))
			if err != nil {
				continue
			}
			if res, ok := m.(*sipmsg.Response); ok {
				select {
				case p.resps <- res:
				default:
				}
			}
			if req, ok := m.(*sipmsg.Request); ok {
				p.mu.Lock()
				p.seen = append(p.seen, req)
				p.mu.Unlock()
				select {
				case p.reqs <- rawReq{req, src, raw}:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() { conn.Close(); <-done })
	return p
}

// next waits for a request of method, skipping others.
func (p *rawPeer) next(method sipmsg.RequestMethod, d time.Duration) rawReq {
	p.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case r := <-p.reqs:
			if r.req.Method == method {
				return r
			}
		case <-deadline:
			p.t.Fatalf("raw terminal: no %s within %v", method, d)
			return rawReq{}
		}
	}
}

// count is how many requests of method arrived so far.
func (p *rawPeer) count(method sipmsg.RequestMethod) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, r := range p.seen {
		if r.Method == method {
			n++
		}
	}
	return n
}

// respond answers r with code; responses to an INVITE carry our To tag and
// Contact, as a UAS's do (RFC 3261 §12.1.1).
func (p *rawPeer) respond(r rawReq, code int, reason string) *sipmsg.Response {
	p.t.Helper()
	res := sipmsg.NewResponseFromRequest(r.req, code, reason, nil)
	if code > 100 {
		if to := res.To(); to != nil {
			if _, ok := to.Params.Get("tag"); !ok {
				to.Params.Add("tag", p.tag)
			}
		}
	}
	if r.req.Method == sipmsg.INVITE && code > 100 && code < 300 {
		res.AppendHeader(&sipmsg.ContactHeader{Address: sipmsg.Uri{Scheme: "sip", Host: "127.0.0.1", Port: netipPort(p.addr)}})
	}
	p.send(res, r.src)
	return res
}

func (p *rawPeer) send(m sipmsg.Message, to net.Addr) {
	if _, err := p.conn.WriteTo([]byte(m.String()), to); err != nil {
		p.t.Errorf("raw terminal: send: %v", err)
	}
}

// nextResponse waits for a response with a status code of at least min.
func (p *rawPeer) nextResponse(min int, d time.Duration) *sipmsg.Response {
	p.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case r := <-p.resps:
			if r.StatusCode >= min {
				return r
			}
		case <-deadline:
			p.t.Fatalf("raw peer: no response >= %d within %v", min, d)
			return nil
		}
	}
}

// invite sends an INVITE for user@domain to the B2BUA at dst, as a caller
// that never retransmits; it returns the request for building the ACK or
// CANCEL. extra header lines go below the caller's own Via.
func (p *rawPeer) invite(dst, user, domain string, extra ...string) *sipmsg.Request {
	p.t.Helper()
	callID := sipmsg.GenerateTagN(16)
	msg := "INVITE sip:" + user + "@" + domain + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + p.addr + ";branch=z9hG4bK-" + callID + "\r\n" +
		strings.Join(append(extra, ""), "\r\n") +
		"From: <sip:alice@" + domain + ">;tag=" + p.tag + "\r\n" +
		"To: <sip:" + user + "@" + domain + ">\r\n" +
		"Call-ID: " + callID + "\r\n" +
		"CSeq: 1 INVITE\r\n" +
		"Contact: <sip:alice@" + p.addr + ">\r\n" +
		"Max-Forwards: 70\r\n" +
		"Content-Type: application/sdp\r\n" +
		"Content-Length: " + strconv.Itoa(len(testSDP)) + "\r\n\r\n" + testSDP
	m, err := sipmsg.ParseMessage([]byte(msg))
	if err != nil {
		p.t.Fatal(err)
	}
	to, err := net.ResolveUDPAddr("udp", dst)
	if err != nil {
		p.t.Fatal(err)
	}
	p.send(m, to)
	return m.(*sipmsg.Request)
}

// cancel sends a CANCEL for inv (RFC 3261 §9.1) to dst.
func (p *rawPeer) cancel(inv *sipmsg.Request, dst string) {
	p.t.Helper()
	req := sipmsg.NewRequest(sipmsg.CANCEL, *inv.Recipient.Clone())
	req.AppendHeader(sipmsg.HeaderClone(inv.Via()))
	req.AppendHeader(sipmsg.HeaderClone(inv.From()))
	req.AppendHeader(sipmsg.HeaderClone(inv.To()))
	req.AppendHeader(sipmsg.HeaderClone(inv.CallID()))
	req.AppendHeader(&sipmsg.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sipmsg.CANCEL})
	mf := sipmsg.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	req.SetBody(nil)
	to, err := net.ResolveUDPAddr("udp", dst)
	if err != nil {
		p.t.Fatal(err)
	}
	p.send(req, to)
}
