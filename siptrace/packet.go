package siptrace

import (
	"encoding/binary"
	"net/netip"

	"github.com/imcall/b2bua/sip"
)

const (
	protoTCP = 6
	protoUDP = 17
)

// endpoints gives the sender and the receiver of m.
func endpoints(m sip.WireMessage) (src, dst netip.AddrPort) {
	l := netip.AddrPortFrom(m.Local.Addr().Unmap(), m.Local.Port())
	r := netip.AddrPortFrom(m.Remote.Addr().Unmap(), m.Remote.Port())
	if m.Out {
		return l, r
	}
	return r, l
}

// is4 is whether both ends are IPv4 (an unknown end counts as either).
func is4(src, dst netip.AddrPort) bool {
	return (src.Addr().Is4() || !src.Addr().IsValid()) && (dst.Addr().Is4() || !dst.Addr().IsValid())
}

func ipProto(transport string) uint8 {
	if transport == "udp" {
		return protoUDP
	}
	return protoTCP
}

// Ethernet addresses of the frames: locally administered (RFC 7042 §2.1),
// so no reader takes them for a real interface's.
var (
	macSrc = []byte{0x02, 0, 0, 0, 0, 0x01}
	macDst = []byte{0x02, 0, 0, 0, 0, 0x02}
)

// appendFrame appends the Ethernet frame of m: IPv4 or IPv6, then UDP or a
// TCP segment (PSH|ACK, seq and ack as given), with valid checksums.
func appendFrame(b []byte, m sip.WireMessage, src, dst netip.AddrPort, seq, ack uint32) []byte {
	v4 := is4(src, dst)
	b = append(b, macDst...)
	b = append(b, macSrc...)
	if v4 {
		b = binary.BigEndian.AppendUint16(b, 0x0800)
	} else {
		b = binary.BigEndian.AppendUint16(b, 0x86dd)
	}
	proto := ipProto(m.Transport)
	l4 := 8
	if proto == protoTCP {
		l4 = 20
	}
	l4len := l4 + len(m.Data)
	sa, da := addrBytes(src.Addr(), v4), addrBytes(dst.Addr(), v4)
	if v4 {
		ip := len(b)
		b = append(b, 0x45, 0)
		b = binary.BigEndian.AppendUint16(b, uint16(20+l4len))
		b = append(b, 0, 0, 0x40, 0, 64, proto, 0, 0) // id 0, DF, TTL 64, checksum below
		b = append(b, sa...)
		b = append(b, da...)
		binary.BigEndian.PutUint16(b[ip+10:], checksum(b[ip:ip+20], 0))
	} else {
		b = append(b, 0x60, 0, 0, 0)
		b = binary.BigEndian.AppendUint16(b, uint16(l4len))
		b = append(b, proto, 64)
		b = append(b, sa...)
		b = append(b, da...)
	}
	seg := len(b)
	b = binary.BigEndian.AppendUint16(b, src.Port())
	b = binary.BigEndian.AppendUint16(b, dst.Port())
	csum := 0
	if proto == protoUDP {
		b = binary.BigEndian.AppendUint16(b, uint16(l4len))
		csum = len(b)
		b = append(b, 0, 0)
	} else {
		b = binary.BigEndian.AppendUint32(b, seq)
		b = binary.BigEndian.AppendUint32(b, ack)
		b = append(b, 5<<4, 0x18) // header 20 bytes; PSH, ACK
		b = binary.BigEndian.AppendUint16(b, 65535)
		csum = len(b)
		b = append(b, 0, 0, 0, 0) // checksum, urgent pointer
	}
	b = append(b, m.Data...)
	// The pseudo-header sum (RFC 768, RFC 793 §3.1, RFC 8200 §8.1).
	var pseudo uint32
	for _, a := range [][]byte{sa, da} {
		for i := 0; i < len(a); i += 2 {
			pseudo += uint32(binary.BigEndian.Uint16(a[i:]))
		}
	}
	pseudo += uint32(proto) + uint32(l4len)
	c := checksum(b[seg:], pseudo)
	if proto == protoUDP && c == 0 {
		c = 0xffff // 0 means "no checksum" in UDP
	}
	binary.BigEndian.PutUint16(b[csum:], c)
	return b
}

func addrBytes(a netip.Addr, v4 bool) []byte {
	if v4 {
		if !a.IsValid() {
			return make([]byte, 4)
		}
		b := a.As4()
		return b[:]
	}
	b := a.As16()
	return b[:]
}

// checksum is the Internet checksum (RFC 1071) of b, starting from sum.
func checksum(b []byte, sum uint32) uint16 {
	for len(b) >= 2 {
		sum += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}
