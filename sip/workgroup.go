package sip

import (
	"context"
	"errors"
	"sync"
)

// errShuttingDown refuses work that would start after Shutdown has waited
// for the server's goroutines.
var errShuttingDown = errors.New("sip: server shutting down")

// workGroup counts the server's goroutines (call loops, client
// transactions, background senders) so that Shutdown can wait for them.
// Unlike a sync.WaitGroup it may be added to while someone waits (sipgo
// runs every handler on a goroutine of its own, so new work can start at
// any time), and once closed it refuses new work from outside.
type workGroup struct {
	mu     sync.Mutex
	n      int
	closed bool
	idle   chan struct{} // closed when n drops to 0; nil while n is 0
}

// Add counts n more goroutines of work already counted (a call loop's
// helpers); it never refuses.
func (w *workGroup) Add(n int) {
	w.mu.Lock()
	w.add(n)
	w.mu.Unlock()
}

func (w *workGroup) add(n int) {
	if w.n == 0 {
		w.idle = make(chan struct{})
	}
	w.n += n
}

// TryAdd counts one goroutine of new work, false once the group is closed.
func (w *workGroup) TryAdd() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return false
	}
	w.add(1)
	return true
}

// Done ends one counted goroutine.
func (w *workGroup) Done() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n--
	switch {
	case w.n == 0:
		close(w.idle)
		w.idle = nil
	case w.n < 0:
		panic("sip: workGroup.Done without Add")
	}
}

// Close makes TryAdd refuse from now on.
func (w *workGroup) Close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}

// Wait returns once no goroutine is counted, or ctx's error.
func (w *workGroup) Wait(ctx context.Context) error {
	for {
		w.mu.Lock()
		idle := w.idle
		w.mu.Unlock()
		if idle == nil {
			return nil
		}
		select {
		case <-idle:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Count is the number of counted goroutines.
func (w *workGroup) Count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}
