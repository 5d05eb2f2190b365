package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/imcall/b2bua/registry"
)

// ListCalls returns the records f selects, newest first. The window, the
// user and the limit are in SQL; the outcome is derived from the record
// (registry.CallRecord.Outcome), so with an outcome filter pages are read
// until enough records match.
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
			return nil, fmt.Errorf("list calls: %w", err)
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
	if before > 0 {
		where, args = append(where, "id < ?"), append(args, before)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "started >= ?"), append(args, nanos(f.Since))
	}
	if f.IMID != "" {
		// The caller is a URI: the user's own is sip:IMID@domain.
		where = append(where, `(callee = ? OR caller LIKE ? ESCAPE '\')`)
		args = append(args, f.IMID, "%:"+likeEscape(f.IMID)+"@%")
	}
	q := `SELECT id, call_id, caller, callee, terminal_id, scp_outcome, started, ringing, answered, ended, end_cause, stats, sip_status, q850_cause, node FROM call_records`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	rows, err := s.r.QueryContext(ctx, q+" ORDER BY id DESC LIMIT ?", append(args, limit)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return scanCalls(rows)
}

func scanCalls(rows *sql.Rows) ([]registry.CallRecord, error) {
	out := []registry.CallRecord{}
	for rows.Next() {
		var r registry.CallRecord
		var term, ringing, answered, ended sql.NullInt64
		var started int64
		if err := rows.Scan(&r.ID, &r.CallID, &r.Caller, &r.Callee, &term, &r.SCPOutcome, &started, &ringing, &answered, &ended, &r.EndCause, &r.Stats, &r.SIPStatus, &r.Q850Cause, &r.Node); err != nil {
			return nil, err
		}
		r.TerminalID = term.Int64
		r.StartedAt, r.RingingAt, r.AnsweredAt, r.EndedAt = fromNanos(started), fromNullNanos(ringing), fromNullNanos(answered), fromNullNanos(ended)
		out = append(out, r)
	}
	return out, rows.Err()
}

func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

var _ registry.CallStore = (*Store)(nil)
