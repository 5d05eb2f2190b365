package sip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

// Listen binds UDP and TCP on addr (the same port for both; port 0 picks
// one) and, when configured, TLS. Serve then answers on them. UDP is
// Config.UDPReaders sockets on the one port (SO_REUSEPORT, udp_readers.go),
// each read by a loop of its own.
func (s *Server) Listen(addr string) error {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("sip: listen address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("sip: listen port %q: %w", portStr, err)
	}
	readers := s.cfg.UDPReaders
	var udp []net.PacketConn
	var tcp net.Listener
	// With port 0 the kernel picks a UDP port that may be taken for TCP:
	// try a few times so both transports share one port.
	for attempt := 0; ; attempt++ {
		first, err := listenUDP(host, port, readers > 1)
		if err != nil {
			return fmt.Errorf("sip: %w", err) // net names the operation and the address
		}
		p := first.LocalAddr().(*net.UDPAddr).Port
		tcp, err = net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err == nil {
			udp = append(udp, first)
			break
		}
		first.Close()
		if port != 0 || attempt >= 10 {
			return fmt.Errorf("sip: %w", err)
		}
	}
	p := udp[0].LocalAddr().(*net.UDPAddr).Port
	for len(udp) < readers {
		u, err := listenUDP(host, p, true)
		if err != nil {
			closeAll(udp)
			tcp.Close()
			return fmt.Errorf("sip: listen udp %s (reader %d): %w", addr, len(udp)+1, err)
		}
		udp = append(udp, u)
	}
	for i, u := range udp {
		udp[i] = newCountingConn(s.tracedUDP(u)) // trace.go
	}
	lim := s.cfg.Conns.withDefaults()
	var tlsL net.Listener
	if s.cfg.TLSConfig != nil && s.cfg.TLSAddr != "" {
		raw, err := net.Listen("tcp", s.cfg.TLSAddr)
		if err != nil {
			closeAll(udp)
			tcp.Close()
			return fmt.Errorf("sip: tls: %w", err)
		}
		g := newGuardListener(raw, s.cfg.TLSConfig, lim, s.log.With("transport", "tls"), s.redial)
		g.flows, g.transport = &s.flows, "tls"
		tlsL = g
	}
	g := newGuardListener(tcp, nil, lim, s.log.With("transport", "tcp"), s.redial)
	g.flows, g.transport = &s.flows, "tcp"
	tcp = g
	tcp, tlsL = s.tracedStreams(tcp, tlsL) // trace.go
	s.log.Info("SIP stream connection limits", "max_conns", lim.MaxConns, "max_conns_per_source", lim.MaxConnsPerSource,
		"idle_timeout", lim.IdleTimeout, "message_timeout", lim.MessageTimeout)
	ua := udp[0].LocalAddr().(*net.UDPAddr)
	ln := &listeners{udp: udp, tcp: tcp, tls: tlsL, host: ua.IP.String(), port: ua.Port,
		laddr: sipmsg.Addr{IP: ua.IP, Port: ua.Port}}
	if ua.IP.IsUnspecified() {
		// A wildcard listener advertises the address that reaches the
		// outside; loopback is the safe default for a lab.
		ln.host = outboundIP()
	}
	ln.tlsPort = ln.port
	if tlsL != nil {
		ln.tlsPort = tlsL.Addr().(*net.TCPAddr).Port
	}
	if !s.ln.CompareAndSwap(nil, ln) {
		closeAll(udp)
		tcp.Close()
		if tlsL != nil {
			tlsL.Close()
		}
		return errors.New("sip: Listen called twice")
	}
	return nil
}

func outboundIP() string {
	c, err := net.Dial("udp", "192.0.2.1:9")
	if err != nil {
		return "127.0.0.1"
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP.String()
}

// Addr is the UDP/TCP address the server listens on, valid after Listen.
func (s *Server) Addr() netip.AddrPort {
	ln := s.ln.Load()
	if ln == nil {
		return netip.AddrPort{}
	}
	return ln.udp[0].LocalAddr().(*net.UDPAddr).AddrPort()
}

// TLSAddr is the SIP-over-TLS address, "" without TLS; valid after Listen.
func (s *Server) TLSAddr() string {
	ln := s.ln.Load()
	if ln == nil || ln.tls == nil {
		return ""
	}
	return ln.tls.Addr().String()
}

// Ready is closed once the server answers SIP.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Serve answers SIP on the listeners Listen opened until ctx is done. It
// closes the listeners and the transport when it returns; call Shutdown
// first for a graceful stop.
func (s *Server) Serve(ctx context.Context) error {
	ln := s.ln.Load()
	if ln == nil {
		return errors.New("sip: Serve before Listen")
	}
	udp, tcp, tlsL := ln.udp, ln.tcp, ln.tls
	errc := make(chan error, len(udp)+2)
	n := 0
	serve := func(f func() error) {
		n++
		go func() { errc <- f() }()
	}
	for _, u := range udp {
		serve(func() error { return s.srv.ServeUDP(u) })
	}
	serve(func() error { return s.srv.ServeTCP(tcp) })
	if tlsL != nil {
		serve(func() error { return s.srv.ServeTLS(tlsL) })
	}
	// Ready only once the UDP listener is in sipgo's pool: a request sent
	// from it before that would try to bind the port a second time.
	for i := 0; i < 1000; i++ {
		if c, _ := s.ua.TransportLayer().GetConnection("udp", udp[0].LocalAddr().String()); c != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	recCtx, stopRec := context.WithCancel(context.Background())
	recDone := make(chan struct{}, 3)
	go func() {
		defer func() { recDone <- struct{}{} }()
		if s.rec != nil {
			s.rec.run(recCtx)
		}
	}()
	go func() {
		defer func() { recDone <- struct{}{} }()
		if s.snaps != nil {
			s.snaps.run(recCtx)
		}
	}()
	go func() {
		defer func() { recDone <- struct{}{} }()
		s.over.watch(recCtx) // overload.go
	}()
	defer func() { stopRec(); <-recDone; <-recDone; <-recDone }()
	close(s.ready)
	s.log.Info("SIP listening", "udp", udp[0].LocalAddr().String(), "udp_readers", len(udp), "tcp", tcp.Addr().String(), "domain", s.cfg.Domain)
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		n--
		// A listener that ends on its own is SIP gone for good over it:
		// Serve returns the error so that the process can exit and be
		// restarted, rather than stay up deaf (the accept loops retry
		// every error but a close, listen_guard.go).
		if err == nil {
			err = errors.New("listener stopped")
		}
		s.log.Error("SIP listener stopped: SIP is down", "err", err)
	}
	closeAll(udp)
	tcp.Close()
	if tlsL != nil {
		tlsL.Close()
	}
	for ; n > 0; n-- {
		<-errc
	}
	s.ua.Close()
	if err != nil {
		return fmt.Errorf("sip: serve: %w", err)
	}
	return nil
}

// ListenAndServe is Listen then Serve.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	if err := s.Listen(addr); err != nil {
		return err
	}
	return s.Serve(ctx)
}

// FlushRecords waits until every call record so far is in the store.
func (s *Server) FlushRecords(ctx context.Context) error { return s.rec.flush(ctx) }

// ActiveCalls is the number of calls in progress.
func (s *Server) ActiveCalls() int { return int(s.live.Load()) }

// Shutdown stops the server gracefully in two phases (the pattern of
// livekit/sip and Caddy): new INVITEs get 503 with Retry-After at once and
// live calls run on until they end; when ctx is done before that, every
// live call is ended with BYE (or CANCEL) and Shutdown waits for them to
// wind down before it returns ctx's error. Serve keeps running: cancel its
// context afterwards.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		n := s.ActiveCalls()
		if n == 0 {
			// No call is left to send anything: work that would start
			// from now on is refused, so the wait below ends.
			s.wg.Close()
			if err := s.wg.Wait(ctx); err != nil {
				return err
			}
			return s.rec.flush(ctx)
		}
		select {
		case <-s.idle:
		case <-tick.C:
			s.log.Info("draining: waiting for live calls", "calls", n)
		case <-ctx.Done():
			s.log.Warn("draining cut short: ending live calls", "calls", n)
			s.hangupAll()
			// The calls' BYEs and CANCELs are bounded by Timer B/F.
			wctx, cancel := context.WithTimeout(context.Background(), 64*sipmsg.T1)
			_ = s.wg.Wait(wctx)
			cancel()
			s.wg.Close()
			return ctx.Err()
		}
	}
}

func (s *Server) hangupAll() {
	s.mu.Lock()
	list := make([]*session, 0, len(s.calls))
	for c := range s.calls {
		list = append(list, c)
	}
	s.mu.Unlock()
	for _, c := range list {
		c.post(func() {
			c.hangup("shutdown", &Failure{Status: 503, Cause: CauseNormalClearing, Text: "service shutting down", RetryAfter: int(s.cfg.RetryAfter / time.Second)})
		})
	}
}
