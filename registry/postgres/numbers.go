package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/imcall/b2bua/registry"
)

// Trunks and DIDs: written by an operator, read per telephone-network call.

// AddTrunk stores a new trunk with its ranges in one transaction. A taken
// name, or a range that belongs to another trunk, gives ErrExists.
func (s *Store) AddTrunk(ctx context.Context, t registry.Trunk) (registry.Trunk, error) {
	t, err := registry.ValidateTrunk(t)
	if err != nil {
		return registry.Trunk{}, err
	}
	t.CreatedAt = now()
	var taken netip.Prefix
	err = s.withTx(ctx, func(tx pgx.Tx) error {
		taken = netip.Prefix{}
		if _, err := tx.Exec(ctx, `INSERT INTO trunks (name, country_code, identity, created) VALUES ($1, $2, $3, $4)`,
			t.Name, t.CountryCode, string(t.Identity), nanos(t.CreatedAt)); err != nil {
			return err
		}
		for _, p := range t.CIDRs {
			if _, err := tx.Exec(ctx, `INSERT INTO trunk_cidrs (cidr, trunk) VALUES ($1, $2)`, p.String(), t.Name); err != nil {
				taken = p
				return err
			}
		}
		return nil
	})
	switch {
	case isUnique(err) && taken.IsValid():
		var owner string
		_ = s.pool.QueryRow(ctx, `SELECT trunk FROM trunk_cidrs WHERE cidr = $1`, taken.String()).Scan(&owner)
		return registry.Trunk{}, fmt.Errorf("range %s of trunk %s: %w", taken, owner, registry.ErrExists)
	case isUnique(err):
		return registry.Trunk{}, fmt.Errorf("trunk %s: %w", t.Name, registry.ErrExists)
	case err != nil:
		return registry.Trunk{}, wrapf(err, "add trunk %s", t.Name)
	}
	return t, nil
}

// Trunks lists every trunk ordered by name, each with its ranges ordered
// by their text.
func (s *Store) Trunks(ctx context.Context) ([]registry.Trunk, error) {
	rows, err := s.pool.Query(ctx, `SELECT t.name, t.country_code, t.identity, t.created, coalesce(c.cidr, '')
		FROM trunks t LEFT JOIN trunk_cidrs c ON c.trunk = t.name ORDER BY t.name COLLATE "C", c.cidr COLLATE "C"`)
	if err != nil {
		return nil, wrapf(err, "list trunks")
	}
	defer rows.Close()
	out := []registry.Trunk{}
	for rows.Next() {
		var (
			t       registry.Trunk
			ident   string
			created int64
			cidr    string
		)
		if err := rows.Scan(&t.Name, &t.CountryCode, &ident, &created, &cidr); err != nil {
			return nil, wrapf(err, "list trunks")
		}
		if n := len(out); n == 0 || out[n-1].Name != t.Name {
			t.Identity, t.CreatedAt = registry.IdentitySource(ident), fromNanos(created)
			out = append(out, t)
		}
		if cidr != "" {
			p, err := netip.ParsePrefix(cidr)
			if err != nil {
				return nil, fmt.Errorf("list trunks: trunk %s: stored range %q: %w", t.Name, cidr, err)
			}
			last := &out[len(out)-1]
			last.CIDRs = append(last.CIDRs, p)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, wrapf(err, "list trunks")
	}
	return out, nil
}

// RemoveTrunk deletes a trunk and its ranges, or gives ErrNotFound.
func (s *Store) RemoveTrunk(ctx context.Context, name string) error {
	n, err := registry.ParseTrunkName(name)
	if err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM trunks WHERE name = $1`, n)
	return affectedOne(tag, err, "trunk "+n)
}

const didCols = `number, im_id, fallback, created`

func scanDID(row pgx.Row) (registry.DID, error) {
	var d registry.DID
	var fallback string
	var created int64
	if err := row.Scan(&d.Number, &d.IMID, &fallback, &created); err != nil {
		return registry.DID{}, err
	}
	d.Fallback, d.CreatedAt = registry.Fallback(fallback), fromNanos(created)
	return d, nil
}

// AddDID gives d.Number to d.IMID. A number that has an owner gives
// ErrExists (the table's primary key holds the rule for every node); an
// unknown user gives ErrNotFound.
func (s *Store) AddDID(ctx context.Context, d registry.DID) (registry.DID, error) {
	d, err := registry.ValidateDID(d)
	if err != nil {
		return registry.DID{}, err
	}
	out, err := scanDID(s.pool.QueryRow(ctx, `INSERT INTO dids (number, im_id, fallback, created) VALUES ($1, $2, $3, $4) RETURNING `+didCols,
		d.Number, d.IMID, string(d.Fallback), nanos(now())))
	switch {
	case isUnique(err):
		var owner string
		_ = s.pool.QueryRow(ctx, `SELECT im_id FROM dids WHERE number = $1`, d.Number).Scan(&owner)
		return registry.DID{}, fmt.Errorf("number %s belongs to %s: %w", d.Number, owner, registry.ErrExists)
	case isForeignKey(err):
		return registry.DID{}, fmt.Errorf("user %s: %w", d.IMID, registry.ErrNotFound)
	case err != nil:
		return registry.DID{}, wrapf(err, "add number %s", d.Number)
	}
	return out, nil
}

// DID gives the owner of number, or ErrNotFound.
func (s *Store) DID(ctx context.Context, number string) (registry.DID, error) {
	n, err := registry.ParseE164(number)
	if err != nil {
		return registry.DID{}, err
	}
	d, err := scanDID(s.pool.QueryRow(ctx, `SELECT `+didCols+` FROM dids WHERE number = $1`, n))
	if errors.Is(err, pgx.ErrNoRows) {
		return registry.DID{}, fmt.Errorf("number %s: %w", n, registry.ErrNotFound)
	}
	if err != nil {
		return registry.DID{}, wrapf(err, "number %s", n)
	}
	return d, nil
}

// DIDs lists the numbers of imID, or every number when imID is "", ordered
// by number. An unknown imID gives ErrNotFound.
func (s *Store) DIDs(ctx context.Context, imID string) ([]registry.DID, error) {
	q, args := `SELECT `+didCols+` FROM dids ORDER BY number COLLATE "C"`, []any(nil)
	if strings.TrimSpace(imID) != "" {
		id, err := registry.ParseIMID(imID)
		if err != nil {
			return nil, err
		}
		switch ok, err := s.userExists(ctx, id); {
		case err != nil:
			return nil, wrapf(err, "list numbers of %s", id)
		case !ok:
			return nil, fmt.Errorf("user %s: %w", id, registry.ErrNotFound)
		}
		q, args = `SELECT `+didCols+` FROM dids WHERE im_id = $1 ORDER BY number COLLATE "C"`, []any{id}
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, wrapf(err, "list numbers")
	}
	out, err := collect(rows, scanDID)
	if err != nil {
		return nil, wrapf(err, "list numbers")
	}
	return out, nil
}

// RemoveDID frees a number, or gives ErrNotFound.
func (s *Store) RemoveDID(ctx context.Context, number string) error {
	n, err := registry.ParseE164(number)
	if err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM dids WHERE number = $1`, n)
	return affectedOne(tag, err, "number "+n)
}

var _ registry.NumberStore = (*Store)(nil)
