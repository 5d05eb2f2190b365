package sip

import "sync"

// taskQueue is a call's mailbox: unbounded, so that posting never blocks.
// A bounded channel let the transport's read loop (onWire) stall behind one
// busy call under load, and let a call's loop block forever posting to
// itself when a request failed synchronously while the mailbox was full.
// A call's life is bounded (timers B/F, the ACK and ring timeouts), and so
// is what it can queue.
type taskQueue struct {
	mu     sync.Mutex
	fns    []func()
	closed bool
	ready  chan struct{} // holds a token while fns may be non-empty
}

func newTaskQueue() *taskQueue { return &taskQueue{ready: make(chan struct{}, 1)} }

// push queues fn; false once the queue is closed.
func (q *taskQueue) push(fn func()) bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	q.fns = append(q.fns, fn)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return true
}

// pop waits for the next task; only the call's loop calls it.
func (q *taskQueue) pop() func() {
	for {
		q.mu.Lock()
		if len(q.fns) > 0 {
			fn := q.fns[0]
			q.fns[0] = nil
			q.fns = q.fns[1:]
			q.mu.Unlock()
			return fn
		}
		q.mu.Unlock()
		<-q.ready
	}
}

// close drops what is queued and refuses new tasks.
func (q *taskQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.fns = nil
	q.mu.Unlock()
}
