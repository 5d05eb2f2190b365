//go:build linux

package rtpproxy

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"testing"

	"github.com/imcall/b2bua/internal/testenv"
	"golang.org/x/sys/unix"
)

// TestKernelForwardsToAnotherHost: the parties are on another host (a
// network namespace behind a veth pair), so the program must send the
// rewritten packets out of the interface toward them, not up the local
// stack.
func TestKernelForwardsToAnotherHost(t *testing.T) {
	needKernel(t)
	ip := testenv.NeedTool(t, "ip")
	ns := fmt.Sprintf("rtpk%d", os.Getpid())
	hostIf, peerIf := ns+"h", ns+"p"
	// RFC 2544's benchmarking range, a /24 per test process
	proxyIP, peerIP := fmt.Sprintf("198.18.%d.1", os.Getpid()%250), fmt.Sprintf("198.18.%d.2", os.Getpid()%250)
	sh := func(args ...string) {
		t.Helper()
		if out, err := exec.CommandContext(context.Background(), ip, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	sh("netns", "add", ns)
	t.Cleanup(func() { exec.Command(ip, "netns", "del", ns).Run() })
	sh("link", "add", hostIf, "type", "veth", "peer", "name", peerIf, "netns", ns)
	t.Cleanup(func() { exec.Command(ip, "link", "del", hostIf).Run() })
	sh("addr", "add", proxyIP+"/24", "dev", hostIf)
	sh("link", "set", hostIf, "up")
	sh("-n", ns, "addr", "add", peerIP+"/24", "dev", peerIf)
	sh("-n", ns, "link", "set", peerIf, "up")
	sh("-n", ns, "link", "set", "lo", "up")

	pa := netip.MustParseAddr(proxyIP)
	p := newTestProxy(t, 45200, func(c *Config) { c.BindAddr, c.AdvertiseAddr, c.Kernel = pa, pa, KernelOn })
	c := newTestCall(t, p)
	remote := func(ssrc uint32) *party {
		return &party{t: t, rtp: listenIn(t, ns, peerIP), rtcp: listenIn(t, ns, peerIP), ssrc: ssrc, seq: 1000,
			proxyAddr: pa, host: peerIP}
	}
	a, b := remote(0xa5), remote(0xb5)
	setupCall(t, c, a, b)
	latchBoth(t, c, a, b)

	ifc, err := net.InterfaceByName(hostIf)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := p.kern.peek(a.proxyPort); !ok || v.ifindex != uint32(ifc.Index) {
		t.Fatalf("entry %+v (%v), want it to send out of %s (%d)", v, ok, hostIf, ifc.Index)
	}
	for _, dir := range []struct {
		name     string
		from, to *party
		leg      Leg
	}{{"a to b", a, b, legA}, {"b to a", b, a, legB}} {
		t.Run(dir.name, func(t *testing.T) {
			sent := sendN(dir.from, 50)
			expectFrom(t, dir.to.rtp, at(dir.to), sent)
			if got := userPackets(c, dir.leg); got != 1 {
				t.Fatalf("userspace saw %d packets of the latched stream, want only the latching one", got)
			}
		})
	}
	if s := legStats(c, legA); s.Packets != 51 || s.Lost != 0 {
		t.Fatalf("leg a: %d packets, %d lost; want 51, 0", s.Packets, s.Lost)
	}
}

// listenIn opens a UDP socket on addr in network namespace ns: the thread
// enters ns for the socket call only (a socket stays in the namespace it
// was made in).
func listenIn(t *testing.T, ns, addr string) *net.UDPConn {
	t.Helper()
	runtime.LockOSThread()
	self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer unix.Close(self)
	target, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer unix.Close(target)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	c, lerr := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(addr)})
	if err := unix.Setns(self, unix.CLONE_NEWNET); err != nil {
		// the thread stays locked, and dies with this goroutine, rather
		// than run other goroutines in the wrong namespace
		t.Fatalf("back to the test's namespace: %v", err)
	}
	runtime.UnlockOSThread()
	if lerr != nil {
		t.Fatal(lerr)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
