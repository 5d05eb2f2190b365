package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/imcall/b2bua/registry"
)

// Bindings and call records: what the SIP server writes at call rate.

// PutBinding inserts or refreshes the binding keyed by (IMID, b.Key()): a
// client with +sip.instance keeps one login whatever Contact it registers
// from (RFC 5626 §6), and another binding of the user with the same Contact
// is replaced, since a Contact reaches one client. The user's expired
// bindings are dropped in the same transaction, so the table does not grow
// with every client that stopped refreshing. An unknown user or terminal
// gives ErrNotFound.
func (s *Store) PutBinding(ctx context.Context, b registry.Binding) error {
	b, err := registry.ValidateBinding(b)
	if err != nil {
		return err
	}
	if b.UpdatedAt.IsZero() {
		b.UpdatedAt = now()
	}
	key := b.Key()
	err = s.withTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM bindings WHERE im_id = ? AND binding_key <> ? AND (expires <= ? OR contact = ?)`,
			b.IMID, key, nanos(b.UpdatedAt), b.Contact); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO bindings (im_id, binding_key, contact, terminal_id, instance, source, transport, expires, updated)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (im_id, binding_key) DO UPDATE SET contact = excluded.contact, terminal_id = excluded.terminal_id,
				instance = excluded.instance, source = excluded.source, transport = excluded.transport,
				expires = excluded.expires, updated = excluded.updated`,
			b.IMID, key, b.Contact, nullID(b.TerminalID), b.Instance, b.Source, b.Transport, nanos(b.Expires), nanos(b.UpdatedAt))
		return err
	})
	if isForeignKey(err) {
		return fmt.Errorf("binding %s of user %s (terminal %d): %w", key, b.IMID, b.TerminalID, registry.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("put binding %s of %s: %w", key, b.IMID, err)
	}
	return nil
}

// RemoveBinding deletes the binding whose Key is key; removing a missing
// one is not an error (an un-REGISTER may repeat, RFC 3261 section 10.2.2).
func (s *Store) RemoveBinding(ctx context.Context, imID, key string) error {
	id, err := registry.ParseIMID(imID)
	if err != nil {
		return err
	}
	if _, err := s.w.ExecContext(ctx, `DELETE FROM bindings WHERE im_id = ? AND binding_key = ?`, id, key); err != nil {
		return fmt.Errorf("remove binding %s of %s: %w", key, id, err)
	}
	return nil
}

// Bindings lists imID's bindings that have not expired at now, newest
// first: the clients the user is logged in on at now. A user with none, or
// an unknown user, gives an empty list.
func (s *Store) Bindings(ctx context.Context, imID string, now time.Time) ([]registry.Binding, error) {
	id, err := registry.ParseIMID(imID)
	if err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, `SELECT im_id, contact, terminal_id, instance, source, transport, expires, updated
		FROM bindings WHERE im_id = ? AND expires > ? ORDER BY updated DESC, binding_key`, id, nanos(now))
	if err != nil {
		return nil, fmt.Errorf("bindings of %s: %w", id, err)
	}
	defer rows.Close()
	out := []registry.Binding{}
	for rows.Next() {
		var b registry.Binding
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

// LiveBindings lists every user's bindings that have not expired at now,
// newest first, at most limit of them, with the number there are in all:
// the clients logged in now, for the status page and the metrics.
func (s *Store) LiveBindings(ctx context.Context, now time.Time, limit int) ([]registry.Binding, int, error) {
	var total int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM bindings WHERE expires > ?`, nanos(now)).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("live bindings: %w", err)
	}
	out := []registry.Binding{}
	if limit <= 0 || total == 0 {
		return out, total, nil
	}
	rows, err := s.r.QueryContext(ctx, `SELECT im_id, contact, terminal_id, instance, source, transport, expires, updated
		FROM bindings WHERE expires > ? ORDER BY updated DESC, im_id, binding_key LIMIT ?`, nanos(now), limit)
	if err != nil {
		return nil, 0, fmt.Errorf("live bindings: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var b registry.Binding
		var term sql.NullInt64
		var expires, updated int64
		if err := rows.Scan(&b.IMID, &b.Contact, &term, &b.Instance, &b.Source, &b.Transport, &expires, &updated); err != nil {
			return nil, 0, fmt.Errorf("live bindings: %w", err)
		}
		b.TerminalID = term.Int64
		b.Expires, b.UpdatedAt = fromNanos(expires), fromNanos(updated)
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("live bindings: %w", err)
	}
	return out, total, nil
}

// StartCall inserts a call record and returns its ID. A zero StartedAt
// means now.
func (s *Store) StartCall(ctx context.Context, r registry.CallRecord) (int64, error) {
	return startCall(ctx, s.w, r)
}

// UpdateCall writes RingingAt, AnsweredAt, EndedAt, EndCause, TerminalID, SCPOutcome
// and Stats of record r.ID; ErrNotFound if there is no such record.
func (s *Store) UpdateCall(ctx context.Context, r registry.CallRecord) error {
	return updateCall(ctx, s.w, r)
}

// maxCallBatch bounds one WriteCalls transaction, so that a backlog does
// not hold the write lock (and the CLI waiting on it) for long.
const maxCallBatch = 256

// WriteCalls writes a batch of call records, in transactions of up to
// maxCallBatch records: a burst of calls costs one commit, not one per
// record, and every commit also empties the ActiveTerminal cache. A record
// with ID 0 is inserted as StartCall does and gets its new ID in recs[i].ID;
// any other is updated as UpdateCall does. errs[i] is record i's own error
// (invalid, ErrNotFound) and does not stop the others; err is a
// transaction's, and then the records of that transaction and the ones
// after it were not written (their IDs are left as they were).
func (s *Store) WriteCalls(ctx context.Context, recs []registry.CallRecord) (errs []error, err error) {
	errs = make([]error, len(recs))
	for lo := 0; lo < len(recs); lo += maxCallBatch {
		chunk := recs[lo:min(lo+maxCallBatch, len(recs))]
		ids := make([]int64, len(chunk))
		err := s.withTx(ctx, func(tx *sql.Tx) error {
			// Statements prepared once per transaction: preparing
			// and finalizing each record's costs more than the write.
			q := callStmts{}
			defer q.close()
			var err error
			if q.insert, err = tx.PrepareContext(ctx, insertCallSQL); err != nil {
				return err
			}
			if q.update, err = tx.PrepareContext(ctx, updateCallSQL); err != nil {
				return err
			}
			for i, r := range chunk {
				ids[i] = r.ID
				if r.ID == 0 {
					ids[i], errs[lo+i] = startCall(ctx, stmtQ{q.insert}, r)
				} else {
					errs[lo+i] = updateCall(ctx, stmtQ{q.update}, r)
				}
				if errs[lo+i] != nil && ctx.Err() != nil {
					return ctx.Err()
				}
			}
			return nil
		})
		if err != nil {
			for i := lo; i < len(recs); i++ {
				errs[i] = nil
			}
			return errs, fmt.Errorf("write call records: %w", err)
		}
		for i := range chunk {
			chunk[i].ID = ids[i]
		}
	}
	return errs, nil
}

// callStmts are WriteCalls' statements in one transaction.
type callStmts struct{ insert, update *sql.Stmt }

func (q callStmts) close() {
	for _, st := range []*sql.Stmt{q.insert, q.update} {
		if st != nil {
			st.Close()
		}
	}
}

const (
	insertCallSQL = `INSERT INTO call_records
		(call_id, caller, callee, terminal_id, scp_outcome, started, ringing, answered, ended, end_cause, stats, sip_status, q850_cause, node)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`
	updateCallSQL = `UPDATE call_records SET ringing = ?, answered = ?, ended = ?, end_cause = ?, terminal_id = ?,
		scp_outcome = ?, stats = ?, sip_status = ?, q850_cause = ? WHERE id = ?`
)

// rowQueryer and execer are what startCall and updateCall need of a
// database, a transaction or a statement prepared for them.
type rowQueryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// stmtQ adapts a prepared statement to rowQueryer and execer; the query
// text is the statement's own.
type stmtQ struct{ *sql.Stmt }

func (q stmtQ) QueryRowContext(ctx context.Context, _ string, args ...any) *sql.Row {
	return q.Stmt.QueryRowContext(ctx, args...)
}

func (q stmtQ) ExecContext(ctx context.Context, _ string, args ...any) (sql.Result, error) {
	return q.Stmt.ExecContext(ctx, args...)
}

func startCall(ctx context.Context, db rowQueryer, r registry.CallRecord) (int64, error) {
	r, err := registry.ValidateCallRecord(r)
	if err != nil {
		return 0, err
	}
	if r.StartedAt.IsZero() {
		r.StartedAt = now()
	}
	var id int64
	err = db.QueryRowContext(ctx, insertCallSQL,
		r.CallID, r.Caller, r.Callee, nullID(r.TerminalID), r.SCPOutcome, nanos(r.StartedAt),
		nullNanos(r.RingingAt), nullNanos(r.AnsweredAt), nullNanos(r.EndedAt), r.EndCause, r.Stats, r.SIPStatus, r.Q850Cause, r.Node).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("start call record %s: %w", r.CallID, err)
	}
	return id, nil
}

func updateCall(ctx context.Context, db execer, r registry.CallRecord) error {
	if r.TerminalID < 0 {
		return invalid("terminal_id", "must not be negative")
	}
	if r.Stats != "" {
		if _, err := registry.ValidateCallRecord(registry.CallRecord{CallID: "-", Stats: r.Stats}); err != nil {
			return err
		}
	}
	res, err := db.ExecContext(ctx, updateCallSQL,
		nullNanos(r.RingingAt), nullNanos(r.AnsweredAt), nullNanos(r.EndedAt), r.EndCause, nullID(r.TerminalID), r.SCPOutcome, r.Stats, r.SIPStatus, r.Q850Cause, r.ID)
	return affectedOne(res, err, fmt.Sprintf("call record %d", r.ID))
}

// Calls lists the most recent call records, newest first. A limit of zero
// or less means 100.
func (s *Store) Calls(ctx context.Context, limit int) ([]registry.CallRecord, error) {
	return s.ListCalls(ctx, registry.CallFilter{Limit: limit})
}

var _ registry.SignalStore = (*Store)(nil)
