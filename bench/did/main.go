// Command did measures the post-dial delay of a call to a DID: a trunk on
// 127.0.0.2 sends INVITE to the user's number, the b2bua (daemon.Start, in
// process, media anchored) forks it to every client the user is logged in
// on, and the delay is INVITE sent → first 180 received at the trunk. Each
// client answers an INVITE with 180 at once; the trunk then CANCELs, so
// every branch is CANCELed and answered 487, as when nobody picks up.
// Calls are placed one after the other; p50/p99 per fork width.
//
//	go run ./bench/did -clients 1,2,5 -calls 500
//
// Trunk and clients are raw UDP sockets (no SIP stack of their own), so the
// figure is the b2bua's: trunk lookup, DID lookup, bindings, one INVITE
// transaction and dialog per client, SDP through the RTP proxy.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/daemon"
	"github.com/imcall/b2bua/registry"
)

const (
	domain = "im.example"
	number = "+15550001111"
	sdp    = "v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)

func main() {
	widths := flag.String("clients", "1,2,5", "comma-separated fork widths: clients logged in")
	calls := flag.Int("calls", 500, "calls per width")
	warmup := flag.Int("warmup", 50, "calls per width not counted")
	flag.Parse()
	for _, w := range strings.Split(*widths, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(w))
		if err != nil || n < 1 {
			log.Fatalf("-clients: %q is not a positive number", w)
		}
		ds, err := run(n, *calls+*warmup)
		if err != nil {
			log.Fatal(err)
		}
		ds = ds[*warmup:]
		slices.Sort(ds)
		fmt.Printf("clients=%d calls=%d p50=%.3fms p90=%.3fms p99=%.3fms max=%.3fms\n", n, len(ds),
			ms(pct(ds, 50)), ms(pct(ds, 90)), ms(pct(ds, 99)), ms(ds[len(ds)-1]))
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func pct(sorted []time.Duration, q int) time.Duration {
	i := (len(sorted)*q + 99) / 100
	return sorted[max(0, min(len(sorted)-1, i-1))]
}

// run starts a daemon whose bob is logged in on n clients and places calls
// calls from the trunk; it returns each call's post-dial delay.
func run(n, calls int) ([]time.Duration, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, err := os.MkdirTemp("", "did-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	d, err := daemon.Start(ctx, daemon.Config{
		DBPath: filepath.Join(dir, "b2bua.db"), Domain: domain,
		SIPListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0",
		RingTimeout: time.Minute, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	defer func() {
		sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		_ = d.Shutdown(sctx)
		c()
		_ = d.Close()
	}()
	st := d.Store()
	if _, err := st.AddUser(ctx, registry.User{IMID: "bob", Creds: registry.NewCredentials("bob", domain, "secret")}); err != nil {
		return nil, err
	}
	if _, err := st.AddTrunk(ctx, registry.Trunk{Name: "carrier", CIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}, CountryCode: "1"}); err != nil {
		return nil, err
	}
	if _, err := st.AddDID(ctx, registry.DID{Number: number, IMID: "bob"}); err != nil {
		return nil, err
	}
	for i := 0; i < n; i++ {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer c.Close()
		addr := c.LocalAddr().String()
		now := time.Now()
		if err := st.PutBinding(ctx, registry.Binding{IMID: "bob", Contact: "sip:bob@" + addr,
			Instance: "urn:uuid:bench-" + strconv.Itoa(i), Source: addr, Transport: "udp",
			Expires: now.Add(time.Hour), UpdatedAt: now}); err != nil {
			return nil, err
		}
		go serveClient(c)
	}
	trunk, err := net.ListenPacket("udp", "127.0.0.2:0")
	if err != nil {
		return nil, fmt.Errorf("trunk socket (is 127.0.0.2 on loopback?): %w", err)
	}
	defer trunk.Close()
	dst := net.UDPAddrFromAddrPort(d.SIPAddr())
	out := make([]time.Duration, 0, calls)
	buf := make([]byte, 65535)
	for i := 0; i < calls; i++ {
		pdd, err := call(trunk, dst, buf, i)
		if err != nil {
			return nil, fmt.Errorf("call %d with %d clients: %w", i, n, err)
		}
		out = append(out, pdd)
	}
	return out, nil
}

// call places one trunk call: INVITE, wait for 180, CANCEL, 487, ACK.
func call(c net.PacketConn, dst *net.UDPAddr, buf []byte, i int) (time.Duration, error) {
	local := c.LocalAddr().String()
	callID := "bench-" + strconv.Itoa(i) + "-" + sipmsg.GenerateTagN(8)
	branch := "z9hG4bK-" + callID
	head := func(method string, cseq string) string {
		return method + " sip:" + number + "@" + domain + ";user=phone SIP/2.0\r\n" +
			"Via: SIP/2.0/UDP " + local + ";branch=" + branch + "\r\n" +
			"From: <sip:+15557654321@127.0.0.2>;tag=t" + strconv.Itoa(i) + "\r\n" +
			"To: <sip:" + number + "@" + domain + ">%s\r\n" +
			"Call-ID: " + callID + "\r\n" +
			"CSeq: 1 " + cseq + "\r\n" +
			"Max-Forwards: 70\r\n"
	}
	inv := fmt.Sprintf(head("INVITE", "INVITE"), "") + "Contact: <sip:trunk@" + local + ">\r\n" +
		"Content-Type: application/sdp\r\nContent-Length: " + strconv.Itoa(len(sdp)) + "\r\n\r\n" + sdp
	start := time.Now()
	if _, err := c.WriteTo([]byte(inv), dst); err != nil {
		return 0, err
	}
	var pdd time.Duration
	toTag := ""
	deadline := time.Now().Add(10 * time.Second)
	for pdd == 0 || toTag == "" {
		res, err := read(c, buf, deadline)
		if err != nil {
			return 0, fmt.Errorf("waiting for 180: %w", err)
		}
		if res.CSeq().MethodName != sipmsg.INVITE || res.CallID().Value() != callID {
			continue
		}
		switch {
		case res.StatusCode == 180:
			pdd = time.Since(start)
			toTag, _ = res.To().Params.Get("tag")
		case res.StatusCode >= 200:
			return 0, fmt.Errorf("final %d before 180", res.StatusCode)
		}
	}
	if _, err := c.WriteTo([]byte(fmt.Sprintf(head("CANCEL", "CANCEL"), "")+"Content-Length: 0\r\n\r\n"), dst); err != nil {
		return 0, err
	}
	for {
		res, err := read(c, buf, deadline)
		if err != nil {
			return 0, fmt.Errorf("waiting for 487: %w", err)
		}
		if res.CallID().Value() == callID && res.CSeq().MethodName == sipmsg.INVITE && res.StatusCode >= 300 {
			ack := fmt.Sprintf(head("ACK", "ACK"), ";tag="+toTag) + "Content-Length: 0\r\n\r\n"
			_, err := c.WriteTo([]byte(ack), dst)
			return pdd, err
		}
	}
}

func read(c net.PacketConn, buf []byte, deadline time.Time) (*sipmsg.Response, error) {
	for {
		_ = c.SetReadDeadline(deadline)
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			return nil, err
		}
		m, err := sipmsg.ParseMessage(buf[:n])
		if err != nil {
			continue
		}
		if res, ok := m.(*sipmsg.Response); ok {
			return res, nil
		}
	}
}

// serveClient is a logged-in client that rings at once and is CANCELed:
// 180 to INVITE, 200 and 487 to CANCEL; ACKs need nothing. It returns when
// its socket closes.
func serveClient(c net.PacketConn) {
	buf := make([]byte, 65535)
	tag := sipmsg.GenerateTagN(8)
	invites := map[string]*sipmsg.Request{}
	for {
		n, src, err := c.ReadFrom(buf)
		if err != nil {
			return
		}
		m, err := sipmsg.ParseMessage(buf[:n])
		if err != nil {
			continue
		}
		req, ok := m.(*sipmsg.Request)
		if !ok {
			continue
		}
		reply := func(r *sipmsg.Request, code int, reason string) {
			res := sipmsg.NewResponseFromRequest(r, code, reason, nil)
			if _, ok := res.To().Params.Get("tag"); !ok {
				res.To().Params.Add("tag", tag)
			}
			_, _ = c.WriteTo([]byte(res.String()), src)
		}
		switch req.Method {
		case sipmsg.INVITE:
			invites[req.CallID().Value()] = req
			reply(req, 180, "Ringing")
		case sipmsg.CANCEL:
			reply(req, 200, "OK")
			if inv := invites[req.CallID().Value()]; inv != nil {
				reply(inv, 487, "Request Terminated")
				delete(invites, req.CallID().Value())
			}
		}
	}
}
