package siptrace

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/netip"
	"os"

	"github.com/imcall/b2bua/sip"
)

// Pcap writes every message to a pcap file (the classic format, Ethernet
// link type), each as the IP packet it was or, for TCP and TLS, as one
// TCP segment of its connection with the message in plaintext, so that
// Wireshark and sngrep decode it as SIP. The file is flushed whenever the
// queue runs empty, so a reader sees calls while they happen.
type Pcap struct {
	f   *os.File
	w   *bufio.Writer
	q   *queue
	seq map[flow]uint32 // next sequence number of each TCP direction
	buf []byte
	log *slog.Logger
	err error
}

type flow struct{ src, dst netip.AddrPort }

// pcap link type and limits (tcpdump.org/linktypes.html).
const (
	linkEthernet = 1
	snapLen      = 65535
	// maxPayload keeps the IP packet within its 16-bit length.
	maxPayload = 65535 - 40 - 20
)

// CreatePcap creates (or truncates) path and writes its file header.
func CreatePcap(path string, log *slog.Logger) (*Pcap, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600) // SIP carries user names and numbers
	if err != nil {
		return nil, fmt.Errorf("sip pcap: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Pcap{f: f, w: bufio.NewWriterSize(f, 64<<10), seq: map[flow]uint32{}, log: log}
	hdr := binary.LittleEndian.AppendUint32(nil, 0xa1b2c3d4) // microsecond timestamps
	hdr = binary.LittleEndian.AppendUint16(hdr, 2)
	hdr = binary.LittleEndian.AppendUint16(hdr, 4)
	hdr = binary.LittleEndian.AppendUint32(hdr, 0) // thiszone
	hdr = binary.LittleEndian.AppendUint32(hdr, 0) // sigfigs
	hdr = binary.LittleEndian.AppendUint32(hdr, snapLen)
	hdr = binary.LittleEndian.AppendUint32(hdr, linkEthernet)
	if _, err := p.w.Write(hdr); err != nil {
		f.Close()
		return nil, fmt.Errorf("sip pcap: %w", err)
	}
	if err := p.w.Flush(); err != nil {
		f.Close()
		return nil, fmt.Errorf("sip pcap: %w", err)
	}
	p.q = newQueue(log, p.write, p.flush)
	return p, nil
}

// TraceSIP queues m for the file.
func (p *Pcap) TraceSIP(m sip.WireMessage) { p.q.put(m) }

// Close writes what is queued and closes the file.
func (p *Pcap) Close() error {
	p.q.close()
	if err := p.f.Close(); err != nil && p.err == nil {
		p.err = err
	}
	return p.err
}

// Dropped is how many messages were not written because the queue was full.
func (p *Pcap) Dropped() uint64 { return p.q.Dropped() }

func (p *Pcap) flush() {
	if err := p.w.Flush(); err != nil && p.err == nil {
		p.err = err
		p.log.Warn("SIP pcap not written", "err", err)
	}
}

func (p *Pcap) write(m sip.WireMessage) {
	if len(m.Data) > maxPayload || p.err != nil {
		return
	}
	src, dst := endpoints(m)
	var seq, ack uint32
	if ipProto(m.Transport) == protoTCP {
		fl := flow{src, dst}
		seq, ack = p.seq[fl], p.seq[flow{dst, src}]
		if seq == 0 {
			seq = 1
		}
		if ack == 0 {
			ack = 1
		}
		p.seq[fl] = seq + uint32(len(m.Data))
	}
	p.buf = appendFrame(p.buf[:0], m, src, dst, seq, ack)
	rec := binary.LittleEndian.AppendUint32(nil, uint32(m.Time.Unix()))
	rec = binary.LittleEndian.AppendUint32(rec, uint32(m.Time.Nanosecond()/1000))
	rec = binary.LittleEndian.AppendUint32(rec, uint32(len(p.buf)))
	rec = binary.LittleEndian.AppendUint32(rec, uint32(len(p.buf)))
	if _, err := p.w.Write(rec); err == nil {
		_, err = p.w.Write(p.buf)
		if err != nil && p.err == nil {
			p.err = err
		}
	}
}

var _ sip.Tracer = (*Pcap)(nil)
