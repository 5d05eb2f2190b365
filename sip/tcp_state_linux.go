package sip

import (
	"net"

	"golang.org/x/sys/unix"
)

// tcpCloseWait is Linux's TCP_CLOSE_WAIT state (include/net/tcp_states.h):
// the peer's FIN has arrived.
const tcpCloseWait = 8

// peerClosed reports whether the peer of c, a TCP connection or one
// wrapping it (tls.Conn, connlimit), has closed its side: the socket is in
// CLOSE_WAIT, whether or not a Read has returned the end yet.
func peerClosed(c net.Conn) bool {
	for {
		switch u := c.(type) {
		case *net.TCPConn:
			raw, err := u.SyscallConn()
			if err != nil {
				return false
			}
			closed := false
			_ = raw.Control(func(fd uintptr) {
				info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
				closed = err == nil && info.State == tcpCloseWait
			})
			return closed
		case interface{ NetConn() net.Conn }:
			c = u.NetConn()
		default:
			return false
		}
	}
}
