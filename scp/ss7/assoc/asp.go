package assoc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imcall/b2bua/scp/ss7/m3ua"
	"github.com/imcall/b2bua/scp/ss7/pcap"
)

// ErrNotActive reports that the association is not up.
var ErrNotActive = errors.New("assoc: association not active")

// ASPConfig configures the client (ASP) side of an association.
type ASPConfig struct {
	Network string // TCP or SCTP
	Addr    string // host:port of the SGP or peer IPSP
	// RoutingContext is sent in ASPAC and DATA; 0 omits it.
	RoutingContext uint32
	ASPID          uint32 // 0 omits the ASP identifier
	// TrafficMode for ASPAC; 0 means override.
	TrafficMode uint32
	// Beat is the BEAT interval; the association is dropped when nothing
	// arrives for three intervals. 0 means 10 s; negative disables BEAT.
	Beat time.Duration
	// HandshakeTimeout bounds dialling plus ASPUP/ASPAC; 0 means 5 s.
	HandshakeTimeout time.Duration
	// MinBackoff and MaxBackoff bound the reconnect delay, doubled after
	// each failure; 0 means 100 ms and 5 s.
	MinBackoff, MaxBackoff time.Duration
	// OnData receives the protocol data of every DATA message, on the
	// association's read goroutine: it must not block.
	OnData func(m3ua.ProtocolData)
	// OnDown is called when an active association goes down.
	OnDown func(error)
	Pcap   *pcap.Writer
	Logger *slog.Logger
}

// ASP keeps one association up and sends DATA on it.
type ASP struct {
	cfg    ASPConfig
	log    *slog.Logger
	conn   atomic.Pointer[activeConn]
	cancel context.CancelFunc
	done   chan struct{}
	beatN  atomic.Uint32
	upOnce sync.Once
	up     chan struct{}
}

type activeConn struct{ c Conn }

// NewASP validates the configuration (including kernel SCTP support) and
// starts connecting in the background.
func NewASP(cfg ASPConfig) (*ASP, error) {
	if err := CheckNetwork(cfg.Network); err != nil {
		return nil, err
	}
	if cfg.Addr == "" {
		return nil, errors.New("assoc: no address")
	}
	if cfg.OnData == nil {
		return nil, errors.New("assoc: no data handler")
	}
	if cfg.TrafficMode == 0 {
		cfg.TrafficMode = m3ua.TrafficOverride
	}
	if cfg.Beat == 0 {
		cfg.Beat = 10 * time.Second
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 5 * time.Second
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(5*time.Second, cfg.MinBackoff)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &ASP{cfg: cfg, log: cfg.Logger.With("peer", cfg.Addr), cancel: cancel, done: make(chan struct{}), up: make(chan struct{})}
	go a.run(ctx)
	return a, nil
}

// WaitUp blocks until the association has been active once, or ctx ends.
func (a *ASP) WaitUp(ctx context.Context) error {
	select {
	case <-a.up:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Active reports whether the association is up now.
func (a *ASP) Active() bool { return a.conn.Load() != nil }

// Send sends one DATA message. It fails at once when the association is
// down: a caller waiting for an answer should not wait for a reconnect.
func (a *ASP) Send(pd m3ua.ProtocolData) error {
	ac := a.conn.Load()
	if ac == nil {
		return ErrNotActive
	}
	msg := m3ua.Data(a.cfg.RoutingContext, pd).Encode()
	if err := ac.c.WriteMsg(msg, 1); err != nil {
		// The read loop notices the broken transport and reconnects.
		return fmt.Errorf("%w: %w", ErrNotActive, err)
	}
	return nil
}

// Close takes the association down (ASPIA, ASPDN, best effort) and stops
// reconnecting.
func (a *ASP) Close() error {
	if ac := a.conn.Load(); ac != nil {
		_ = ac.c.WriteMsg(m3ua.ASPActive(m3ua.TypeASPIA, 0, a.cfg.RoutingContext).Encode(), 0)
		_ = ac.c.WriteMsg(m3ua.Message{Class: m3ua.ClassASPSM, Type: m3ua.TypeASPDN}.Encode(), 0)
	}
	a.cancel()
	<-a.done
	return nil
}

func (a *ASP) run(ctx context.Context) {
	defer close(a.done)
	backoff := a.cfg.MinBackoff
	for ctx.Err() == nil {
		c, err := a.connect(ctx)
		if err != nil {
			a.log.Debug("m3ua association failed", "err", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, a.cfg.MaxBackoff)
			continue
		}
		backoff = a.cfg.MinBackoff
		a.log.Info("m3ua association active", "local", c.LocalAddr())
		a.conn.Store(&activeConn{c})
		a.upOnce.Do(func() { close(a.up) })
		err = a.serve(ctx, c)
		a.conn.Store(nil)
		c.Close()
		if ctx.Err() != nil {
			err = ErrNotActive
		}
		a.log.Warn("m3ua association down", "err", err)
		if a.cfg.OnDown != nil {
			a.cfg.OnDown(err)
		}
	}
}

// connect dials and runs the ASP handshake (RFC 4666 §4.3.4.1, §4.3.4.3):
// ASPUP → ASPUP_ACK, then ASPAC → ASPAC_ACK; NTFY may arrive in between.
func (a *ASP) connect(ctx context.Context) (Conn, error) {
	hctx, cancel := context.WithTimeout(ctx, a.cfg.HandshakeTimeout)
	defer cancel()
	raw, err := Dial(hctx, a.cfg.Network, a.cfg.Addr)
	if err != nil {
		return nil, err
	}
	c := Tap(raw, a.cfg.Pcap)
	stop := context.AfterFunc(hctx, func() { c.Close() })
	defer stop()
	steps := []struct {
		send m3ua.Message
		want [2]uint8
	}{
		{m3ua.ASPUp(a.cfg.ASPID), [2]uint8{m3ua.ClassASPSM, m3ua.TypeASPUPAck}},
		{m3ua.ASPActive(m3ua.TypeASPAC, a.cfg.TrafficMode, a.cfg.RoutingContext), [2]uint8{m3ua.ClassASPTM, m3ua.TypeASPACAck}},
	}
	for _, st := range steps {
		if err := c.WriteMsg(st.send.Encode(), 0); err != nil {
			c.Close()
			return nil, err
		}
		for {
			b, err := c.ReadMsg()
			if err != nil {
				c.Close()
				if hctx.Err() != nil {
					return nil, fmt.Errorf("assoc: handshake: %w", hctx.Err())
				}
				return nil, err
			}
			m, err := m3ua.Decode(b)
			if err != nil {
				c.Close()
				return nil, err
			}
			if m.Is(st.want[0], st.want[1]) {
				break
			}
			if m.Is(m3ua.ClassMGMT, m3ua.TypeERR) {
				code, _ := m.Uint32(m3ua.TagErrorCode)
				c.Close()
				return nil, fmt.Errorf("assoc: peer refused %s: error 0x%02x", st.send.Name(), code)
			}
			// NTFY and anything else before the ACK is informational.
		}
	}
	if !stop() {
		c.Close()
		return nil, hctx.Err()
	}
	return c, nil
}

// serve reads until the transport fails; a BEAT goroutine drops the
// association when the peer goes silent.
func (a *ASP) serve(ctx context.Context, c Conn) error {
	var lastRx atomic.Int64
	lastRx.Store(time.Now().UnixNano())
	var wg sync.WaitGroup
	stop := make(chan struct{})
	defer func() { close(stop); wg.Wait() }()
	if a.cfg.Beat > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(a.cfg.Beat)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					c.Close()
					return
				case <-t.C:
				}
				if time.Since(time.Unix(0, lastRx.Load())) > 3*a.cfg.Beat {
					a.log.Warn("m3ua peer silent, dropping association")
					c.Close()
					return
				}
				_ = c.WriteMsg(m3ua.Beat(m3ua.TypeBEAT, m3ua.U32(a.beatN.Add(1))).Encode(), 0)
			}
		}()
	} else {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-stop:
			case <-ctx.Done():
				c.Close()
			}
		}()
	}
	for {
		b, err := c.ReadMsg()
		if err != nil {
			return err
		}
		lastRx.Store(time.Now().UnixNano())
		m, err := m3ua.Decode(b)
		if err != nil {
			a.log.Warn("m3ua: undecodable message", "err", err)
			_ = c.WriteMsg(m3ua.Error(m3ua.ErrCodeProtocolError).Encode(), 0)
			continue
		}
		switch {
		case m.Is(m3ua.ClassXFER, m3ua.TypeDATA):
			pd, err := m3ua.DataOf(m)
			if err != nil {
				_ = c.WriteMsg(m3ua.Error(m3ua.ErrCodeMissingParameter).Encode(), 0)
				continue
			}
			a.cfg.OnData(pd)
		case m.Is(m3ua.ClassASPSM, m3ua.TypeBEAT):
			hb, _ := m.Param(m3ua.TagHeartbeatData)
			_ = c.WriteMsg(m3ua.Beat(m3ua.TypeBEATAck, hb).Encode(), 0)
		case m.Is(m3ua.ClassASPSM, m3ua.TypeBEATAck):
		case m.Is(m3ua.ClassMGMT, m3ua.TypeERR), m.Is(m3ua.ClassMGMT, m3ua.TypeNTFY), m.Class == m3ua.ClassSSNM:
			a.log.Info("m3ua management", "msg", m.Name())
		case m.Is(m3ua.ClassASPSM, m3ua.TypeASPDNAck), m.Is(m3ua.ClassASPTM, m3ua.TypeASPIAAck):
			// The peer took us down (RFC 4666 §4.3.4.2): reconnect.
			return fmt.Errorf("assoc: peer sent %s", m.Name())
		default:
			a.log.Debug("m3ua: ignored", "msg", m.Name())
		}
	}
}
