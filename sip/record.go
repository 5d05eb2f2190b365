package sip

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/imcall/b2bua/registry"
)

// recorder writes call records off the call path. A call loop hands it a
// snapshot of its record whenever the record changes and never waits for
// the database: with one SQLite writer, a write that stalls (a WAL
// checkpoint on a busy disk) would otherwise hold every call's loop and
// turn into SIP retransmissions. Snapshots of one call that pile up while
// the writer is busy are coalesced into one write; a call that starts and
// ends before its turn costs one INSERT.
type recorder struct {
	store CallRecorder
	log   *slog.Logger

	mu      sync.Mutex
	queue   []*callRecord // records with a snapshot not yet written, in order
	busy    bool          // the writer holds a batch taken from queue
	wake    chan struct{}
	dropped int
}

// maxRecordQueue bounds the backlog; past it new records are dropped (and
// counted in the log) rather than growing without end.
const maxRecordQueue = 100000

// recordWindow is how long the writer gathers records before a write.
const recordWindow = 10 * time.Millisecond

// callRecord is one call's record as the recorder sees it.
type callRecord struct {
	snap    registry.CallRecord // latest snapshot; guarded by recorder.mu
	queued  bool                // in recorder.queue; guarded by recorder.mu
	id      int64               // database ID; only the writer touches it
	written bool                // StartCall done; only the writer touches it
}

func newRecorder(store CallRecorder, log *slog.Logger) *recorder {
	return &recorder{store: store, log: log, wake: make(chan struct{}, 1)}
}

// save queues snap as the latest state of cr.
func (r *recorder) save(cr *callRecord, snap registry.CallRecord) {
	if r == nil {
		return
	}
	r.mu.Lock()
	cr.snap = snap
	if !cr.queued {
		if len(r.queue) >= maxRecordQueue {
			r.dropped++
			r.mu.Unlock()
			return
		}
		cr.queued = true
		r.queue = append(r.queue, cr)
	}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// run writes until ctx is done, then writes what is left and returns.
func (r *recorder) run(ctx context.Context) { batchLoop(ctx, r.wake, r.writeQueued) }

// batchLoop calls flush after each wake-up, once the writes that arrive
// within recordWindow have joined it: each commit costs more than the rows
// in it, and every commit also empties the registry's lookup cache. When
// ctx is done it flushes what is left and returns.
func batchLoop(ctx context.Context, wake <-chan struct{}, flush func()) {
	for {
		select {
		case <-wake:
			select {
			case <-time.After(recordWindow):
			case <-ctx.Done():
			}
			flush()
		case <-ctx.Done():
			flush()
			return
		}
	}
}

func (r *recorder) writeQueued() {
	for {
		r.mu.Lock()
		batch := r.queue
		r.queue = nil
		if len(batch) == 0 {
			r.busy = false
			if r.dropped > 0 {
				r.log.Warn("call records dropped: the database cannot keep up", "records", r.dropped)
				r.dropped = 0
			}
			r.mu.Unlock()
			return
		}
		r.busy = true
		snaps := make([]registry.CallRecord, len(batch))
		for i, cr := range batch {
			snaps[i] = cr.snap
			cr.queued = false
		}
		r.mu.Unlock()
		if b, ok := r.store.(CallBatchRecorder); ok {
			r.writeBatch(b, batch, snaps)
			continue
		}
		for i, cr := range batch {
			r.write(cr, snaps[i])
		}
	}
}

// writeBatch writes snaps, the snapshots of batch, in as few transactions
// as the store allows: one commit per batch instead of one per record.
func (r *recorder) writeBatch(b CallBatchRecorder, batch []*callRecord, snaps []registry.CallRecord) {
	for i, cr := range batch {
		snaps[i].ID = 0
		if cr.written {
			snaps[i].ID = cr.id
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errs, err := b.WriteCalls(ctx, snaps)
	if err != nil {
		r.log.Warn("call records not written", "records", len(batch), "err", err)
	}
	for i, cr := range batch {
		switch {
		case errs[i] != nil && !cr.written:
			r.log.Warn("call record not written", "call", snaps[i].CallID, "err", errs[i])
		case errs[i] != nil:
			r.log.Warn("call record not updated", "call", snaps[i].CallID, "err", errs[i])
		case !cr.written && snaps[i].ID != 0:
			cr.id, cr.written = snaps[i].ID, true
		}
	}
}

func (r *recorder) write(cr *callRecord, snap registry.CallRecord) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if !cr.written {
		id, err := r.store.StartCall(ctx, snap)
		if err != nil {
			r.log.Warn("call record not written", "call", snap.CallID, "err", err)
			return
		}
		cr.id, cr.written = id, true
		return
	}
	snap.ID = cr.id
	if err := r.store.UpdateCall(ctx, snap); err != nil {
		r.log.Warn("call record not updated", "call", snap.CallID, "err", err)
	}
}

// flush waits until every record saved so far is written, or ctx is done.
func (r *recorder) flush(ctx context.Context) error {
	if r == nil {
		return nil
	}
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		r.mu.Lock()
		idle := len(r.queue) == 0 && !r.busy
		r.mu.Unlock()
		if idle {
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
