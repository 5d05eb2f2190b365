package sip_test

import (
	"net"
	"sync"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

// rawPeer is a terminal on a bare UDP socket: no transaction layer, so a
// test decides exactly what it sends, what it never sends and what it
// retransmits, and sees every request the B2BUA sends, ACKs included.
type rawPeer struct {
	t    *testing.T
	conn net.PacketConn
	addr string
	reqs chan rawReq
	tag  string

	mu   sync.Mutex
	seen []*sipmsg.Request
}

// rawReq is a request with the address it came from.
type rawReq struct {
	req *sipmsg.Request
	src net.Addr
}

func newRawPeer(t *testing.T) *rawPeer {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &rawPeer{t: t, conn: conn, addr: conn.LocalAddr().String(), reqs: make(chan rawReq, 256), tag: sipmsg.GenerateTagN(8)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65535)
		for {
			n, src, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			m, err := sipmsg.ParseMessage(append([]byte(nil), buf[:n]...))
			if err != nil {
				continue
			}
			if req, ok := m.(*sipmsg.Request); ok {
				p.mu.Lock()
				p.seen = append(p.seen, req)
				p.mu.Unlock()
				select {
				case p.reqs <- rawReq{req, src}:
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
