package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/imcall/b2bua/registry"
)

// Dialog snapshots: the confirmed calls of each node, for ending them
// after a crash.

// PutDialogs inserts or replaces the snapshots in put and deletes the ones
// in gone, in one transaction: a burst of calls costs one commit.
func (s *Store) PutDialogs(ctx context.Context, put []registry.DialogSnapshot, gone []registry.DialogKey) error {
	err := s.withTx(ctx, func(tx *sql.Tx) error {
		for _, d := range put {
			legs, err := json.Marshal(d.Legs)
			if err != nil {
				return fmt.Errorf("dialog %s: %w", d.Key, err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO dialog_snapshots (node, key, call_id, started, legs) VALUES (?, ?, ?, ?, ?)
				ON CONFLICT (node, key) DO UPDATE SET call_id = excluded.call_id, started = excluded.started, legs = excluded.legs`,
				d.Node, d.Key, d.CallID, nanos(d.StartedAt), string(legs)); err != nil {
				return err
			}
		}
		for _, k := range gone {
			if _, err := tx.ExecContext(ctx, `DELETE FROM dialog_snapshots WHERE node = ? AND key = ?`, k.Node, k.Key); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("write dialog snapshots: %w", err)
	}
	return nil
}

// Dialogs lists the snapshots of node.
func (s *Store) Dialogs(ctx context.Context, node string) ([]registry.DialogSnapshot, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT key, call_id, started, legs FROM dialog_snapshots WHERE node = ? ORDER BY started`, node)
	if err != nil {
		return nil, fmt.Errorf("read dialog snapshots of %s: %w", node, err)
	}
	defer rows.Close()
	var out []registry.DialogSnapshot
	for rows.Next() {
		d := registry.DialogSnapshot{Node: node}
		var started int64
		var legs string
		if err := rows.Scan(&d.Key, &d.CallID, &started, &legs); err != nil {
			return nil, fmt.Errorf("read dialog snapshots of %s: %w", node, err)
		}
		d.StartedAt = fromNanos(started)
		if err := json.Unmarshal([]byte(legs), &d.Legs); err != nil {
			return nil, fmt.Errorf("dialog snapshot %s of %s: %w", d.Key, node, err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read dialog snapshots of %s: %w", node, err)
	}
	return out, nil
}

// EndLeftover closes the call record of d that was left open (started at
// or after d's start, never ended) with endedAt and cause, and deletes d's
// snapshot, in one transaction.
func (s *Store) EndLeftover(ctx context.Context, d registry.DialogSnapshot, endedAt time.Time, cause string) error {
	err := s.withTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE call_records SET ended = ?, end_cause = ?
			WHERE call_id = ? AND ended IS NULL AND started <= ?`,
			nanos(endedAt), cause, d.CallID, nanos(endedAt)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM dialog_snapshots WHERE node = ? AND key = ?`, d.Node, d.Key)
		return err
	})
	if err != nil {
		return fmt.Errorf("end leftover call %s: %w", d.CallID, err)
	}
	return nil
}
