package rtpproxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// bpfPath is the loaded program, its maps and its attachments. The
// attachments are TCX links owned by this process: they go away with it,
// so a crashed proxy leaves nothing behind on the interfaces.
type bpfPath struct {
	fwd, tot *ebpf.Map
	prog     *ebpf.Program
	links    []link.Link
	addrs    map[netip.Addr]int // this host's addresses and their interfaces
}

// errNoPrivilege explains the usual reason the program does not load.
var errNoPrivilege = errors.New("needs CAP_BPF and CAP_NET_ADMIN (or root)")

// loadBPF loads the program with a map for entries ports and attaches it
// to the ingress of the interfaces media arrives on: loopback (where a
// host's own traffic to any of its addresses goes) and every interface
// that holds bind (all of them for 0.0.0.0).
func loadBPF(bind netip.Addr, entries int) (fastPath, error) {
	b := &bpfPath{addrs: map[netip.Addr]int{}}
	ok := false
	defer func() {
		if !ok {
			b.close()
		}
	}()
	var err error
	b.fwd, err = ebpf.NewMap(&ebpf.MapSpec{Name: "rtp_fwd", Type: ebpf.Hash, KeySize: 4, ValueSize: valueSize, MaxEntries: uint32(entries)})
	if err != nil {
		return nil, explain("forwarding map", err)
	}
	b.tot, err = ebpf.NewMap(&ebpf.MapSpec{Name: "rtp_tot", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 16, MaxEntries: 1})
	if err != nil {
		return nil, explain("totals map", err)
	}
	b.prog, err = ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "rtp_fwd",
		Type:         ebpf.SchedCLS,
		Instructions: fwdProgram(b.fwd, b.tot),
		License:      "Dual MIT/GPL",
	})
	if err != nil {
		return nil, explain("program", err)
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("interfaces: %w", err)
	}
	for _, ifc := range ifaces {
		addrs, _ := ifc.Addrs()
		mine := ifc.Flags&net.FlagLoopback != 0
		for _, a := range addrs {
			pfx, err := netip.ParsePrefix(a.String())
			if err != nil {
				continue
			}
			ip := pfx.Addr().Unmap()
			b.addrs[ip] = ifc.Index
			if ip == bind || (bind.IsUnspecified() && ip.Is4()) {
				mine = true
			}
		}
		if !mine || ifc.Flags&net.FlagUp == 0 {
			continue
		}
		l, err := link.AttachTCX(link.TCXOptions{Interface: ifc.Index, Program: b.prog, Attach: ebpf.AttachTCXIngress})
		if err != nil {
			return nil, explain("attach to "+ifc.Name+" ingress", err)
		}
		b.links = append(b.links, l)
	}
	if len(b.links) == 0 {
		return nil, fmt.Errorf("no interface holds %v", bind)
	}
	ok = true
	return b, nil
}

func explain(what string, err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, os.ErrPermission) {
		// (the library's own hint at this error, RLIMIT_MEMLOCK, has not
		// applied since Linux 5.11 accounts BPF memory to the cgroup)
		return fmt.Errorf("%s: %w (%w)", what, errNoPrivilege, unix.EPERM)
	}
	if errors.Is(err, ebpf.ErrNotSupported) {
		return fmt.Errorf("%s: this kernel lacks it (TCX needs Linux 6.6): %w", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func fwdKey(port int) [4]byte { return [4]byte{byte(port >> 8), byte(port)} }

func (b *bpfPath) put(port int, v *fwdValue) error {
	return b.fwd.Update(fwdKey(port), v.marshal(), ebpf.UpdateAny)
}

func (b *bpfPath) take(port int) (fwdValue, bool) {
	var v fwdValue
	raw := make([]byte, valueSize)
	if err := b.fwd.LookupAndDelete(fwdKey(port), &raw); err != nil {
		return v, false
	}
	v.unmarshal(raw)
	return v, true
}

func (b *bpfPath) peek(port int) (fwdValue, bool) {
	var v fwdValue
	raw := make([]byte, valueSize)
	if err := b.fwd.Lookup(fwdKey(port), &raw); err != nil {
		return v, false
	}
	v.unmarshal(raw)
	return v, true
}

func (b *bpfPath) totals() (packets, bytes uint64) {
	var per [][16]byte
	if err := b.tot.Lookup(uint32(0), &per); err != nil {
		return 0, 0
	}
	for _, c := range per {
		packets += binary.NativeEndian.Uint64(c[:8])
		bytes += binary.NativeEndian.Uint64(c[8:])
	}
	return packets, bytes
}

// route asks the kernel's routing table which local address, hence which
// interface, would send to a (a connected UDP socket sends nothing).
func (b *bpfPath) route(a netip.Addr) (uint32, bool) {
	if _, mine := b.addrs[a]; mine || a.IsLoopback() {
		return 0, true
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, false
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: a.As4(), Port: 9}); err != nil {
		return 0, false
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return 0, false
	}
	s4, ok := sa.(*unix.SockaddrInet4)
	if !ok {
		return 0, false
	}
	idx := b.addrs[netip.AddrFrom4(s4.Addr)]
	return uint32(idx), idx > 0
}

func (b *bpfPath) close() error {
	var errs []error
	for _, l := range b.links {
		errs = append(errs, l.Close())
	}
	if b.prog != nil {
		errs = append(errs, b.prog.Close())
	}
	for _, m := range []*ebpf.Map{b.fwd, b.tot} {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	return errors.Join(errs...)
}

func (b *bpfPath) runStats() (uint64, time.Duration, error) {
	s, err := b.prog.Stats()
	if err != nil {
		return 0, 0, err
	}
	return s.RunCount, s.Runtime, nil
}

// EnableKernelRunStats makes the kernel count the run time of BPF
// programs (all of them, on the whole machine, at a small cost per run)
// until the returned Closer is closed or the process exits; see
// Proxy.KernelRunStats. Needs CAP_SYS_ADMIN.
func EnableKernelRunStats() (io.Closer, error) {
	return ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
}

// monoNow is CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns and of Go's
// monotonic time.
func monoNow() uint64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}
