package registry

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Bindings and call records: what the SIP server writes at call rate.

// PutBinding inserts or refreshes the binding keyed by (IMID, Contact). The
// user's expired bindings are dropped in the same transaction, so the table
// does not grow with every terminal that stopped refreshing. An unknown user
// or terminal gives ErrNotFound.
func (s *SQLite) PutBinding(ctx context.Context, b Binding) error {
	b, err := ValidateBinding(b)
	if err != nil {
		return err
	}
	if b.UpdatedAt.IsZero() {
		b.UpdatedAt = now()
	}
	err = s.withTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM bindings WHERE im_id = ? AND expires <= ? AND contact <> ?`,
			b.IMID, nanos(b.UpdatedAt), b.Contact); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO bindings (im_id, contact, terminal_id, instance, source, transport, expires, updated)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (im_id, contact) DO UPDATE SET terminal_id = excluded.terminal_id, instance = excluded.instance,
				source = excluded.source, transport = excluded.transport, expires = excluded.expires, updated = excluded.updated`,
			b.IMID, b.Contact, nullID(b.TerminalID), b.Instance, b.Source, b.Transport, nanos(b.Expires), nanos(b.UpdatedAt))
		return err
	})
	if isForeignKey(err) {
		return fmt.Errorf("binding %s of user %s (terminal %d): %w", b.Contact, b.IMID, b.TerminalID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("put binding %s of %s: %w", b.Contact, b.IMID, err)
	}
	return nil
}

// RemoveBinding deletes one binding; removing a missing one is not an error
// (an un-REGISTER may repeat, RFC 3261 section 10.2.2).
func (s *SQLite) RemoveBinding(ctx context.Context, imID, contact string) error {
	id, err := ParseIMID(imID)
	if err != nil {
		return err
	}
	if _, err := s.w.ExecContext(ctx, `DELETE FROM bindings WHERE im_id = ? AND contact = ?`, id, contact); err != nil {
		return fmt.Errorf("remove binding %s of %s: %w", contact, id, err)
	}
	return nil
}

// Bindings lists imID's bindings that have not expired at now, newest
// first. A user with none, or an unknown user, gives an empty list.
func (s *SQLite) Bindings(ctx context.Context, imID string, now time.Time) ([]Binding, error) {
	id, err := ParseIMID(imID)
	if err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, `SELECT im_id, contact, terminal_id, instance, source, transport, expires, updated
		FROM bindings WHERE im_id = ? AND expires > ? ORDER BY updated DESC, contact`, id, nanos(now))
	if err != nil {
		return nil, fmt.Errorf("bindings of %s: %w", id, err)
	}
	defer rows.Close()
	out := []Binding{}
	for rows.Next() {
		var b Binding
		var term sql.NullInt64
		var expires, updated int64
		if err := rows.Scan(&b.IMID, &b.Contact, &term, &b.Instance, &b.Source, &b.Transport, &expires, &updated); err != nil {
			return nil, fmt.Errorf("bindings of %s: %w", id, err)
		}
		b.TerminalID = term.Int64
		b.Expires, b.UpdatedAt = fromNanos(expires), fromNanos(updated)
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("bindings of %s: %w", id, err)
	}
	return out, nil
}

// StartCall inserts a call record and returns its ID. A zero StartedAt
// means now.
func (s *SQLite) StartCall(ctx context.Context, r CallRecord) (int64, error) {
	r, err := ValidateCallRecord(r)
	if err != nil {
		return 0, err
	}
	if r.StartedAt.IsZero() {
		r.StartedAt = now()
	}
	var id int64
	err = s.w.QueryRowContext(ctx, `INSERT INTO call_records
		(call_id, caller, callee, terminal_id, scp_outcome, started, answered, ended, end_cause, stats)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		r.CallID, r.Caller, r.Callee, nullID(r.TerminalID), r.SCPOutcome, nanos(r.StartedAt),
		nullNanos(r.AnsweredAt), nullNanos(r.EndedAt), r.EndCause, r.Stats).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("start call record %s: %w", r.CallID, err)
	}
	return id, nil
}

// UpdateCall writes AnsweredAt, EndedAt, EndCause, TerminalID, SCPOutcome
// and Stats of record r.ID; ErrNotFound if there is no such record.
func (s *SQLite) UpdateCall(ctx context.Context, r CallRecord) error {
	if r.TerminalID < 0 {
		return invalid("terminal_id", "must not be negative")
	}
	if r.Stats != "" {
		if _, err := ValidateCallRecord(CallRecord{CallID: "-", Stats: r.Stats}); err != nil {
			return err
		}
	}
	res, err := s.w.ExecContext(ctx, `UPDATE call_records SET answered = ?, ended = ?, end_cause = ?, terminal_id = ?,
		scp_outcome = ?, stats = ? WHERE id = ?`,
		nullNanos(r.AnsweredAt), nullNanos(r.EndedAt), r.EndCause, nullID(r.TerminalID), r.SCPOutcome, r.Stats, r.ID)
	return affectedOne(res, err, fmt.Sprintf("call record %d", r.ID))
}

// Calls lists the most recent call records, newest first. A limit of zero
// or less means 100.
func (s *SQLite) Calls(ctx context.Context, limit int) ([]CallRecord, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.r.QueryContext(ctx, `SELECT id, call_id, caller, callee, terminal_id, scp_outcome, started, answered, ended, end_cause, stats
		FROM call_records ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("list calls: %w", err)
	}
	defer rows.Close()
	out := []CallRecord{}
	for rows.Next() {
		var r CallRecord
		var term, answered, ended sql.NullInt64
		var started int64
		if err := rows.Scan(&r.ID, &r.CallID, &r.Caller, &r.Callee, &term, &r.SCPOutcome, &started, &answered, &ended, &r.EndCause, &r.Stats); err != nil {
			return nil, fmt.Errorf("list calls: %w", err)
		}
		r.TerminalID = term.Int64
		r.StartedAt, r.AnsweredAt, r.EndedAt = fromNanos(started), fromNullNanos(answered), fromNullNanos(ended)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list calls: %w", err)
	}
	return out, nil
}

var _ SignalStore = (*SQLite)(nil)
