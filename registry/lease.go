package registry

import (
	"context"
	"time"
)

// Lease is one row lease: work that must happen on one node of a cluster
// at a time (deferred MESSAGE delivery, media expiry) is done by the node
// that holds it. A node that dies stops renewing, and another takes the
// lease once it has expired.
type Lease struct {
	Name    string
	Owner   string    // the node holding it
	Epoch   int64     // grows each time the lease changes hands
	Expires time.Time // the holder must renew before then
}

// HeldBy reports whether node holds l at now.
func (l Lease) HeldBy(node string, now time.Time) bool {
	return l.Owner == node && now.Before(l.Expires)
}

// LeaseStore keeps the leases of a cluster's nodes.
type LeaseStore interface {
	// TakeLease takes the lease name for node until at+ttl if nobody
	// holds it at at, or renews it if node does, and returns the lease as
	// it stands after: held by node, or by the node that holds it.
	TakeLease(ctx context.Context, name, node string, at time.Time, ttl time.Duration) (Lease, error)
	// ReleaseLease gives up node's lease name; one node does not hold is
	// left alone.
	ReleaseLease(ctx context.Context, name, node string) error
}
