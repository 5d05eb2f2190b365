package daemon

import (
	"net"
	"net/netip"
)

// serverHosts are the hosts that name this node to a SIP client: the
// hosts of its listen addresses, and for an unspecified one (0.0.0.0, ::)
// every address of the machine. Digest answers may name the server by
// them (digest.Config.ServerHosts).
func serverHosts(listens ...string) []string {
	var out []string
	for _, l := range listens {
		if l == "" {
			continue
		}
		host, _, err := net.SplitHostPort(l)
		if err != nil {
			continue
		}
		a, err := netip.ParseAddr(host)
		if err != nil || !a.IsUnspecified() {
			out = append(out, host)
			continue
		}
		addrs, err := net.InterfaceAddrs()
		if err != nil {
			continue
		}
		for _, ia := range addrs {
			if n, ok := ia.(*net.IPNet); ok {
				out = append(out, n.IP.String())
			}
		}
	}
	return out
}
