package sip

import "sync"

// taskQueue is a call's mailbox: unbounded, so that posting never blocks.
// A bounded channel let the transport's read loop (onWire) stall behind one
// busy call under load, and let a call's loop block forever posting to
// itself when a request failed synchronously while the mailbox was full.
// A call's life is bounded (timers B/F, the ACK and ring timeouts), and so
// is what it can queue.
//
// The queue has one consumer at a time. While a call is set up, that is
// the goroutine of its INVITE's handler, which waits in pop (sipgo ends a
// transaction whose handler returns before the final answer). Once it has
// detached, a call holds no goroutine: a push onto an idle queue starts one
// (start) that runs what is queued and ends (next), so that 10,000
// answered calls waiting for their BYE hold 10,000 queues, not 10,000
// stacks.
type taskQueue struct {
	mu       sync.Mutex
	fns      []func()
	closed   bool
	detached bool          // no loop waits in pop: push starts a runner
	running  bool          // a runner is on the queue (detached only)
	ready    chan struct{} // holds a token while fns may be non-empty
	start    func()        // runs a runner on a new goroutine
}

func newTaskQueue(start func()) *taskQueue {
	return &taskQueue{ready: make(chan struct{}, 1), start: start}
}

// push queues fn; false once the queue is closed.
func (q *taskQueue) push(fn func()) bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	q.fns = append(q.fns, fn)
	run := q.detached && !q.running
	if run {
		q.running = true
	}
	q.mu.Unlock()
	if run {
		q.start()
		return true
	}
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return true
}

// pop waits for the next task; only the loop that has not detached calls
// it.
func (q *taskQueue) pop() func() {
	for {
		q.mu.Lock()
		if len(q.fns) > 0 {
			fn := q.shift()
			q.mu.Unlock()
			return fn
		}
		q.mu.Unlock()
		<-q.ready
	}
}

func (q *taskQueue) shift() func() {
	fn := q.fns[0]
	q.fns[0] = nil
	q.fns = q.fns[1:]
	if len(q.fns) == 0 {
		q.fns = nil // a long call keeps no grown backing array
	}
	return fn
}

// detach lets the waiting loop go, true when nothing is queued: from now
// on a push starts a runner. With tasks queued it is false and the loop
// runs them first.
func (q *taskQueue) detach() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.fns) > 0 {
		return false
	}
	q.detached, q.running = true, false
	return true
}

// next gives a runner its next task; false when the queue is empty, and
// the runner must end: the next push starts another.
func (q *taskQueue) next() (func(), bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.fns) == 0 || q.closed {
		q.running = false
		return nil, false
	}
	return q.shift(), true
}

// close drops what is queued and refuses new tasks.
func (q *taskQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.fns = nil
	q.mu.Unlock()
}
