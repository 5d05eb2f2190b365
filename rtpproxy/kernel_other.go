//go:build !linux

package rtpproxy

import (
	"io"
	"net/netip"
)

func loadBPF(netip.Addr, int) (fastPath, error) { return nil, errPlatform }

// EnableKernelRunStats needs Linux.
func EnableKernelRunStats() (io.Closer, error) { return nil, errPlatform }

func monoNow() uint64 { return 0 }
