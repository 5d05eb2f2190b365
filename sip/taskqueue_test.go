package sip

import (
	"sync"
	"sync/atomic"
	"testing"
)

// TestTaskQueueDetached posts from many goroutines to a detached queue:
// every task runs, one at a time, each poster's tasks in the order it
// posted them, and no runner is left once the queue is empty.
func TestTaskQueueDetached(t *testing.T) {
	var runners sync.WaitGroup
	var q *taskQueue
	var live atomic.Int32
	q = newTaskQueue(func() {
		runners.Add(1)
		live.Add(1)
		go func() {
			defer runners.Done()
			defer live.Add(-1)
			for {
				fn, ok := q.next()
				if !ok {
					return
				}
				fn()
			}
		}()
	})
	if !q.detach() {
		t.Fatal("detach of an empty queue refused")
	}
	const posters, each = 8, 500
	var inside atomic.Int32
	last := make([]int, posters) // owned by whichever runner runs a task
	bad := atomic.Int32{}
	var wg sync.WaitGroup
	for p := 0; p < posters; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; i <= each; i++ {
				q.push(func() {
					if inside.Add(1) != 1 {
						bad.Add(1) // two tasks at once
					}
					if last[p] != i-1 {
						bad.Add(1) // out of order
					}
					last[p] = i
					inside.Add(-1)
				})
			}
		}()
	}
	wg.Wait()
	runners.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d tasks ran concurrently or out of order", bad.Load())
	}
	for p, n := range last {
		if n != each {
			t.Errorf("poster %d: %d of %d tasks ran", p, n, each)
		}
	}
	if n := live.Load(); n != 0 {
		t.Errorf("%d runners left on an empty queue", n)
	}
}

// TestTaskQueueDetachWithTasks: a loop that still has tasks queued keeps
// them; detach refuses until it has run them.
func TestTaskQueueDetachWithTasks(t *testing.T) {
	started := 0
	q := newTaskQueue(func() { started++ })
	ran := false
	q.push(func() { ran = true })
	if q.detach() {
		t.Fatal("detach with a task queued")
	}
	q.pop()()
	if !ran || !q.detach() {
		t.Fatalf("ran %v; detach after the queue emptied refused", ran)
	}
	q.push(func() {})
	q.push(func() {})
	if started != 1 {
		t.Fatalf("%d runners started for two posts to an idle detached queue, want 1", started)
	}
	q.close()
	if q.push(func() {}) {
		t.Fatal("push to a closed queue accepted")
	}
}
