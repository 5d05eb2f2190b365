package cap

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Routing number indicators we send with an IP address: network-specific
// NAI and private numbering plan. [non-standard meaning] The decoder does
// not rely on them.
const (
	RoutingNAI = 5
	RoutingNPI = 5
)

// DefaultRoutingPrefix is the routing number prefix both sides use unless
// configured otherwise.
const DefaultRoutingPrefix = "9"

// EncodeRoutingNumber carries an IPv4 address and port in a routing number:
// prefix, the four octets as three digits each, the port as five digits
// (192.0.2.10:5060 with prefix 9 → 919200000201005060). [non-standard]
// An IPv6 address yields the prefix, twelve zeros and the port; the address
// itself then travels in the OIDAddress extension.
func EncodeRoutingNumber(prefix string, ap netip.AddrPort) (Number, error) {
	if !ap.IsValid() || ap.Port() == 0 {
		return Number{}, fmt.Errorf("%w: address %v", ErrValue, ap)
	}
	var sb strings.Builder
	sb.WriteString(prefix)
	if a := ap.Addr().Unmap(); a.Is4() {
		for _, o := range a.As4() {
			fmt.Fprintf(&sb, "%03d", o)
		}
	} else {
		sb.WriteString("000000000000")
	}
	fmt.Fprintf(&sb, "%05d", ap.Port())
	return Number{NAI: RoutingNAI, NPI: RoutingNPI, Digits: sb.String()}, nil
}

// DecodeRoutingNumber is the inverse of EncodeRoutingNumber for IPv4. The
// prefix must match, each octet be ≤ 255 and the port 1..65535; anything
// else is an error, never a guess.
func DecodeRoutingNumber(prefix string, n Number) (netip.AddrPort, error) {
	d, ok := strings.CutPrefix(n.Digits, prefix)
	if !ok || len(d) != 17 {
		return netip.AddrPort{}, fmt.Errorf("%w: routing number %q is not %s+17 digits", ErrValue, n.Digits, prefix)
	}
	var ip [4]byte
	for i := range 4 {
		v, err := strconv.ParseUint(d[3*i:3*i+3], 10, 8)
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("%w: routing number octet %q", ErrValue, d[3*i:3*i+3])
		}
		ip[i] = byte(v)
	}
	port, err := strconv.ParseUint(d[12:], 10, 16)
	if err != nil || port == 0 {
		return netip.AddrPort{}, fmt.Errorf("%w: routing number port %q", ErrValue, d[12:])
	}
	return netip.AddrPortFrom(netip.AddrFrom4(ip), uint16(port)), nil
}

// AddressExtension carries an address and port in an extension field.
// [non-standard]
func AddressExtension(ap netip.AddrPort) Extension {
	a := ap.Addr().Unmap()
	v := a.AsSlice()
	return Extension{OID: OIDAddress, Value: binary.BigEndian.AppendUint16(v, ap.Port())}
}

// DecodeAddressExtension is the inverse of AddressExtension.
func DecodeAddressExtension(v []byte) (netip.AddrPort, error) {
	if len(v) != 6 && len(v) != 18 {
		return netip.AddrPort{}, fmt.Errorf("%w: address extension of %d octets", ErrValue, len(v))
	}
	a, _ := netip.AddrFromSlice(v[:len(v)-2])
	port := binary.BigEndian.Uint16(v[len(v)-2:])
	if port == 0 {
		return netip.AddrPort{}, fmt.Errorf("%w: address extension port 0", ErrValue)
	}
	return netip.AddrPortFrom(a, port), nil
}

// ConnectTo builds the Connect argument that routes to ap: the routing
// number always (destinationRoutingAddress is mandatory), plus the
// extension for IPv6.
func ConnectTo(prefix string, ap netip.AddrPort) (ConnectArg, error) {
	n, err := EncodeRoutingNumber(prefix, ap)
	if err != nil {
		return ConnectArg{}, err
	}
	c := ConnectArg{DestinationRoutingAddress: n}
	if !ap.Addr().Unmap().Is4() {
		c.Extensions = []Extension{AddressExtension(ap)}
	}
	return c, nil
}

// Destination reads the address a Connect routes to: the address extension
// when present, else the routing number.
func (a ConnectArg) Destination(prefix string) (netip.AddrPort, error) {
	if v, ok := Find(a.Extensions, OIDAddress); ok {
		return DecodeAddressExtension(v)
	}
	return DecodeRoutingNumber(prefix, a.DestinationRoutingAddress)
}
