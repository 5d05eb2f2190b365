package siptrace

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"strings"

	"github.com/imcall/b2bua/sip"
)

// HEPConfig configures a HEP sender.
type HEPConfig struct {
	// Target is "udp:HOST:PORT", the collector (Homer's heplify-server,
	// heplify's own server, tshark on a port decoded as HEP).
	Target string
	// CaptureID names this node to the collector (HEP chunk 0x000c).
	CaptureID uint32
	// Logger reports dropped messages and send failures; nil: discarded.
	Logger *slog.Logger
}

// HEP sends every message to a HEP version 3 collector over UDP.
type HEP struct {
	conn net.Conn
	id   uint32
	q    *queue
	buf  []byte // the writer goroutine's
	log  *slog.Logger
	fail int
}

// DialHEP validates cfg and opens the socket towards the collector.
func DialHEP(cfg HEPConfig) (*HEP, error) {
	network, addr, ok := strings.Cut(cfg.Target, ":")
	if !ok || network != "udp" {
		return nil, fmt.Errorf("hep: %q: want udp:HOST:PORT", cfg.Target)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("hep: %q: want udp:HOST:PORT: %w", cfg.Target, err)
	}
	c, err := net.Dial("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("hep: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &HEP{conn: c, id: cfg.CaptureID, log: log}
	h.q = newQueue(log, h.send, func() {})
	return h, nil
}

// TraceSIP queues m for the collector.
func (h *HEP) TraceSIP(m sip.WireMessage) { h.q.put(m) }

// Close sends what is queued and closes the socket.
func (h *HEP) Close() error {
	h.q.close()
	return h.conn.Close()
}

// Dropped is how many messages were not sent because the queue was full.
func (h *HEP) Dropped() uint64 { return h.q.Dropped() }

func (h *HEP) send(m sip.WireMessage) {
	if len(m.Data) > maxPayload {
		return // past HEP's 16-bit length
	}
	h.buf = AppendHEP(h.buf[:0], m, h.id)
	if _, err := h.conn.Write(h.buf); err != nil {
		// A collector not listening gives ECONNREFUSED on the next
		// write; say so once in a while, not per message.
		if h.fail%1000 == 0 {
			h.log.Warn("HEP send failed", "err", err)
		}
		h.fail++
	}
}

// HEP v3 chunk types (generic vendor 0), from the HEP3 specification
// (sipcapture.org, "HEP3 Network Protocol Specification").
const (
	hepFamily    = 0x0001 // uint8: 2 AF_INET, 10 AF_INET6
	hepProto     = 0x0002 // uint8: IP protocol, 17 UDP, 6 TCP
	hepSrcIP4    = 0x0003
	hepDstIP4    = 0x0004
	hepSrcIP6    = 0x0005
	hepDstIP6    = 0x0006
	hepSrcPort   = 0x0007 // uint16
	hepDstPort   = 0x0008 // uint16
	hepTimeSec   = 0x0009 // uint32
	hepTimeUsec  = 0x000a // uint32
	hepProtoType = 0x000b // uint8: 1 SIP
	hepCaptureID = 0x000c // uint32
	hepPayload   = 0x000f
)

// AppendHEP appends the HEP v3 packet of m to b: the "HEP3" header with the
// total length, then the chunks (vendor 0, type, length including the
// 6-byte chunk header, value), all big-endian.
func AppendHEP(b []byte, m sip.WireMessage, captureID uint32) []byte {
	src, dst := endpoints(m)
	start := len(b)
	b = append(b, 'H', 'E', 'P', '3', 0, 0)
	chunk := func(typ uint16, v []byte) {
		b = binary.BigEndian.AppendUint16(b, 0)
		b = binary.BigEndian.AppendUint16(b, typ)
		b = binary.BigEndian.AppendUint16(b, uint16(6+len(v)))
		b = append(b, v...)
	}
	u16 := func(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
	u32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	if is4(src, dst) {
		chunk(hepFamily, []byte{2})
	} else {
		chunk(hepFamily, []byte{10})
	}
	chunk(hepProto, []byte{ipProto(m.Transport)})
	if is4(src, dst) {
		s, d := src.Addr().As4(), dst.Addr().As4()
		chunk(hepSrcIP4, s[:])
		chunk(hepDstIP4, d[:])
	} else {
		s, d := src.Addr().As16(), dst.Addr().As16()
		chunk(hepSrcIP6, s[:])
		chunk(hepDstIP6, d[:])
	}
	chunk(hepSrcPort, u16(src.Port()))
	chunk(hepDstPort, u16(dst.Port()))
	chunk(hepTimeSec, u32(uint32(m.Time.Unix())))
	chunk(hepTimeUsec, u32(uint32(m.Time.Nanosecond()/1000)))
	chunk(hepProtoType, []byte{1})
	chunk(hepCaptureID, u32(captureID))
	chunk(hepPayload, m.Data)
	binary.BigEndian.PutUint16(b[start+4:], uint16(len(b)-start))
	return b
}

var _ sip.Tracer = (*HEP)(nil)
