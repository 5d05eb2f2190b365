package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/imcall/b2bua/registry"
)

// TakeLease takes or renews the lease name for node until at+ttl, in one
// statement: the row is written only if node holds the lease or the
// holder's lease has expired at at, so of two nodes asking at once exactly
// one gets it. The epoch grows each time the lease changes hands.
func (s *Store) TakeLease(ctx context.Context, name, node string, at time.Time, ttl time.Duration) (registry.Lease, error) {
	if name == "" || node == "" || ttl <= 0 {
		return registry.Lease{}, invalid("lease", "name, node and a positive duration are required")
	}
	var l registry.Lease
	var expires int64
	err := s.pool.QueryRow(ctx, `INSERT INTO leases AS l (name, owner, epoch, expires) VALUES ($1, $2, 1, $3)
		ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires = excluded.expires,
			epoch = CASE WHEN l.owner = excluded.owner THEN l.epoch ELSE l.epoch + 1 END
		WHERE l.owner = excluded.owner OR l.expires <= $4
		RETURNING name, owner, epoch, expires`, name, node, nanos(at.Add(ttl)), nanos(at)).
		Scan(&l.Name, &l.Owner, &l.Epoch, &expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return s.lease(ctx, name)
	}
	if err != nil {
		return registry.Lease{}, wrapf(err, "lease %s", name)
	}
	l.Expires = fromNanos(expires)
	return l, nil
}

// lease reads the lease name as it stands.
func (s *Store) lease(ctx context.Context, name string) (registry.Lease, error) {
	l := registry.Lease{Name: name}
	var expires int64
	if err := s.pool.QueryRow(ctx, `SELECT owner, epoch, expires FROM leases WHERE name = $1`, name).
		Scan(&l.Owner, &l.Epoch, &expires); err != nil {
		return registry.Lease{}, wrapf(err, "lease %s", name)
	}
	l.Expires = fromNanos(expires)
	return l, nil
}

// ReleaseLease gives up node's lease name, so that another node takes it
// without waiting for it to expire; a lease node does not hold is left
// alone.
func (s *Store) ReleaseLease(ctx context.Context, name, node string) error {
	if _, err := s.pool.Exec(ctx, `UPDATE leases SET expires = 0 WHERE name = $1 AND owner = $2`, name, node); err != nil {
		return wrapf(err, "release lease %s", name)
	}
	return nil
}

var _ registry.LeaseStore = (*Store)(nil)
