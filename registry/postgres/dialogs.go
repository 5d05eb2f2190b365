package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/imcall/b2bua/registry"
)

// Dialog snapshots: the confirmed calls of each node, for ending them
// after a crash.

// PutDialogs inserts or replaces the snapshots in put and deletes the ones
// in gone, in one transaction sent as one pipeline (one round trip).
func (s *Store) PutDialogs(ctx context.Context, put []registry.DialogSnapshot, gone []registry.DialogKey) error {
	b := &pgx.Batch{}
	for _, d := range put {
		legs, err := json.Marshal(d.Legs)
		if err != nil {
			return fmt.Errorf("dialog %s: %w", d.Key, err)
		}
		b.Queue(`INSERT INTO dialog_snapshots (node, key, call_id, started, legs) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (node, key) DO UPDATE SET call_id = excluded.call_id, started = excluded.started, legs = excluded.legs`,
			d.Node, d.Key, d.CallID, nanos(d.StartedAt), string(legs))
	}
	for _, k := range gone {
		b.Queue(`DELETE FROM dialog_snapshots WHERE node = $1 AND key = $2`, k.Node, k.Key)
	}
	if err := s.sendBatch(ctx, b); err != nil {
		return wrapf(err, "write dialog snapshots")
	}
	return nil
}

// Dialogs lists the snapshots of node.
func (s *Store) Dialogs(ctx context.Context, node string) ([]registry.DialogSnapshot, error) {
	rows, err := s.pool.Query(ctx, `SELECT key, call_id, started, legs FROM dialog_snapshots WHERE node = $1 ORDER BY started`, node)
	if err != nil {
		return nil, wrapf(err, "read dialog snapshots of %s", node)
	}
	out, err := collect(rows, func(row pgx.Row) (registry.DialogSnapshot, error) {
		d := registry.DialogSnapshot{Node: node}
		var started int64
		var legs string
		if err := row.Scan(&d.Key, &d.CallID, &started, &legs); err != nil {
			return d, err
		}
		d.StartedAt = fromNanos(started)
		if err := json.Unmarshal([]byte(legs), &d.Legs); err != nil {
			return d, fmt.Errorf("dialog snapshot %s: %w", d.Key, err)
		}
		return d, nil
	})
	if err != nil {
		return nil, wrapf(err, "read dialog snapshots of %s", node)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// EndLeftover closes the call record of d that was left open with endedAt
// and cause, and deletes d's snapshot, in one transaction.
func (s *Store) EndLeftover(ctx context.Context, d registry.DialogSnapshot, endedAt time.Time, cause string) error {
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE call_records SET ended = $1, end_cause = $2
			WHERE call_id = $3 AND ended IS NULL AND started <= $1`,
			nanos(endedAt), cause, d.CallID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM dialog_snapshots WHERE node = $1 AND key = $2`, d.Node, d.Key)
		return err
	})
	if err != nil {
		return wrapf(err, "end leftover call %s", d.CallID)
	}
	return nil
}
