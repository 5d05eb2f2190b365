// Package rtpproxy anchors the media of every call: per call leg it opens a
// pair of UDP ports from a pool, rewrites the SDP offers and answers so every
// party sends to those ports, and relays RTP and RTCP among them with
// symmetric latching (so terminals behind NAT work), per-leg counters and an
// inactivity timeout that tells the call to end when media dies.
//
// A call's stream (one m-line) has an endpoint per leg and a forwarding
// table saying who receives what each endpoint's party sends: two legs that
// completed an offer/answer hear each other, and the session can fan a leg
// out to several, select one of several sources (with the receiver kept on
// one continuous RTP stream, RFC 3550 §8.2), or hand a leg's RTP to a Sink
// such as a conference mixer. The table is replaced, never changed, so the
// relay threads read it without a lock while it changes.
//
// The hot path follows three rules: no allocation per packet, packets are
// read and written in batches (recvmmsg/sendmmsg) by a few worker threads
// that each own an epoll set, and the RTP header is parsed only for the
// counters and the latching rule, in place.
package rtpproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures a Proxy. Zero values take the documented defaults.
type Config struct {
	// BindAddr is the IPv4 address the media sockets bind to; 0.0.0.0 binds
	// all interfaces. Default 127.0.0.1.
	BindAddr netip.Addr
	// AdvertiseAddr is the address written into SDP: the public address when
	// the proxy sits behind NAT. Default BindAddr; required when BindAddr is
	// unspecified (0.0.0.0).
	AdvertiseAddr netip.Addr
	// BindV6 is the IPv6 address the media sockets of IPv6 legs bind to;
	// :: binds all interfaces. Unset (the default), IPv6 media is refused
	// with 488 as before: a proxy must not offer an address family its
	// host may not route, so IPv6 is switched on where it is known to work.
	// An offer with c=IN IP6 then gets IPv6 endpoints for both legs of the
	// exchange (the relay keeps the offer's family; it does not translate).
	BindV6 netip.Addr
	// AdvertiseV6 is the IPv6 address written into SDP for IPv6 legs.
	// Default BindV6; required when BindV6 is ::.
	AdvertiseV6 netip.Addr
	// PortMin and PortMax bound the media ports (inclusive). RTP takes the
	// even port and RTCP the odd one above it (RFC 3550 §11). Default
	// 20000-29999.
	PortMin, PortMax int
	// Drain is how long a released port pair keeps reading and dropping
	// before it can be reused, so a new call never receives an old call's
	// packets. Default 2s.
	Drain time.Duration
	// MediaTimeout ends an established, not held call when a leg sent no
	// RTP for this long. Default 60s.
	MediaTimeout time.Duration
	// CheckInterval is how often supervision looks at the calls. Default 1s.
	CheckInterval time.Duration
	// LatchWindow is how far (in RTP sequence numbers) a packet from a new
	// source may be ahead of the last one, with the same SSRC, to move the
	// latch there (NAT rebinding). Default 50 (one second of 20 ms audio).
	LatchWindow int
	// Workers is the number of relay threads. Default GOMAXPROCS.
	Workers int
	// Kernel forwards latched two-party streams in the kernel (an eBPF
	// program, needs CAP_BPF and CAP_NET_ADMIN and Linux 6.6): KernelOff
	// (default), KernelAuto or KernelOn.
	Kernel KernelMode
	// Logger receives operational messages. Default slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() error {
	if !c.BindAddr.IsValid() {
		c.BindAddr = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	if !c.BindAddr.Is4() {
		return fmt.Errorf("rtpproxy: bind address %v: only IPv4 is supported", c.BindAddr)
	}
	if !c.AdvertiseAddr.IsValid() {
		if c.BindAddr.IsUnspecified() {
			return errors.New("rtpproxy: bind address 0.0.0.0 needs an advertised address")
		}
		c.AdvertiseAddr = c.BindAddr
	}
	if !c.AdvertiseAddr.Is4() || c.AdvertiseAddr.IsUnspecified() {
		return fmt.Errorf("rtpproxy: advertised address %v: need a unicast IPv4 address", c.AdvertiseAddr)
	}
	if c.BindV6.IsValid() {
		if !c.BindV6.Is6() || c.BindV6.Is4In6() || c.BindV6.Zone() != "" {
			return fmt.Errorf("rtpproxy: IPv6 bind address %v: need an IPv6 address without zone", c.BindV6)
		}
		if !c.AdvertiseV6.IsValid() {
			if c.BindV6.IsUnspecified() {
				return errors.New("rtpproxy: IPv6 bind address :: needs an advertised address")
			}
			c.AdvertiseV6 = c.BindV6
		}
		if !c.AdvertiseV6.Is6() || c.AdvertiseV6.Is4In6() || c.AdvertiseV6.IsUnspecified() {
			return fmt.Errorf("rtpproxy: advertised IPv6 address %v: need a unicast IPv6 address", c.AdvertiseV6)
		}
	} else if c.AdvertiseV6.IsValid() {
		return errors.New("rtpproxy: advertised IPv6 address without an IPv6 bind address")
	}
	if c.PortMin == 0 && c.PortMax == 0 {
		c.PortMin, c.PortMax = 20000, 29999
	}
	if c.PortMin%2 == 1 {
		c.PortMin++
	}
	if c.PortMin < 1024 || c.PortMax > 65535 || c.PortMax < c.PortMin+1 {
		return fmt.Errorf("rtpproxy: port range %d-%d: need 1024 <= min < max <= 65535 with room for one pair", c.PortMin, c.PortMax)
	}
	if c.Drain <= 0 {
		c.Drain = 2 * time.Second
	}
	if c.MediaTimeout <= 0 {
		c.MediaTimeout = 60 * time.Second
	}
	if c.CheckInterval <= 0 {
		c.CheckInterval = time.Second
	}
	if c.LatchWindow <= 0 {
		c.LatchWindow = 50
	}
	if c.LatchWindow > 3000 {
		return fmt.Errorf("rtpproxy: latch window %d too large", c.LatchWindow)
	}
	if c.Workers <= 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Proxy is the media relay shared by all calls. Create it with New, start
// calls with NewCall, and Close it after the calls.
type Proxy struct {
	cfg    Config
	log    *slog.Logger
	pool   *portPool
	eng    *engine
	epoch  time.Time
	nextW  atomic.Uint32
	mu     sync.Mutex
	calls  map[*Call]struct{}
	closed bool
	stop   chan struct{}
	wg     sync.WaitGroup

	timeouts atomic.Uint64

	// kern is the in-kernel path; nil: everything in userspace, kernWhy
	// says why.
	kern        fastPath
	kernWhy     string
	monoEpoch   uint64 // CLOCK_MONOTONIC at epoch
	kernStreams atomic.Int64
	ksync       kernelSync
	// sessionID gives the o= session id of each side of a new call; tests
	// make it deterministic.
	sessionID func() uint64
}

// New validates cfg, starts the relay threads and the supervisor.
func New(cfg Config) (*Proxy, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	p := &Proxy{
		cfg:   cfg,
		log:   cfg.Logger.With("component", "rtpproxy"),
		pool:  newPortPool(cfg.PortMin, cfg.PortMax),
		epoch: time.Now(),
		calls: make(map[*Call]struct{}),
		stop:  make(chan struct{}),
		// fits every SDP parser's integer type
		sessionID: func() uint64 { return rand.Uint64N(1 << 40) },
		monoEpoch: monoNow(),
		ksync:     kernelSync{dirty: map[*Call]struct{}{}, wake: make(chan struct{}, 1)},
	}
	if err := p.loadKernel(); err != nil {
		return nil, err
	}
	eng, err := newEngine(p, cfg.Workers)
	if err != nil {
		if p.kern != nil {
			p.kern.close()
		}
		return nil, err
	}
	p.eng = eng
	p.wg.Add(1)
	go p.supervise()
	if p.kern != nil {
		p.wg.Add(1)
		go p.syncLoop()
	}
	return p, nil
}

// loadKernel sets up the in-kernel path as Config.Kernel asks.
func (p *Proxy) loadKernel() error {
	if p.cfg.Kernel == KernelOff {
		p.kernWhy = "off"
		return nil
	}
	k, err := loadBPF(p.cfg.BindAddr, (p.cfg.PortMax-p.cfg.PortMin+1)/2)
	if err != nil {
		if p.cfg.Kernel == KernelOn {
			return fmt.Errorf("rtpproxy: in-kernel forwarding: %w", err)
		}
		p.kernWhy = err.Error()
		p.log.Info("in-kernel forwarding unavailable, relaying in userspace", "err", err)
		return nil
	}
	p.kern = k
	return nil
}

// now is the monotonic clock the relay threads stamp packets with.
func (p *Proxy) now() int64 { return int64(time.Since(p.epoch)) }

// Close ends every call, stops the relay threads and closes all sockets.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	calls := make([]*Call, 0, len(p.calls))
	for c := range p.calls {
		calls = append(calls, c)
	}
	p.mu.Unlock()
	for _, c := range calls {
		c.end(ErrClosed)
		c.Close()
	}
	close(p.stop)
	p.wg.Wait()
	p.eng.close()
	if p.kern != nil {
		return p.kern.close()
	}
	return nil
}

// CallConfig describes one call to NewCall.
type CallConfig struct {
	// ID names the call in logs (the SIP Call-ID, say).
	ID string
}

// NewCall creates a call whose lifetime is bounded by ctx: when ctx ends,
// or supervision sees dead media, Done is closed and Err tells why. Ports
// are taken when the first offer is rewritten and given back by Close.
func (p *Proxy) NewCall(ctx context.Context, cc CallConfig) (*Call, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	c := newCall(ctx, p, cc)
	p.calls[c] = struct{}{}
	return c, nil
}

func (p *Proxy) forget(c *Call) {
	p.mu.Lock()
	delete(p.calls, c)
	p.mu.Unlock()
}

// supervise ends calls whose media died (Config.MediaTimeout).
func (p *Proxy) supervise() {
	defer p.wg.Done()
	t := time.NewTicker(p.cfg.CheckInterval)
	defer t.Stop()
	var list []*Call
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		list = list[:0]
		p.mu.Lock()
		for c := range p.calls {
			list = append(list, c)
		}
		p.mu.Unlock()
		now := p.now()
		for _, c := range list {
			if err := c.checkMedia(now, int64(p.cfg.MediaTimeout)); err != nil {
				p.timeouts.Add(1)
				p.log.Info("media timeout", "call", c.id, "err", err)
				c.end(err)
			}
		}
	}
}

// Metrics is a snapshot of the proxy's counters for monitoring.
type Metrics struct {
	Calls         int    `json:"calls"`
	PortPairs     int    `json:"port_pairs"`      // pairs in the configured range
	PortPairsFree int    `json:"port_pairs_free"` // pairs ready for a new call
	Draining      int    `json:"draining"`        // pairs released, still draining
	Packets       uint64 `json:"packets"`         // relayed, in userspace and in the kernel
	Bytes         uint64 `json:"bytes"`           // relayed
	KernelStreams int    `json:"kernel_streams"`  // streams forwarded in the kernel now
	KernelPackets uint64 `json:"kernel_packets"`  // of Packets, forwarded in the kernel
	Dropped       uint64 `json:"dropped"`         // from strangers, invalid or unroutable
	DrainDropped  uint64 `json:"drain_dropped"`   // arrived on a draining port
	MediaTimeouts uint64 `json:"media_timeouts"`
}

// Metrics returns the current counters.
func (p *Proxy) Metrics() Metrics {
	p.mu.Lock()
	n := len(p.calls)
	p.mu.Unlock()
	m := Metrics{Calls: n, MediaTimeouts: p.timeouts.Load()}
	m.PortPairs, m.PortPairsFree = p.pool.size()
	m.Draining = int(p.eng.draining.Load())
	m.Packets, m.Bytes, m.Dropped, m.DrainDropped = p.eng.counters()
	if p.kern != nil {
		kp, kb := p.kern.totals()
		m.KernelPackets = kp
		m.Packets += kp
		m.Bytes += kb
		m.KernelStreams = int(p.kernStreams.Load())
	}
	return m
}
