package daemon

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/imcall/b2bua/mediastore"
	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/sip/messaging"
)

// Work that must happen once across nodes sharing a store: deferred
// MESSAGE delivery (two deliverers would send a kept message twice) and
// media expiry (two purgers would race on the files). Each is done by the
// node holding its row lease (registry.Lease); a node that dies stops
// renewing, and another takes the lease once it has expired, at most
// leaseTTL later. With one node, it always holds both.
const (
	leaseDeliver = "deliver-pending"
	leasePurge   = "purge-media"
	// leaseTTL bounds how long a dead node's work waits for another
	// node. Holders renew at a third of it, so a sweep that runs long
	// (deliveries wait on terminals) keeps the lease.
	leaseTTL = 15 * time.Second
)

// leaseGuard answers whether this node holds one lease, taking it when it
// is free and renewing it while held. Safe for concurrent use.
type leaseGuard struct {
	store      registry.LeaseStore
	name, node string
	ttl        time.Duration
	now        func() time.Time
	log        *slog.Logger

	mu      sync.Mutex
	lease   registry.Lease
	renewed time.Time
}

func newLeaseGuard(store registry.LeaseStore, name, node string, log *slog.Logger) *leaseGuard {
	return &leaseGuard{store: store, name: name, node: node, ttl: leaseTTL, now: time.Now, log: log}
}

// held reports whether this node holds the lease now. A store error means
// not held: doing the work twice is worse than doing it late.
func (g *leaseGuard) held(ctx context.Context) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	if g.lease.HeldBy(g.node, now) && now.Sub(g.renewed) < g.ttl/3 {
		return true
	}
	l, err := g.store.TakeLease(ctx, g.name, g.node, now, g.ttl)
	if err != nil {
		if ctx.Err() == nil {
			g.log.Warn("lease not renewed", "lease", g.name, "err", err)
		}
		g.lease = registry.Lease{}
		return false
	}
	mine := l.HeldBy(g.node, now)
	if was := g.lease.HeldBy(g.node, now); mine && (!was || l.Epoch != g.lease.Epoch) {
		g.log.Info("lease taken", "lease", g.name, "epoch", l.Epoch)
	} else if !mine && g.lease.Owner == g.node {
		g.log.Info("lease lost", "lease", g.name, "holder", l.Owner)
	}
	g.lease, g.renewed = l, now
	return mine
}

// keep renews the lease (or takes it when it is free) on every tick until
// ctx is done, so that a node holds it while it lives, whatever the
// pace of the work it guards: a delivery sweep that waits on terminals,
// or a media purge that runs once an hour, never lets it lapse, and a
// dead node's lease is taken by another within leaseTTL and a tick.
func (g *leaseGuard) keep(ctx context.Context, tick <-chan time.Time) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			g.held(ctx)
		}
	}
}

// release gives the lease up, so that another node takes the work at once
// when this one stops.
func (g *leaseGuard) release(ctx context.Context) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.lease.Owner != g.node {
		return
	}
	if err := g.store.ReleaseLease(ctx, g.name, g.node); err != nil {
		g.log.Warn("lease not released", "lease", g.name, "err", err)
	}
	g.lease = registry.Lease{}
}

// keepLeases renews every lease of the node in the background (keep);
// stopLeases ends that and waits.
func (d *Daemon) keepLeases() {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, g := range d.leases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(g.ttl / 3)
			defer t.Stop()
			g.keep(ctx, t.C)
		}()
	}
	var once sync.Once
	d.stopLeases = func() { once.Do(func() { cancel(); wg.Wait() }) }
}

// pendingStore is the kept messages as a node's delivery loop sees them.
type pendingStore interface {
	messaging.PendingStore
	HurryPending(ctx context.Context, recipient string, at time.Time) error
}

// leasedPending gives the delivery loop the messages to try only while the
// node holds the delivery lease. A REGISTER reaching a node without it
// makes the user's messages due now instead, for the holder's next sweep.
type leasedPending struct {
	pendingStore
	lease *leaseGuard
}

func (p leasedPending) DuePending(ctx context.Context, now time.Time, limit int) ([]registry.PendingMessage, error) {
	if !p.lease.held(ctx) {
		return nil, nil
	}
	return p.pendingStore.DuePending(ctx, now, limit)
}

func (p leasedPending) PendingFor(ctx context.Context, recipient string) ([]registry.PendingMessage, error) {
	if !p.lease.held(ctx) {
		return nil, p.pendingStore.HurryPending(ctx, recipient, p.lease.now().UTC())
	}
	return p.pendingStore.PendingFor(ctx, recipient)
}

// leasedMedia purges expired media only while the node holds the purge
// lease.
type leasedMedia struct {
	mediastore.DB
	lease *leaseGuard
}

func (m leasedMedia) PurgeMedia(ctx context.Context, now, forgetBefore time.Time) ([]registry.Media, error) {
	if !m.lease.held(ctx) {
		return nil, nil
	}
	return m.DB.PurgeMedia(ctx, now, forgetBefore)
}
