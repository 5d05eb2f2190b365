// Package siptrace copies the SIP messages the B2BUA sends and receives to
// the tools operators read SIP with: HEP version 3 to Homer, heplify-server
// or any HEP collector, and pcap files for Wireshark, tshark and sngrep.
// Both implement sip.Tracer; the SIP path only copies each message into a
// bounded queue, and one goroutine per writer encodes and writes it, so a
// slow collector or disk costs the SIP path nothing but the copy (past the
// queue's bound, messages are dropped and counted, never waited for).
package siptrace

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imcall/b2bua/sip"
)

// queueLen bounds the messages waiting for a writer: about a second of a
// busy node's SIP.
const queueLen = 8192

// queue hands copies of messages to one writer goroutine.
type queue struct {
	ch      chan sip.WireMessage
	done    chan struct{}
	dropped atomic.Uint64
	once    sync.Once
	log     *slog.Logger
}

// start runs write for every queued message and idle whenever the queue
// runs empty, until close.
func newQueue(log *slog.Logger, write func(sip.WireMessage), idle func()) *queue {
	q := &queue{ch: make(chan sip.WireMessage, queueLen), done: make(chan struct{}), log: log}
	go func() {
		defer close(q.done)
		warned := time.Time{}
		for m := range q.ch {
			write(m)
			if len(q.ch) == 0 {
				idle()
				if n := q.dropped.Load(); n > 0 && time.Since(warned) > 10*time.Second {
					q.log.Warn("SIP trace messages dropped: the writer cannot keep up", "messages", n)
					warned = time.Now()
				}
			}
		}
		idle()
	}()
	return q
}

// put queues a copy of m, or drops it when the queue is full.
func (q *queue) put(m sip.WireMessage) {
	m.Data = append([]byte(nil), m.Data...)
	select {
	case q.ch <- m:
	default:
		q.dropped.Add(1)
	}
}

// close writes what is queued and stops the writer. No put may follow.
func (q *queue) close() {
	q.once.Do(func() { close(q.ch) })
	<-q.done
}

// Dropped is how many messages were dropped because the writer was behind.
func (q *queue) Dropped() uint64 { return q.dropped.Load() }
