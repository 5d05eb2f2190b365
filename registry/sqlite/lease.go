package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/imcall/b2bua/registry"
)

// TakeLease takes or renews the lease name for node until at+ttl: the row
// is written only if node holds the lease or the holder's has expired at
// at. Writers are serialised (BEGIN IMMEDIATE), so of two processes on the
// file asking at once exactly one gets it.
func (s *Store) TakeLease(ctx context.Context, name, node string, at time.Time, ttl time.Duration) (registry.Lease, error) {
	if name == "" || node == "" || ttl <= 0 {
		return registry.Lease{}, invalid("lease", "name, node and a positive duration are required")
	}
	l := registry.Lease{Name: name}
	var expires int64
	err := s.w.QueryRowContext(ctx, `INSERT INTO leases AS l (name, owner, epoch, expires) VALUES (?, ?, 1, ?)
		ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires = excluded.expires,
			epoch = CASE WHEN l.owner = excluded.owner THEN l.epoch ELSE l.epoch + 1 END
		WHERE l.owner = excluded.owner OR l.expires <= ?
		RETURNING owner, epoch, expires`, name, node, nanos(at.Add(ttl)), nanos(at)).Scan(&l.Owner, &l.Epoch, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		err = s.r.QueryRowContext(ctx, `SELECT owner, epoch, expires FROM leases WHERE name = ?`, name).Scan(&l.Owner, &l.Epoch, &expires)
	}
	if err != nil {
		return registry.Lease{}, fmt.Errorf("lease %s: %w", name, err)
	}
	l.Expires = fromNanos(expires)
	return l, nil
}

// ReleaseLease gives up node's lease name; one node does not hold is left
// alone.
func (s *Store) ReleaseLease(ctx context.Context, name, node string) error {
	if _, err := s.w.ExecContext(ctx, `UPDATE leases SET expires = 0 WHERE name = ? AND owner = ?`, name, node); err != nil {
		return fmt.Errorf("release lease %s: %w", name, err)
	}
	return nil
}

// HurryPending makes recipient's kept messages due at at.
func (s *Store) HurryPending(ctx context.Context, recipient string, at time.Time) error {
	id, err := registry.ParseIMID(recipient)
	if err != nil {
		return err
	}
	if _, err := s.w.ExecContext(ctx, `UPDATE pending_messages SET next_attempt = ? WHERE recipient = ? AND next_attempt > ?`,
		nanos(at), id, nanos(at)); err != nil {
		return fmt.Errorf("hurry pending messages of %s: %w", id, err)
	}
	return nil
}

var _ registry.LeaseStore = (*Store)(nil)
