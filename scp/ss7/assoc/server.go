package assoc

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"

	"github.com/imcall/b2bua/scp/ss7/m3ua"
	"github.com/imcall/b2bua/scp/ss7/pcap"
)

// Reply sends protocol data back on the association a DATA arrived on.
type Reply func(m3ua.ProtocolData) error

// ServerConfig configures the server (SGP/IPSP) side.
type ServerConfig struct {
	// RoutingContext, when not 0, is the only one accepted in ASPAC and
	// DATA (RFC 4666 §3.8.1: ERR invalid routing context otherwise).
	RoutingContext uint32
	// Handler receives each DATA's protocol data, on its own goroutine,
	// and may answer through reply.
	Handler func(ctx context.Context, pd m3ua.ProtocolData, reply Reply)
	Pcap    *pcap.Writer
	Logger  *slog.Logger
}

// Server answers ASPs and hands their DATA to a handler.
type Server struct {
	cfg    ServerConfig
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	lns    map[Listener]struct{}
	conns  map[Conn]struct{}
	wg     sync.WaitGroup
}

// NewServer returns a server; Serve starts it on a listener.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Handler == nil {
		return nil, errors.New("assoc: no handler")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{cfg: cfg, log: cfg.Logger, ctx: ctx, cancel: cancel,
		lns: map[Listener]struct{}{}, conns: map[Conn]struct{}{}}, nil
}

// Serve accepts associations until the listener fails or Close is called;
// after Close it returns nil.
func (s *Server) Serve(ln Listener) error {
	s.mu.Lock()
	if s.ctx.Err() != nil {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.lns[ln] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	for {
		raw, err := ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		c := Tap(raw, s.cfg.Pcap)
		s.mu.Lock()
		if s.ctx.Err() != nil {
			s.mu.Unlock()
			c.Close()
			return nil
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serveConn(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		}()
	}
}

// Close stops accepting, drops every association and waits for handlers.
func (s *Server) Close() error {
	s.mu.Lock()
	s.cancel()
	for ln := range s.lns {
		ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// ASP states as seen by the server (RFC 4666 §4.3.1).
const (
	aspDown = iota
	aspInactive
	aspActive
)

func (s *Server) serveConn(c Conn) {
	log := s.log.With("asp", c.RemoteAddr())
	log.Info("m3ua association accepted")
	state := aspDown
	send := func(m m3ua.Message) { _ = c.WriteMsg(m.Encode(), 0) }
	var handlers sync.WaitGroup
	defer handlers.Wait()
	reply := func(pd m3ua.ProtocolData) error {
		return c.WriteMsg(m3ua.Data(s.cfg.RoutingContext, pd).Encode(), 1)
	}
	for {
		b, err := c.ReadMsg()
		if err != nil {
			log.Info("m3ua association closed", "err", err)
			return
		}
		m, err := m3ua.Decode(b)
		if err != nil {
			log.Warn("m3ua: undecodable message", "err", err)
			send(m3ua.Error(m3ua.ErrCodeProtocolError))
			continue
		}
		rcOK := func() bool {
			rc, ok := m.Uint32(m3ua.TagRoutingContext)
			if ok && s.cfg.RoutingContext != 0 && rc != s.cfg.RoutingContext {
				send(m3ua.Error(m3ua.ErrCodeInvalidRoutingCtx))
				return false
			}
			return true
		}
		switch {
		case m.Is(m3ua.ClassASPSM, m3ua.TypeASPUP):
			state = aspInactive
			send(m3ua.Message{Class: m3ua.ClassASPSM, Type: m3ua.TypeASPUPAck})
		case m.Is(m3ua.ClassASPSM, m3ua.TypeASPDN):
			state = aspDown
			send(m3ua.Message{Class: m3ua.ClassASPSM, Type: m3ua.TypeASPDNAck})
		case m.Is(m3ua.ClassASPSM, m3ua.TypeBEAT):
			hb, _ := m.Param(m3ua.TagHeartbeatData)
			send(m3ua.Beat(m3ua.TypeBEATAck, hb))
		case m.Is(m3ua.ClassASPSM, m3ua.TypeBEATAck):
		case m.Is(m3ua.ClassASPTM, m3ua.TypeASPAC):
			if state == aspDown {
				// RFC 4666 §4.3.4.3: ASPAC from an ASP that is down.
				send(m3ua.Error(m3ua.ErrCodeUnexpectedMessage))
				continue
			}
			if !rcOK() {
				continue
			}
			mode, _ := m.Uint32(m3ua.TagTrafficModeType)
			rc, _ := m.Uint32(m3ua.TagRoutingContext)
			state = aspActive
			send(m3ua.ASPActive(m3ua.TypeASPACAck, mode, rc))
			send(m3ua.Notify(m3ua.StatusTypeASStateChange, m3ua.StatusASActive, rc))
		case m.Is(m3ua.ClassASPTM, m3ua.TypeASPIA):
			if state == aspActive {
				state = aspInactive
			}
			rc, _ := m.Uint32(m3ua.TagRoutingContext)
			send(m3ua.ASPActive(m3ua.TypeASPIAAck, 0, rc))
		case m.Is(m3ua.ClassXFER, m3ua.TypeDATA):
			if state != aspActive {
				send(m3ua.Error(m3ua.ErrCodeUnexpectedMessage))
				continue
			}
			if !rcOK() {
				continue
			}
			pd, err := m3ua.DataOf(m)
			if err != nil {
				send(m3ua.Error(m3ua.ErrCodeMissingParameter))
				continue
			}
			handlers.Add(1)
			go func() {
				defer handlers.Done()
				s.cfg.Handler(s.ctx, pd, reply)
			}()
		case m.Class == m3ua.ClassMGMT:
			log.Info("m3ua management", "msg", m.Name())
		case m.Class > m3ua.ClassASPTM && m.Class != m3ua.ClassRKM:
			send(m3ua.Error(m3ua.ErrCodeUnsupportedClass))
		default:
			send(m3ua.Error(m3ua.ErrCodeUnsupportedType))
		}
	}
}
