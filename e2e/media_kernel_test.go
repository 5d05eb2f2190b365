package e2e

import (
	"net/netip"
	"testing"
	"time"

	"github.com/imcall/b2bua/internal/testenv"
)

// TestAnchoredRTPInKernel is TestAnchoredRTP with --rtp-kernel on: the
// caller's RTP reaches the terminal as before, from the proxy's port, but
// once the caller is latched the kernel forwards it, and /metrics says so.
// Needs root (CI runs as root).
func TestAnchoredRTPInKernel(t *testing.T) {
	t.Parallel()
	testenv.NeedFile(t, g711aPCAP, "SIPp's audio file (apt-get install sip-tester)")
	n := provision(t)
	term := newGoTerminal(t)
	n.serve(serveOpts{subscribers: []subscriber{online(bobIMSI, term.port)}, extra: []string{"--rtp-kernel", "on"}})
	n.callWithMedia("caller_rtp.xml").wait()
	term.waitBYEs(1, 5*time.Second)

	offer, _, packets, _ := term.snapshot()
	_, port := offerAddr(t, offer)
	proxy := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)).String()
	got := packets[proxy]
	if got < 100 || len(packets) != 1 {
		t.Fatalf("RTP reached the terminal from %v, want at least 100 packets, all from the proxy at %s", packets, proxy)
	}
	relayed, inKernel := metric(t, n, "b2bua_rtp_packets_relayed_total"), metric(t, n, "b2bua_rtp_packets_kernel_total")
	// the first packets latch the caller in userspace; the rest go through
	// the kernel
	if relayed < got || inKernel < got-5 || inKernel > relayed {
		t.Errorf("relayed %d packets, %d of them in the kernel; the terminal got %d", relayed, inKernel, got)
	}
	if s := metric(t, n, "b2bua_rtp_kernel_streams"); s != 0 {
		t.Errorf("%d streams still in the kernel after the call", s)
	}
}
