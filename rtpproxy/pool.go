package rtpproxy

import "sync"

// portPool hands out port pairs (even RTP port, RTP+1 for RTCP) first in,
// first out, so a pair that was just given back is reused as late as
// possible. It only books numbers; binding is the engine's job, and a pair
// whose bind fails (another process holds it) goes to the back of the queue.
type portPool struct {
	mu    sync.Mutex
	ring  []uint16 // even ports
	head  int
	count int
}

func newPortPool(min, max int) *portPool {
	p := &portPool{}
	for port := min; port+1 <= max; port += 2 {
		p.ring = append(p.ring, uint16(port))
	}
	p.count = len(p.ring)
	return p
}

// get takes the pair that has been free the longest.
func (p *portPool) get() (int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.count == 0 {
		return 0, false
	}
	port := p.ring[p.head]
	p.head = (p.head + 1) % len(p.ring)
	p.count--
	return int(port), true
}

// put gives a pair back; it must have come from get.
func (p *portPool) put(port int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.count == len(p.ring) {
		panic("rtpproxy: port pool over-released") // a bookkeeping bug, never input-driven
	}
	p.ring[(p.head+p.count)%len(p.ring)] = uint16(port)
	p.count++
}

func (p *portPool) size() (total, free int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.ring), p.count
}
