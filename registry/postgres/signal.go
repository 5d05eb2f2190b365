package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/imcall/b2bua/registry"
)

// Bindings and call records: what the SIP servers write at call rate.

// PutBinding inserts or refreshes the binding keyed by (IMID, b.Key()),
// replacing another binding of the user with the same Contact and dropping
// the user's expired ones in the same transaction. An unknown user or
// terminal gives ErrNotFound.
func (s *Store) PutBinding(ctx context.Context, b registry.Binding) error {
	b, err := registry.ValidateBinding(b)
	if err != nil {
		return err
	}
	if b.UpdatedAt.IsZero() {
		b.UpdatedAt = now()
	}
	key := b.Key()
	err = s.withTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM bindings WHERE im_id = $1 AND binding_key <> $2 AND (expires <= $3 OR contact = $4)`,
			b.IMID, key, nanos(b.UpdatedAt), b.Contact); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO bindings (im_id, binding_key, contact, terminal_id, instance, source, transport, expires, updated)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
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
		return wrapf(err, "put binding %s of %s", key, b.IMID)
	}
	return nil
}

// RemoveBinding deletes the binding whose Key is key; removing a missing
// one is not an error (RFC 3261 section 10.2.2).
func (s *Store) RemoveBinding(ctx context.Context, imID, key string) error {
	id, err := registry.ParseIMID(imID)
	if err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM bindings WHERE im_id = $1 AND binding_key = $2`, id, key); err != nil {
		return wrapf(err, "remove binding %s of %s", key, id)
	}
	return nil
}

// Bindings lists imID's bindings that have not expired at now, newest
// first. A user with none, or an unknown user, gives an empty list.
func (s *Store) Bindings(ctx context.Context, imID string, now time.Time) ([]registry.Binding, error) {
	id, err := registry.ParseIMID(imID)
	if err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT im_id, contact, terminal_id, instance, source, transport, expires, updated
		FROM bindings WHERE im_id = $1 AND expires > $2 ORDER BY updated DESC, binding_key COLLATE "C"`, id, nanos(now))
	if err != nil {
		return nil, wrapf(err, "bindings of %s", id)
	}
	out, err := collect(rows, scanBinding)
	if err != nil {
		return nil, wrapf(err, "bindings of %s", id)
	}
	return out, nil
}

// LiveBindings lists every user's bindings that have not expired at now,
// newest first, at most limit of them, with the number there are in all:
// the clients logged in now, for the status page and the metrics.
func (s *Store) LiveBindings(ctx context.Context, now time.Time, limit int) ([]registry.Binding, int, error) {
	var total int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM bindings WHERE expires > $1`, nanos(now)).Scan(&total); err != nil {
		return nil, 0, wrapf(err, "live bindings")
	}
	out := []registry.Binding{}
	if limit <= 0 || total == 0 {
		return out, total, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT im_id, contact, terminal_id, instance, source, transport, expires, updated
		FROM bindings WHERE expires > $1 ORDER BY updated DESC, im_id COLLATE "C", binding_key COLLATE "C" LIMIT $2`, nanos(now), limit)
	if err != nil {
		return nil, 0, wrapf(err, "live bindings")
	}
	out, err = collect(rows, scanBinding)
	if err != nil {
		return nil, 0, wrapf(err, "live bindings")
	}
	return out, total, nil
}

func scanBinding(row pgx.Row) (registry.Binding, error) {
	var b registry.Binding
	var term *int64
	var expires, updated int64
	err := row.Scan(&b.IMID, &b.Contact, &term, &b.Instance, &b.Source, &b.Transport, &expires, &updated)
	b.TerminalID = derefID(term)
	b.Expires, b.UpdatedAt = fromNanos(expires), fromNanos(updated)
	return b, err
}

const (
	insertCallSQL = `INSERT INTO call_records
		(call_id, caller, callee, terminal_id, scp_outcome, started, ringing, answered, ended, end_cause, stats, sip_status, q850_cause, node)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id`
	updateCallSQL = `UPDATE call_records SET ringing = $1, answered = $2, ended = $3, end_cause = $4, terminal_id = $5,
		scp_outcome = $6, stats = $7, sip_status = $8, q850_cause = $9 WHERE id = $10`
)

// StartCall inserts a call record and returns its ID. A zero StartedAt
// means now.
func (s *Store) StartCall(ctx context.Context, r registry.CallRecord) (int64, error) {
	r, err := checkStart(r)
	if err != nil {
		return 0, err
	}
	var id int64
	if err := s.pool.QueryRow(ctx, insertCallSQL, startArgs(r)...).Scan(&id); err != nil {
		return 0, wrapf(err, "start call record %s", r.CallID)
	}
	return id, nil
}

func checkStart(r registry.CallRecord) (registry.CallRecord, error) {
	r, err := registry.ValidateCallRecord(r)
	if err != nil {
		return r, err
	}
	if r.StartedAt.IsZero() {
		r.StartedAt = now()
	}
	return r, nil
}

func startArgs(r registry.CallRecord) []any {
	return []any{r.CallID, r.Caller, r.Callee, nullID(r.TerminalID), r.SCPOutcome, nanos(r.StartedAt),
		nullNanos(r.RingingAt), nullNanos(r.AnsweredAt), nullNanos(r.EndedAt), r.EndCause, r.Stats, r.SIPStatus, r.Q850Cause, r.Node}
}

func checkUpdate(r registry.CallRecord) error {
	if r.TerminalID < 0 {
		return invalid("terminal_id", "must not be negative")
	}
	if r.Stats != "" {
		if _, err := registry.ValidateCallRecord(registry.CallRecord{CallID: "-", Stats: r.Stats}); err != nil {
			return err
		}
	}
	return nil
}

func updateArgs(r registry.CallRecord) []any {
	return []any{nullNanos(r.RingingAt), nullNanos(r.AnsweredAt), nullNanos(r.EndedAt), r.EndCause, nullID(r.TerminalID), r.SCPOutcome, r.Stats, r.SIPStatus, r.Q850Cause, r.ID}
}

// UpdateCall writes the end fields of record r.ID; ErrNotFound if there is
// no such record.
func (s *Store) UpdateCall(ctx context.Context, r registry.CallRecord) error {
	if err := checkUpdate(r); err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, updateCallSQL, updateArgs(r)...)
	return affectedOne(tag, err, fmt.Sprintf("call record %d", r.ID))
}

// maxCallBatch bounds one WriteCalls transaction.
const maxCallBatch = 256

// WriteCalls writes a batch of call records, each transaction of up to
// maxCallBatch records sent as one pipeline: a burst of calls costs one
// round trip and one commit, not one per record. A record with ID 0 is
// inserted and gets its new ID in recs[i].ID; any other is updated.
// errs[i] is record i's own error (invalid, ErrNotFound); err is a
// transaction's, and then that chunk and the ones after it were not
// written.
func (s *Store) WriteCalls(ctx context.Context, recs []registry.CallRecord) (errs []error, err error) {
	errs = make([]error, len(recs))
	for lo := 0; lo < len(recs); lo += maxCallBatch {
		chunk := recs[lo:min(lo+maxCallBatch, len(recs))]
		ids := make([]int64, len(chunk))
		cerrs := make([]error, len(chunk))
		b := &pgx.Batch{}
		for i, r := range chunk {
			ids[i], cerrs[i] = r.ID, nil
			if r.ID == 0 {
				r, err := checkStart(r)
				if cerrs[i] = err; err == nil {
					b.Queue(insertCallSQL, startArgs(r)...).QueryRow(func(row pgx.Row) error {
						return row.Scan(&ids[i])
					})
				}
				continue
			}
			if cerrs[i] = checkUpdate(r); cerrs[i] == nil {
				b.Queue(updateCallSQL, updateArgs(r)...).Exec(func(tag pgconn.CommandTag) error {
					if tag.RowsAffected() == 0 {
						cerrs[i] = fmt.Errorf("call record %d: %w", r.ID, registry.ErrNotFound)
					}
					return nil
				})
			}
		}
		if err := s.sendBatch(ctx, b); err != nil {
			return make([]error, len(recs)), wrapf(err, "write call records")
		}
		for i := range chunk {
			chunk[i].ID, errs[lo+i] = ids[i], cerrs[i]
		}
	}
	return errs, nil
}

// Calls lists the most recent call records, newest first. A limit of zero
// or less means 100.
func (s *Store) Calls(ctx context.Context, limit int) ([]registry.CallRecord, error) {
	return s.ListCalls(ctx, registry.CallFilter{Limit: limit})
}

// ListCalls returns the records f selects, newest first; the outcome is
// derived from each record (registry.CallRecord.Outcome), so with an
// outcome filter pages are read until enough records match.
func (s *Store) ListCalls(ctx context.Context, f registry.CallFilter) ([]registry.CallRecord, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	if f.Outcome != "" {
		if _, err := registry.ParseOutcome(f.Outcome); err != nil {
			return nil, err
		}
	}
	out := []registry.CallRecord{}
	before := f.BeforeID
	for {
		page, err := s.callPage(ctx, f, before, limit)
		if err != nil {
			return nil, wrapf(err, "list calls")
		}
		for _, r := range page {
			if f.Outcome == "" || r.Outcome() == f.Outcome {
				out = append(out, r)
				if len(out) == limit {
					return out, nil
				}
			}
		}
		if len(page) < limit {
			return out, nil
		}
		before = page[len(page)-1].ID
	}
}

func (s *Store) callPage(ctx context.Context, f registry.CallFilter, before int64, limit int) ([]registry.CallRecord, error) {
	var where []string
	var args []any
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	if before > 0 {
		where = append(where, "id < "+arg(before))
	}
	if !f.Since.IsZero() {
		where = append(where, "started >= "+arg(nanos(f.Since)))
	}
	if f.IMID != "" {
		// The caller is a URI: the user's own is sip:IMID@domain.
		where = append(where, `(callee = `+arg(f.IMID)+` OR caller LIKE `+arg("%:"+likeEscape(f.IMID)+"@%")+` ESCAPE '\')`)
	}
	q := `SELECT id, call_id, caller, callee, terminal_id, scp_outcome, started, ringing, answered, ended, end_cause, stats, sip_status, q850_cause, node FROM call_records`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	rows, err := s.pool.Query(ctx, q+" ORDER BY id DESC LIMIT "+arg(limit), args...)
	if err != nil {
		return nil, err
	}
	return collect(rows, func(row pgx.Row) (registry.CallRecord, error) {
		var r registry.CallRecord
		var term, ringing, answered, ended *int64
		var started int64
		err := row.Scan(&r.ID, &r.CallID, &r.Caller, &r.Callee, &term, &r.SCPOutcome, &started, &ringing, &answered, &ended, &r.EndCause, &r.Stats, &r.SIPStatus, &r.Q850Cause, &r.Node)
		r.TerminalID = derefID(term)
		r.StartedAt, r.RingingAt, r.AnsweredAt, r.EndedAt = fromNanos(started), fromNullNanos(ringing), fromNullNanos(answered), fromNullNanos(ended)
		return r, err
	})
}

func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

var (
	_ registry.SignalStore = (*Store)(nil)
	_ registry.CallStore   = (*Store)(nil)
)
