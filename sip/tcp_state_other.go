//go:build !linux

package sip

import "net"

// peerClosed is known only from Read elsewhere than on Linux.
func peerClosed(net.Conn) bool { return false }
