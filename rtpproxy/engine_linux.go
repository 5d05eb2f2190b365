package rtpproxy

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batch is how many datagrams one recvmmsg/sendmmsg moves at most.
const batch = 32

// maxDatagram bounds a relayed datagram; larger ones arrive truncated and
// are dropped (RTP over UDP stays under the path MTU).
const maxDatagram = 2048

// remote is a party's media address, with the raw socket address the send
// path hands to the kernel, built once when the address is learned.
type remote struct {
	ap      netip.AddrPort        // where packets go
	sdp     netip.AddrPort        // what the SDP said, to tell a re-INVITE's move from a latch
	sa      unix.RawSockaddrInet6 // an AF_INET address is laid over its start
	namelen uint32
}

func newRemote(ap, sdp netip.AddrPort) *remote {
	r := &remote{ap: ap, sdp: sdp}
	var port *uint16
	if a := ap.Addr(); a.Is4() {
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&r.sa))
		sa.Family, sa.Addr, port = unix.AF_INET, a.As4(), &sa.Port
		r.namelen = unix.SizeofSockaddrInet4
	} else {
		r.sa.Family, r.sa.Addr, port = unix.AF_INET6, a.As16(), &r.sa.Port
		r.namelen = unix.SizeofSockaddrInet6
	}
	p := (*[2]byte)(unsafe.Pointer(port))
	p[0], p[1] = byte(ap.Port()>>8), byte(ap.Port()) // network byte order
	return r
}

func addrFromRaw(sa *unix.RawSockaddrInet6) netip.AddrPort {
	p := (*[2]byte)(unsafe.Pointer(&sa.Port)) // at the same offset in both families
	port := uint16(p[0])<<8 | uint16(p[1])
	if sa.Family == unix.AF_INET {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port)
	}
	return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), port)
}

const (
	sockLive int32 = iota
	sockDraining
)

// sock is one bound UDP port, read by exactly one worker.
type sock struct {
	fd    int
	port  int
	rtcp  bool
	ep    *endpoint
	w     *worker
	state atomic.Int32
}

// engine is the set of relay threads.
type engine struct {
	p        *Proxy
	workers  []*worker
	draining atomic.Int64
	stopping atomic.Bool
}

// worker owns an epoll set and the sockets in it. Only the worker adds,
// reads and closes its sockets, so a closed descriptor number that the
// kernel hands out again can never be read under its old identity.
type worker struct {
	e    *engine
	epfd int
	evfd int // eventfd: wakes the worker for its inbox

	mu      sync.Mutex
	inbox   []op
	stopped bool

	epf    *os.File // epfd, registered with Go's netpoller
	rc     syscall.RawConn
	socks  []*sock // by descriptor number
	events [128]unix.EpollEvent
	bufs   [batch][maxDatagram]byte
	names  [batch]unix.RawSockaddrInet6
	hdrs   [batch][10]byte // RTP header bytes 2-11 as received, while a route rewrites
	media  [batch]bool     // the datagram is RTP media (not RTCP, not UDPTL)
	rxIov  [batch]unix.Iovec
	rx     [batch]unix.Mmsghdr
	txIov  [batch]unix.Iovec
	tx     [batch]unix.Mmsghdr

	packets, bytes, dropped, drainDropped atomic.Uint64
	done                                  chan struct{}
}

type op struct {
	add    []*sock
	retire []*sock
	port   int // with retire: the pair to give back to the pool
}

func newEngine(p *Proxy, n int) (*engine, error) {
	e := &engine{p: p}
	for i := 0; i < n; i++ {
		w, err := newWorker(e)
		if err != nil {
			e.close()
			return nil, err
		}
		e.workers = append(e.workers, w)
		go w.run()
	}
	return e, nil
}

func newWorker(e *engine) (*worker, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("rtpproxy: epoll: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("rtpproxy: eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(evfd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return nil, fmt.Errorf("rtpproxy: epoll add: %w", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return nil, fmt.Errorf("rtpproxy: epoll: %w", err)
	}
	epf := os.NewFile(uintptr(epfd), "epoll")
	rc, err := epf.SyscallConn()
	if err != nil {
		epf.Close()
		unix.Close(evfd)
		return nil, fmt.Errorf("rtpproxy: epoll: %w", err)
	}
	w := &worker{e: e, epfd: epfd, evfd: evfd, epf: epf, rc: rc, done: make(chan struct{})}
	for i := range w.rx {
		w.rxIov[i] = unix.Iovec{Base: &w.bufs[i][0]}
		w.rxIov[i].SetLen(maxDatagram)
		w.rx[i].Hdr.Name = (*byte)(unsafe.Pointer(&w.names[i]))
		w.rx[i].Hdr.Iov = &w.rxIov[i]
		w.rx[i].Hdr.SetIovlen(1)
		w.tx[i].Hdr.Iov = &w.txIov[i]
		w.tx[i].Hdr.SetIovlen(1)
	}
	return w, nil
}

// post hands an operation to the worker; after the worker stopped, the
// sockets are already closed and the operation is moot.
func (w *worker) post(o op) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		for _, s := range o.add {
			unix.Close(s.fd)
		}
		return
	}
	w.inbox = append(w.inbox, o)
	var one = [8]byte{1}
	unix.Write(w.evfd, one[:]) // eventfd counter; EAGAIN only if already signalled
}

func (w *worker) run() {
	defer close(w.done)
	// Blocking happens in Go's netpoller, on the epoll descriptor itself
	// (an epoll set is readable while it has ready events): a thread parked
	// in epoll_wait would make the runtime hand its P off and spin sysmon up
	// on every wait, which costs more than the relaying at these rates.
	err := w.rc.Read(func(uintptr) bool {
		for {
			r, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(w.epfd),
				uintptr(unsafe.Pointer(&w.events[0])), uintptr(len(w.events)), 0, 0, 0)
			if w.e.stopping.Load() {
				return true
			}
			n := int(r)
			if errno != 0 || n <= 0 {
				return false // nothing ready: park until the set is readable
			}
			now := w.e.p.now()
			for i := 0; i < n; i++ {
				fd := int(w.events[i].Fd)
				if fd == w.evfd {
					w.takeInbox()
					continue
				}
				if fd < len(w.socks) {
					if s := w.socks[fd]; s != nil {
						w.relay(s, now)
					}
				}
			}
		}
	})
	if err != nil && !w.e.stopping.Load() {
		w.e.p.log.Error("relay thread stopped", "err", err)
	}
	w.mu.Lock()
	w.stopped = true
	inbox := w.inbox
	w.inbox = nil
	w.mu.Unlock()
	for _, o := range inbox {
		for _, s := range o.add {
			unix.Close(s.fd)
		}
	}
	for _, s := range w.socks {
		if s != nil {
			unix.Close(s.fd)
		}
	}
	w.epf.Close()
	unix.Close(w.evfd)
}

func (w *worker) takeInbox() {
	var cnt [8]byte
	unix.Read(w.evfd, cnt[:])
	w.mu.Lock()
	inbox := w.inbox
	w.inbox = nil
	w.mu.Unlock()
	for _, o := range inbox {
		for _, s := range o.add {
			ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(s.fd)}
			if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, s.fd, &ev); err != nil {
				w.e.p.log.Error("epoll add", "port", s.port, "err", err)
			}
			for len(w.socks) <= s.fd {
				w.socks = append(w.socks, nil)
			}
			w.socks[s.fd] = s
		}
		for _, s := range o.retire {
			unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, s.fd, nil)
			w.socks[s.fd] = nil
			unix.Close(s.fd)
		}
		if o.retire != nil {
			w.e.p.pool.put(o.port)
			w.e.draining.Add(-1)
		}
	}
}

// relay moves what is queued on s: one recvmmsg, the latching and counters
// under one lock, then per receiver in the stream's table one sendmmsg out
// of the receiver's own socket, and the sink.
func (w *worker) relay(s *sock, now int64) {
	for i := range w.rx {
		w.rx[i].Hdr.Namelen = unix.SizeofSockaddrInet6
		w.rx[i].Hdr.Flags = 0
	}
	r, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(s.fd),
		uintptr(unsafe.Pointer(&w.rx[0])), batch, unix.MSG_DONTWAIT, 0, 0)
	n := int(r)
	if errno != 0 || n <= 0 {
		return
	}
	if s.state.Load() != sockLive {
		w.drainDropped.Add(uint64(n))
		return
	}
	ep := s.ep
	rt := ep.strm.table.Load().routeOf(ep)
	window := uint16(w.e.p.cfg.LatchWindow)
	k, bytes := 0, 0
	ep.mu.Lock()
	kern := w.e.p.kern != nil
	latched, cur, evicted := ep.latched, ep.dstRTP.Load(), false
	for i := 0; i < n; i++ {
		ln := int(w.rx[i].Len)
		if w.rx[i].Hdr.Flags&unix.MSG_TRUNC != 0 || ln == 0 {
			ep.dropped++
			continue
		}
		b := w.bufs[i][:ln]
		src := addrFromRaw(&w.names[i])
		if ep.kern != nil && !s.rtcp && ep.mustEvict(src, b) {
			w.e.p.evict(ep) // its state decides on this packet
			evicted = true
		}
		var ok bool
		if s.rtcp {
			ok = ep.admitRTCP(src, b)
		} else {
			ok = ep.admitRTP(src, b, now, window)
		}
		if ok {
			w.txIov[k].Base = &w.bufs[i][0]
			w.txIov[k].SetLen(ln)
			// admitRTP let only RTP of at least 12 bytes through, or RTCP
			w.media[k] = !s.rtcp && ep.isRTP && !isRTCP(b)
			k++
			bytes += ln
		}
	}
	moved := kern && (evicted || ep.latched != latched || ep.dstRTP.Load() != cur)
	ep.mu.Unlock()
	if moved {
		// The stream may move into the kernel, or its entry change: only
		// once this batch is sent, or the kernel's next packets would pass
		// the ones userspace still holds.
		defer w.e.p.kick(ep.call)
	}
	if k == 0 || rt == nil || (len(rt.to) == 0 && rt.sink == nil) {
		w.dropped.Add(uint64(n))
		return
	}
	drop := n - k
	relayed, relayedBytes := 0, 0
	if rt.sink != nil {
		for j := 0; j < k; j++ {
			if w.media[j] {
				rt.sink.WriteRTP(ep.leg, w.packet(j))
				relayed++
			}
		}
	}
	if len(rt.to) == 0 {
		drop += k - relayed // RTCP, UDPTL: only RTP goes to a sink
	}
	saved, dirty := false, false
	for _, d := range rt.to {
		out, dst := d.ep.rtp, d.ep.dstRTP.Load()
		if s.rtcp {
			out, dst = d.ep.rtcp, d.ep.dstRTCP.Load()
		}
		if dst == nil || out.state.Load() != sockLive {
			drop += k
			continue
		}
		switch {
		case d.rewrite && !s.rtcp:
			if !saved {
				w.saveHeaders(k)
				saved = true
			} else if dirty {
				w.restoreHeaders(k)
			}
			for j := 0; j < k; j++ {
				if w.media[j] {
					d.ep.out.rewrite(ep, w.packet(j), now)
				}
			}
			dirty = true
		case dirty:
			w.restoreHeaders(k)
			dirty = false
		}
		sent := w.send(out.fd, dst, k)
		relayed += sent
		relayedBytes += bytes
		drop += k - sent
	}
	w.packets.Add(uint64(relayed))
	w.bytes.Add(uint64(relayedBytes))
	if drop > 0 {
		w.dropped.Add(uint64(drop))
	}
}

// packet is the j-th datagram queued for sending.
func (w *worker) packet(j int) []byte {
	return unsafe.Slice(w.txIov[j].Base, w.txIov[j].Len)
}

// saveHeaders keeps the received RTP headers of the queued media packets,
// so that after one receiver's rewrite the next receiver gets the
// original, or its own rewrite of it.
func (w *worker) saveHeaders(k int) {
	for j := 0; j < k; j++ {
		if w.media[j] {
			copy(w.hdrs[j][:], w.packet(j)[2:12])
		}
	}
}

func (w *worker) restoreHeaders(k int) {
	for j := 0; j < k; j++ {
		if w.media[j] {
			copy(w.packet(j)[2:12], w.hdrs[j][:])
		}
	}
}

// send hands the k queued datagrams to the kernel for dst, out of socket
// fd, and returns how many it took.
func (w *worker) send(fd int, dst *remote, k int) int {
	name := (*byte)(unsafe.Pointer(&dst.sa))
	for j := 0; j < k; j++ {
		w.tx[j].Hdr.Name = name
		w.tx[j].Hdr.Namelen = dst.namelen
	}
	sent := 0
	for sent < k {
		r, _, errno := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(fd),
			uintptr(unsafe.Pointer(&w.tx[sent])), uintptr(k-sent), unix.MSG_DONTWAIT, 0, 0)
		if errno != 0 || int(r) <= 0 {
			break // full socket buffer or ICMP error from the party: drop
		}
		sent += int(r)
	}
	return sent
}

func (e *engine) pick() *worker {
	return e.workers[int(e.p.nextW.Add(1))%len(e.workers)]
}

// openPair binds an RTP/RTCP port pair from the pool for ep on worker w and
// hands the sockets to w.
func (e *engine) openPair(w *worker, ep *endpoint) error {
	var lastErr error = errors.New("pool empty")
	// Another program may hold any number of the range's ports: every free
	// pair is tried once (a busy one goes to the back of the queue) before
	// the call is refused. Only a port in use is worth passing over; any
	// other bind error (out of descriptors) ends the search.
	_, free := e.p.pool.size()
	for try := 0; try < free; try++ {
		port, ok := e.p.pool.get()
		if !ok {
			break
		}
		bind := e.p.cfg.BindAddr
		if ep.v6 {
			bind = e.p.cfg.BindV6
		}
		rtp, err := openUDP(bind, port)
		if err != nil {
			lastErr = err
			e.p.pool.put(port)
			if !errors.Is(err, unix.EADDRINUSE) {
				break
			}
			continue
		}
		rtcp, err := openUDP(bind, port+1)
		if err != nil {
			lastErr = err
			unix.Close(rtp)
			e.p.pool.put(port)
			if !errors.Is(err, unix.EADDRINUSE) {
				break
			}
			continue
		}
		ep.rtp = &sock{fd: rtp, port: port, ep: ep, w: w}
		ep.rtcp = &sock{fd: rtcp, port: port + 1, rtcp: true, ep: ep, w: w}
		w.post(op{add: []*sock{ep.rtp, ep.rtcp}})
		return nil
	}
	return noPorts(lastErr)
}

// releasePair stops relaying on ep's ports at once; they keep reading and
// dropping for Config.Drain and then go back to the pool.
func (e *engine) releasePair(ep *endpoint) {
	if ep.rtp == nil {
		return
	}
	ep.rtp.state.Store(sockDraining)
	ep.rtcp.state.Store(sockDraining)
	e.draining.Add(1)
	o := op{retire: []*sock{ep.rtp, ep.rtcp}, port: ep.rtp.port}
	w := ep.rtp.w
	time.AfterFunc(e.p.cfg.Drain, func() { w.post(o) })
}

func openUDP(addr netip.Addr, port int) (int, error) {
	family, sa := unix.AF_INET6, unix.Sockaddr(&unix.SockaddrInet6{Port: port, Addr: addr.As16()})
	if addr.Is4() {
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: port, Addr: addr.As4()}
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	if family == unix.AF_INET6 {
		// An endpoint is of one family: on "::" the socket must not take
		// IPv4 too (as v4-mapped addresses).
		unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1)
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind %v: %w", netip.AddrPortFrom(addr, uint16(port)), err)
	}
	// DSCP EF for interactive voice (RFC 4594 §4.4); best effort.
	if family == unix.AF_INET6 {
		unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_TCLASS, 0xb8)
	} else {
		unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TOS, 0xb8)
	}
	return fd, nil
}

func (e *engine) counters() (packets, bytes, dropped, drainDropped uint64) {
	for _, w := range e.workers {
		packets += w.packets.Load()
		bytes += w.bytes.Load()
		dropped += w.dropped.Load()
		drainDropped += w.drainDropped.Load()
	}
	return
}

// close stops the workers; each closes its own sockets.
func (e *engine) close() {
	e.stopping.Store(true)
	var one = [8]byte{1}
	for _, w := range e.workers {
		w.mu.Lock()
		if !w.stopped {
			unix.Write(w.evfd, one[:])
		}
		w.mu.Unlock()
	}
	for _, w := range e.workers {
		<-w.done
	}
}

// sendOne sends pkt to dst out of s, from any goroutine: the kernel
// serialises datagrams on one socket, and the relay thread's batches are
// not touched.
func sendOne(s *sock, dst *remote, pkt []byte) error {
	var sa unix.Sockaddr
	if a := dst.ap.Addr(); a.Is4() {
		sa = &unix.SockaddrInet4{Port: int(dst.ap.Port()), Addr: a.As4()}
	} else {
		sa = &unix.SockaddrInet6{Port: int(dst.ap.Port()), Addr: a.As16()}
	}
	return unix.Sendto(s.fd, pkt, unix.MSG_DONTWAIT, sa)
}
