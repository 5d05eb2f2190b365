package sip_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/scp"
)

// tcpHop is a stateless proxy in front of the B2BUA: requests from UDP
// clients go on over one TCP connection, with the hop's Via on top;
// responses coming back over TCP lose that Via and go, still statelessly,
// to the UDP address in the next one (RFC 3261 §16.7, §18.2.2). It does
// not Record-Route, so ACKs and BYEs go round it.
type tcpHop struct {
	t    *testing.T
	udp  net.PacketConn
	tcp  net.Conn
	wg   sync.WaitGroup
	mu   sync.Mutex
	fwd2 int // 2xx to INVITEs forwarded from TCP to UDP
}

func newTCPHop(t *testing.T, b2bua string) *tcpHop {
	t.Helper()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := net.Dial("tcp", b2bua)
	if err != nil {
		udp.Close()
		t.Fatal(err)
	}
	h := &tcpHop{t: t, udp: udp, tcp: tcp}
	h.wg.Add(2)
	go h.up()
	go h.down()
	t.Cleanup(func() { udp.Close(); tcp.Close(); h.wg.Wait() })
	return h
}

func (h *tcpHop) addr() string { return h.udp.LocalAddr().String() }

// up forwards requests from UDP to TCP.
func (h *tcpHop) up() {
	defer h.wg.Done()
	buf := make([]byte, 65535)
	n := 0
	for {
		k, _, err := h.udp.ReadFrom(buf)
		if err != nil {
			return
		}
		msg := string(buf[:k])
		line, rest, ok := strings.Cut(msg, "\r\n")
		if !ok || strings.HasPrefix(line, "SIP/2.0") {
			continue
		}
		n++
		via := fmt.Sprintf("Via: SIP/2.0/TCP %s;branch=z9hG4bK-hop%d\r\n", h.tcp.LocalAddr(), n)
		if _, err := io.WriteString(h.tcp, line+"\r\n"+via+rest); err != nil {
			return
		}
	}
}

// down forwards responses from TCP to the UDP client.
func (h *tcpHop) down() {
	defer h.wg.Done()
	r := bufio.NewReader(h.tcp)
	for {
		m, err := readStream(r)
		if err != nil {
			return
		}
		res, ok := m.(*sipmsg.Response)
		if !ok {
			continue
		}
		vias := res.GetHeaders("Via")
		if len(vias) < 2 {
			continue
		}
		res.RemoveHeader("Via") // the first: ours
		next := vias[1].(*sipmsg.ViaHeader)
		to, err := net.ResolveUDPAddr("udp", net.JoinHostPort(next.Host, strconv.Itoa(next.Port)))
		if err != nil {
			continue
		}
		if res.CSeq().MethodName == sipmsg.INVITE && res.StatusCode == 200 {
			h.mu.Lock()
			h.fwd2++
			h.mu.Unlock()
		}
		if _, err := h.udp.WriteTo([]byte(res.String()), to); err != nil {
			return
		}
	}
}

func (h *tcpHop) forwarded2xx() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.fwd2
}

// readStream reads one SIP message from a stream transport: the header
// block, then Content-Length bytes of body (RFC 3261 §18.3).
func readStream(r *bufio.Reader) (sipmsg.Message, error) {
	var hdr strings.Builder
	length := 0
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		if line == "\r\n" {
			if hdr.Len() == 0 {
				continue // keep-alive CRLF between messages
			}
			break
		}
		hdr.WriteString(line)
		name, val, _ := strings.Cut(line, ":")
		if n := strings.ToLower(strings.TrimSpace(name)); n == "content-length" || n == "l" {
			length, _ = strconv.Atoi(strings.TrimSpace(val))
		}
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return sipmsg.ParseMessage([]byte(hdr.String() + "\r\n" + string(body)))
}

// The 2xx to an INVITE that came over TCP is retransmitted until the ACK
// arrives (RFC 3261 §13.3.1.4 exempts no transport): the caller is on UDP
// behind a stateless TCP hop, and only the 2xx's retransmission gets a
// lost 2xx through. Once the ACK is in, the retransmissions stop.
func Test2xxRetransmittedOverTCPUntilAck(t *testing.T) {
	e := newEnv(t)
	term := newPeer(t, "term")
	e.addUser("bob")
	e.addLegacy("bob", "001010000000001", term.addr, scp.Online)
	term.setInvite(answerer(term, 0, nil))
	hop := newTCPHop(t, e.addr)
	caller := newRawPeer(t)

	inv := caller.invite(hop.addr(), "bob", "im.test")
	first := caller.nextResponse(200, 5*time.Second)
	again := caller.nextResponse(200, 3*time.Second) // T1 after the first
	ftag, _ := first.To().Params.Get("tag")
	atag, _ := again.To().Params.Get("tag")
	if first.StatusCode != 200 || again.StatusCode != 200 || ftag != atag || again.CSeq().SeqNo != inv.CSeq().SeqNo {
		t.Fatalf("want the 2xx twice, got %d (tag %s) then %d (tag %s)", first.StatusCode, ftag, again.StatusCode, atag)
	}

	// The ACK goes to the 2xx's Contact, round the hop (no Record-Route).
	b2bua, err := net.ResolveUDPAddr("udp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	inDialog := func(method sipmsg.RequestMethod, seq uint32) *sipmsg.Request {
		req := sipmsg.NewRequest(method, first.Contact().Address)
		via := &sipmsg.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP", Host: "127.0.0.1", Port: netipPort(caller.addr), Params: sipmsg.NewParams()}
		via.Params.Add("branch", sipmsg.GenerateBranch())
		mf := sipmsg.MaxForwardsHeader(70)
		req.AppendHeader(via)
		req.AppendHeader(sipmsg.HeaderClone(inv.From()))
		req.AppendHeader(sipmsg.HeaderClone(first.To()))
		req.AppendHeader(sipmsg.HeaderClone(inv.CallID()))
		req.AppendHeader(&sipmsg.CSeqHeader{SeqNo: seq, MethodName: method})
		req.AppendHeader(&mf)
		req.SetBody(nil)
		return req
	}
	caller.send(inDialog(sipmsg.ACK, inv.CSeq().SeqNo), b2bua)
	forwarded := hop.forwarded2xx()
	if forwarded < 2 {
		t.Errorf("the hop forwarded %d 2xx from TCP, want the retransmission too", forwarded)
	}
	// The next retransmission would have come 2*T1 after the last.
	select {
	case r := <-caller.resps:
		t.Fatalf("%d after the ACK", r.StatusCode)
	case <-time.After(3 * sipmsg.T1):
	}

	caller.send(inDialog(sipmsg.BYE, inv.CSeq().SeqNo+1), b2bua)
	term.waitRequest(sipmsg.BYE, 3*time.Second)
	if r := caller.nextResponse(200, 3*time.Second); r.CSeq().MethodName != sipmsg.BYE {
		t.Errorf("BYE answered with %d to %s", r.StatusCode, r.CSeq().MethodName)
	}
	waitIdle(t, e)
}
