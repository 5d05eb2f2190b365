package sqlite

import (
	"context"
	"database/sql"
	"testing"

	"github.com/imcall/b2bua/registry/storetest"
)

// TestConformance runs the stores' conformance suite on the SQLite store.
func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		Open: func(t *testing.T) storetest.Store { return newStore(t) },
		Raw:  func(_ *testing.T, s storetest.Store) storetest.RawDB { return rawDB{s.(*Store).w} },
		Peer: func(t *testing.T, s storetest.Store) storetest.Store { return openTest(t, s.(*Store).Path()) },
	})
}

// rawDB reaches the file through the store's writer connection.
type rawDB struct{ db *sql.DB }

func (r rawDB) Exec(ctx context.Context, q string, args ...any) error {
	_, err := r.db.ExecContext(ctx, q, args...)
	return err
}

func (r rawDB) Int(ctx context.Context, q string, args ...any) (int, error) {
	var n int
	err := r.db.QueryRowContext(ctx, q, args...).Scan(&n)
	return n, err
}

func (r rawDB) IsUnique(err error) bool { return isUnique(err) }
