//go:build !linux

package rtpproxy

import (
	"errors"
	"net/netip"
	"sync/atomic"
)

// The relay threads use epoll and recvmmsg/sendmmsg, which only Linux has;
// elsewhere the SDP side of the package works but New fails.

var errPlatform = errors.New("rtpproxy: the media relay needs Linux")

type remote struct {
	ap  netip.AddrPort
	sdp netip.AddrPort
}

func newRemote(ap, sdp netip.AddrPort) *remote { return &remote{ap: ap, sdp: sdp} }

type sock struct {
	port  int
	w     *worker
	state atomic.Int32
}

const sockLive int32 = 0

type worker struct{}

type engine struct {
	workers  []*worker
	draining atomic.Int64
}

func newEngine(*Proxy, int) (*engine, error)                 { return nil, errPlatform }
func (e *engine) pick() *worker                              { return nil }
func (e *engine) openPair(*worker, *endpoint) error          { return errPlatform }
func (e *engine) releasePair(*endpoint)                      {}
func (e *engine) close()                                     {}
func (e *engine) counters() (uint64, uint64, uint64, uint64) { return 0, 0, 0, 0 }

func sendOne(*sock, *remote, []byte) error { return errPlatform }
