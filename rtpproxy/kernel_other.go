//go:build !linux

package rtpproxy

import "net/netip"

func loadBPF(netip.Addr, int) (fastPath, error) { return nil, errPlatform }

func monoNow() uint64 { return 0 }
