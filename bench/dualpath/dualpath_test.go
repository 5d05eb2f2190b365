// Package dualpath measures what the far party of a dual-path call hears
// when the path it hears dies abruptly while the other path carries the
// same media: the gap between the last packet of the old path and the
// first of the new one at the far receiver, and the frames lost at each
// switch. One call, both paths sending the device's 20 ms frames, the
// active path cut for 300 ms again and again.
package dualpath

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/registry/sqlite"
	"github.com/imcall/b2bua/rtpproxy"
	"github.com/imcall/b2bua/scp/sim"
	b2b "github.com/imcall/b2bua/sip"
	"github.com/imcall/b2bua/sip/digest"
)

const msisdn = "+15550001111"

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func sdp(port int) []byte {
	return []byte(fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n", port))
}

func ua(b *testing.B, host string) (*sipgo.UserAgent, *sipgo.Server, *sipgo.Client, net.PacketConn) {
	conn, err := net.ListenPacket("udp4", net.JoinHostPort(host, "0"))
	if err != nil {
		b.Fatal(err)
	}
	u, _ := sipgo.NewUA(sipgo.WithUserAgentHostname(host),
		sipgo.WithUserAgentTransactionLayerOptions(sipmsg.WithTransactionLayerLogger(quiet())),
		sipgo.WithUserAgentTransportLayerOptions(sipmsg.WithTransportLayerLogger(quiet())))
	srv, _ := sipgo.NewServer(u, sipgo.WithServerLogger(quiet()))
	cli, _ := sipgo.NewClient(u, sipgo.WithClientLogger(quiet()), sipgo.WithClientConnectionAddr(conn.LocalAddr().String()))
	go srv.ServeUDP(conn)
	// the client sends from this socket once the server has it
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if c, _ := u.TransportLayer().GetConnection("udp", conn.LocalAddr().String()); c != nil {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("UDP transport not up")
		}
	}
	b.Cleanup(func() { conn.Close(); u.Close() })
	return u, srv, cli, conn
}

func udp(b *testing.B) *net.UDPConn {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

func port(c net.PacketConn) int { return c.LocalAddr().(*net.UDPAddr).Port }

// BenchmarkPathSwitch: report p50/p99 gap (ms) and lost frames per switch.
// Run with -benchtime=1x; SWITCHES sets how many (default 120).
func BenchmarkPathSwitch(b *testing.B) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(b.TempDir(), "r.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	if _, err := store.AddUser(ctx, registry.User{IMID: "alice", Creds: registry.NewCredentials("alice", "im.test", "pw")}); err != nil {
		b.Fatal(err)
	}
	mid, _ := registry.ParseMSISDN(msisdn)
	if _, err := store.AddTerminal(ctx, registry.NewTerminal{IMID: "alice", MobileID: mid, Kind: registry.Legacy, Active: true}); err != nil {
		b.Fatal(err)
	}
	v, _ := digest.New(digest.Config{Realm: "im.test", Lookup: func(ctx context.Context, u string) (registry.Credentials, error) {
		usr, err := store.User(ctx, u)
		return usr.Creds, err
	}})
	proxy, err := rtpproxy.New(rtpproxy.Config{BindAddr: netip.MustParseAddr("127.0.0.1"), PortMin: 39400, PortMax: 39499, Drain: 10 * time.Millisecond, Workers: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer proxy.Close()
	simulator, _ := sim.New(sim.Config{})

	// the far party: answers at once, records every frame it hears
	_, farSrv, farCli, farConn := ua(b, "127.0.0.1")
	farRTP := udp(b)
	var farTo atomic.Int64 // the proxy port the far party sends to
	farDS := sipgo.NewDialogServerCache(farCli, sipmsg.ContactHeader{Address: sipmsg.Uri{Scheme: "sip", User: "bob", Host: "127.0.0.1", Port: port(farConn)}})
	farSrv.OnInvite(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		dlg, err := farDS.ReadInvite(req, tx)
		if err == nil {
			_ = dlg.RespondSDP(sdp(port(farRTP)))
			farTo.Store(audioPort(req.Body()))
		}
	})
	farSrv.OnAck(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) { _ = farDS.ReadAck(req, tx) })
	farSrv.OnBye(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) { _ = farDS.ReadBye(req, tx) })

	trunk := registry.Trunk{Name: "carrier", CIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}
	srv, err := b2b.NewServer(b2b.Config{
		Domain: "im.test", Terminals: store, Locator: simulator, Auth: v, Logger: quiet(),
		Media: b2b.RTPProxy{Proxy: proxy},
		Route: func(context.Context, string) ([]b2b.Target, error) {
			return []b2b.Target{{URI: sipmsg.Uri{Scheme: "sip", User: "bob", Host: "127.0.0.1", Port: port(farConn)}, Dest: farConn.LocalAddr().String(), Transport: "UDP"}}, nil
		},
		DualPath: b2b.DualPathConfig{
			Window: 10 * time.Second, Terminals: store,
			Trunks: func(context.Context) ([]registry.Trunk, error) { return []registry.Trunk{trunk}, nil },
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Listen("127.0.0.1:0"); err != nil {
		b.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	go srv.Serve(sctx)
	<-srv.Ready()
	bob := sipmsg.Uri{Scheme: "sip", User: "bob", Host: "127.0.0.1", Port: int(srv.Addr().Port())}

	call := func(host string, rtp *net.UDPConn, auth bool, hdrs ...sipmsg.Header) (*sipgo.DialogClientSession, int) {
		_, _, cli, conn := ua(b, host)
		dc := sipgo.NewDialogClientCache(cli, sipmsg.ContactHeader{Address: sipmsg.Uri{Scheme: "sip", User: "alice", Host: host, Port: port(conn)}})
		hdrs = append(hdrs, sipmsg.NewHeader("Content-Type", "application/sdp"))
		dlg, err := dc.Invite(ctx, bob, sdp(port(rtp)), hdrs...)
		if err != nil {
			b.Fatal(err)
		}
		opts := sipgo.AnswerOptions{}
		if auth {
			opts = sipgo.AnswerOptions{Username: "alice", Password: "pw"}
		}
		if err := dlg.WaitAnswer(ctx, opts); err != nil {
			b.Fatal(err)
		}
		_ = dlg.Ack(ctx)
		p := audioPort(dlg.InviteResponse.Body())
		if p == 0 {
			b.Fatal("no m=audio in the 200")
		}
		return dlg, int(p)
	}
	dataRTP, carrierRTP := udp(b), udp(b)
	dataDlg, dataPort := call("127.0.0.1", dataRTP, true)
	carrierDlg, carrierPort := call("127.0.0.2", carrierRTP, false, sipmsg.NewHeader("P-Asserted-Identity", "<tel:"+msisdn+">"))

	type arrival struct {
		at    time.Time
		frame uint32
		path  byte
	}
	var mu sync.Mutex
	var got []arrival
	go func() {
		buf := make([]byte, 2048)
		for {
			n, err := farRTP.Read(buf)
			if err != nil {
				return
			}
			if n >= 17 {
				a := arrival{at: time.Now(), frame: binary.BigEndian.Uint32(buf[12:]), path: buf[16]}
				mu.Lock()
				got = append(got, a)
				mu.Unlock()
			}
		}
	}()

	// The device: every 20 ms frame k goes out on each path that is up,
	// with its own SSRC and sequence per path.
	var cut [2]atomic.Bool
	socks := [2]*net.UDPConn{dataRTP, carrierRTP}
	dests := [2]*net.UDPAddr{{IP: net.IPv4(127, 0, 0, 1), Port: dataPort}, {IP: net.IPv4(127, 0, 0, 1), Port: carrierPort}}
	done := make(chan struct{})
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		pkt := make([]byte, 172)
		for k := uint32(0); ; k++ {
			for i := range socks {
				if cut[i].Load() {
					continue
				}
				pkt[0], pkt[1] = 0x80, 0
				binary.BigEndian.PutUint16(pkt[2:], uint16(k))
				binary.BigEndian.PutUint32(pkt[4:], k*160)
				binary.BigEndian.PutUint32(pkt[8:], uint32(0x1000+i))
				binary.BigEndian.PutUint32(pkt[12:], k)
				pkt[16] = byte(i)
				_, _ = socks[i].WriteToUDP(pkt, dests[i])
			}
			// the far party talks too (fan-out to both paths)
			_, _ = farRTP.WriteToUDP(pkt, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(farTo.Load())})
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()

	switches := 120
	if n, err := strconv.Atoi(os.Getenv("SWITCHES")); err == nil && n > 0 {
		switches = n
	}
	time.Sleep(500 * time.Millisecond)
	b.ResetTimer()
	// The far party hears the data path (0) first. Cut the path it hears
	// for 300 ms, let both carry media for 200 ms, cut the other...
	active := 0
	for i := 0; i < switches; i++ {
		cut[active].Store(true)
		time.Sleep(300 * time.Millisecond)
		cut[active].Store(false)
		time.Sleep(200 * time.Millisecond)
		active = 1 - active
	}
	b.StopTimer()
	close(done)
	<-sent
	_ = dataDlg.Bye(ctx)
	_ = carrierDlg.Bye(ctx)

	mu.Lock()
	defer mu.Unlock()
	var gaps []float64
	var lost []int
	for i := 1; i < len(got); i++ {
		if got[i].path != got[i-1].path {
			gaps = append(gaps, float64(got[i].at.Sub(got[i-1].at).Microseconds())/1000)
			lost = append(lost, int(got[i].frame)-int(got[i-1].frame)-1)
		}
	}
	if len(gaps) < switches {
		b.Fatalf("%d switches heard at the far party, want %d", len(gaps), switches)
	}
	slices.Sort(gaps)
	pct := func(p float64) float64 { return gaps[min(len(gaps)-1, int(p*float64(len(gaps))))] }
	maxLost, sumLost := 0, 0
	for _, l := range lost {
		maxLost = max(maxLost, l)
		sumLost += l
	}
	b.ReportMetric(float64(len(gaps)), "switches")
	b.ReportMetric(pct(0.5), "gap-p50-ms")
	b.ReportMetric(pct(0.99), "gap-p99-ms")
	b.ReportMetric(gaps[len(gaps)-1], "gap-max-ms")
	b.ReportMetric(float64(sumLost)/float64(len(lost)), "lost/switch")
	b.ReportMetric(float64(maxLost), "lost-max")
}

// audioPort is the port of the m=audio line of an SDP body; 0 without one.
func audioPort(body []byte) int64 {
	for _, l := range strings.Split(string(body), "\r\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "m=audio" {
			p, _ := strconv.Atoi(f[1])
			return int64(p)
		}
	}
	return 0
}
