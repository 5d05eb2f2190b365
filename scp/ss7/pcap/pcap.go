// Package pcap writes and reads signalling captures. The writer frames each
// M3UA message as it would travel on SCTP — an IP packet holding one SCTP
// DATA chunk with payload protocol identifier 3 — so that Wireshark and
// tshark dissect M3UA, SCCP, TCAP and CAP with no preferences, even when the
// association actually ran over TCP (tshark cannot dissect M3UA on TCP).
package pcap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/netip"
	"sync"
	"time"
)

// Link types (tcpdump.org link-layer header types).
const (
	LinkTypeEthernet = 1
	LinkTypeRaw      = 101 // raw IPv4 or IPv6
	LinkTypeUser0    = 147 // DLT_USER0: by our convention an M3UA message
	LinkTypeIPv4     = 228
	LinkTypeIPv6     = 229
)

const (
	protoSCTP     = 132
	chunkDATA     = 0
	ppidM3UA      = 3
	magicMicros   = 0xa1b2c3d4
	magicNanos    = 0xa1b23c4d
	maxRecordSize = 1 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Writer writes a pcap file of synthetic IP+SCTP frames. It is safe for
// concurrent use.
type Writer struct {
	mu  sync.Mutex
	w   io.Writer
	tsn map[[2]netip.AddrPort]uint32
	ssn map[[2]netip.AddrPort]uint16
	now func() time.Time
	err error
}

// NewWriter writes the file header and returns the writer.
func NewWriter(w io.Writer) (*Writer, error) {
	h := make([]byte, 24)
	binary.LittleEndian.PutUint32(h, magicMicros)
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], 65535)
	binary.LittleEndian.PutUint32(h[20:], LinkTypeRaw)
	if _, err := w.Write(h); err != nil {
		return nil, fmt.Errorf("pcap: header: %w", err)
	}
	return &Writer{w: w, tsn: map[[2]netip.AddrPort]uint32{}, ssn: map[[2]netip.AddrPort]uint16{}, now: time.Now}, nil
}

// WriteM3UA records one M3UA message sent from src to dst on an SCTP
// stream (RFC 4666 §1.4.7: management on stream 0, DATA on others).
func (w *Writer) WriteM3UA(src, dst netip.AddrPort, stream uint16, msg []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	flow := [2]netip.AddrPort{src, dst}
	w.tsn[flow]++
	ssn := w.ssn[flow]
	if stream != 0 {
		w.ssn[flow]++
	}
	pkt := Frame(src, dst, w.tsn[flow], stream, ssn, msg)
	ts := w.now()
	rec := make([]byte, 16, 16+len(pkt))
	binary.LittleEndian.PutUint32(rec, uint32(ts.Unix()))
	binary.LittleEndian.PutUint32(rec[4:], uint32(ts.Nanosecond()/1000))
	binary.LittleEndian.PutUint32(rec[8:], uint32(len(pkt)))
	binary.LittleEndian.PutUint32(rec[12:], uint32(len(pkt)))
	if _, err := w.w.Write(append(rec, pkt...)); err != nil {
		w.err = fmt.Errorf("pcap: %w", err)
	}
	return w.err
}

// Frame returns an IPv4 or IPv6 packet holding one SCTP DATA chunk (RFC 9260
// §3.3.1, flags B and E: an unfragmented message) with PPID 3.
func Frame(src, dst netip.AddrPort, tsn uint32, stream, ssn uint16, payload []byte) []byte {
	pad := (4 - len(payload)%4) % 4
	sctp := make([]byte, 12+16+len(payload)+pad)
	binary.BigEndian.PutUint16(sctp, src.Port())
	binary.BigEndian.PutUint16(sctp[2:], dst.Port())
	binary.BigEndian.PutUint32(sctp[4:], 1) // verification tag: any fixed value
	c := sctp[12:]
	c[0], c[1] = chunkDATA, 0x03
	binary.BigEndian.PutUint16(c[2:], uint16(16+len(payload)))
	binary.BigEndian.PutUint32(c[4:], tsn)
	binary.BigEndian.PutUint16(c[8:], stream)
	binary.BigEndian.PutUint16(c[10:], ssn)
	binary.BigEndian.PutUint32(c[12:], ppidM3UA)
	copy(c[16:], payload)
	// CRC32c over the packet with a zero checksum field, stored in the
	// byte order RFC 9260 Appendix A's reference code produces.
	binary.LittleEndian.PutUint32(sctp[8:], crc32.Checksum(sctp, castagnoli))

	s, d := src.Addr().Unmap(), dst.Addr().Unmap()
	if s.Is4() && d.Is4() {
		ip := make([]byte, 20, 20+len(sctp))
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(sctp)))
		binary.BigEndian.PutUint16(ip[6:], 0x4000) // don't fragment
		ip[8], ip[9] = 64, protoSCTP
		s4, d4 := s.As4(), d.As4()
		copy(ip[12:], s4[:])
		copy(ip[16:], d4[:])
		var sum uint32
		for i := 0; i < 20; i += 2 {
			sum += uint32(binary.BigEndian.Uint16(ip[i:]))
		}
		for sum > 0xffff {
			sum = sum&0xffff + sum>>16
		}
		binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
		return append(ip, sctp...)
	}
	ip := make([]byte, 40, 40+len(sctp))
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], uint16(len(sctp)))
	ip[6], ip[7] = protoSCTP, 64
	s16, d16 := src.Addr().As16(), dst.Addr().As16()
	copy(ip[8:], s16[:])
	copy(ip[24:], d16[:])
	return append(ip, sctp...)
}

// Packet is one M3UA message read from a capture.
type Packet struct {
	Time     time.Time
	Src, Dst netip.AddrPort // zero for link types without addresses
	Data     []byte
}

// Errors reading a capture.
var (
	ErrFormat = errors.New("pcap: not a pcap file")
	ErrLink   = errors.New("pcap: unsupported link type")
)

// ReadM3UA reads a classic pcap file and returns the M3UA messages in it:
// SCTP DATA chunks with PPID 3 in IPv4/IPv6 (raw, IPv4, IPv6 or Ethernet
// link types), or whole frames of link type 147 taken as M3UA. Frames that
// hold no M3UA are skipped.
func ReadM3UA(r io.Reader) ([]Packet, error) {
	var h [24]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	var bo binary.ByteOrder = binary.LittleEndian
	magic := bo.Uint32(h[:])
	switch magic {
	case magicMicros, magicNanos:
	default:
		bo = binary.BigEndian
		magic = bo.Uint32(h[:])
		if magic != magicMicros && magic != magicNanos {
			return nil, ErrFormat
		}
	}
	link := bo.Uint32(h[20:]) & 0x0fffffff
	switch link {
	case LinkTypeEthernet, LinkTypeRaw, LinkTypeIPv4, LinkTypeIPv6, LinkTypeUser0:
	default:
		return nil, fmt.Errorf("%w: %d", ErrLink, link)
	}
	var out []Packet
	for {
		var rh [16]byte
		if _, err := io.ReadFull(r, rh[:]); err == io.EOF {
			return out, nil
		} else if err != nil {
			return out, fmt.Errorf("pcap: record header: %w", err)
		}
		n := bo.Uint32(rh[8:])
		if n > maxRecordSize {
			return out, fmt.Errorf("pcap: record of %d octets", n)
		}
		frame := make([]byte, n)
		if _, err := io.ReadFull(r, frame); err != nil {
			return out, fmt.Errorf("pcap: record: %w", err)
		}
		frac := int64(bo.Uint32(rh[4:]))
		if magic == magicMicros {
			frac *= 1000
		}
		ts := time.Unix(int64(bo.Uint32(rh[:])), frac)
		if link == LinkTypeUser0 {
			out = append(out, Packet{Time: ts, Data: frame})
			continue
		}
		if link == LinkTypeEthernet {
			if len(frame) < 14 {
				continue
			}
			frame = frame[14:]
		}
		for _, p := range sctpData(frame) {
			p.Time = ts
			out = append(out, p)
		}
	}
}

// sctpData extracts PPID-3 DATA chunks from an IP packet; anything it
// cannot parse yields nothing.
func sctpData(ip []byte) []Packet {
	if len(ip) < 1 {
		return nil
	}
	var src, dst netip.Addr
	var body []byte
	switch ip[0] >> 4 {
	case 4:
		ihl := int(ip[0]&0x0f) * 4
		if len(ip) < 20 || ihl < 20 || len(ip) < ihl || ip[9] != protoSCTP {
			return nil
		}
		tot := int(binary.BigEndian.Uint16(ip[2:]))
		if tot < ihl || tot > len(ip) {
			return nil
		}
		src, dst = netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20]))
		body = ip[ihl:tot]
	case 6:
		if len(ip) < 40 || ip[6] != protoSCTP {
			return nil
		}
		pl := int(binary.BigEndian.Uint16(ip[4:]))
		if 40+pl > len(ip) {
			return nil
		}
		src, dst = netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40]))
		body = ip[40 : 40+pl]
	default:
		return nil
	}
	if len(body) < 12 {
		return nil
	}
	sp, dp := binary.BigEndian.Uint16(body), binary.BigEndian.Uint16(body[2:])
	var out []Packet
	for c := body[12:]; len(c) >= 4; {
		l := int(binary.BigEndian.Uint16(c[2:]))
		if l < 4 || l > len(c) {
			break
		}
		if c[0] == chunkDATA && l >= 16 && binary.BigEndian.Uint32(c[12:]) == ppidM3UA {
			out = append(out, Packet{Src: netip.AddrPortFrom(src, sp), Dst: netip.AddrPortFrom(dst, dp), Data: c[16:l]})
		}
		c = c[min((l+3)&^3, len(c)):]
	}
	return out
}
