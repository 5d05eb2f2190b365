package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/imcall/b2bua/registry"
)

// PutMedia stores m. Either Data or Path carries the content.
func (s *Store) PutMedia(ctx context.Context, m registry.Media) error {
	if m.Owner == "" || m.ContentType == "" {
		return invalid("media", "owner and content type are required")
	}
	if m.Created.IsZero() {
		m.Created = now()
	}
	if !m.Expires.After(m.Created) {
		return invalid("media", "expiry must be after creation")
	}
	var data any
	if m.Path == "" {
		data = m.Data
		if m.Data == nil {
			data = []byte{}
		}
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO media (token_hash, owner, sender, content_type, size, sha256, created, expires, data, path)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		m.TokenHash[:], m.Owner, m.Sender, m.ContentType, m.Size, m.SHA256[:], nanos(m.Created), nanos(m.Expires), data, m.Path)
	if isUnique(err) {
		return fmt.Errorf("media: %w", registry.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("put media: %w", err)
	}
	return nil
}

// MediaByTokenHash gives the media keyed by h with its inline bytes.
func (s *Store) MediaByTokenHash(ctx context.Context, h [32]byte) (registry.Media, error) {
	var m registry.Media
	var th, sum, data []byte
	var created, expires int64
	var hasData bool
	err := s.r.QueryRowContext(ctx, `SELECT token_hash, owner, sender, content_type, size, sha256, created, expires, data, data IS NOT NULL, path
		FROM media WHERE token_hash = ?`, h[:]).
		Scan(&th, &m.Owner, &m.Sender, &m.ContentType, &m.Size, &sum, &created, &expires, &data, &hasData, &m.Path)
	if errors.Is(err, sql.ErrNoRows) {
		return registry.Media{}, fmt.Errorf("media: %w", registry.ErrNotFound)
	}
	if err != nil {
		return registry.Media{}, fmt.Errorf("media: %w", err)
	}
	copy(m.TokenHash[:], th)
	copy(m.SHA256[:], sum)
	m.Created, m.Expires = fromNanos(created), fromNanos(expires)
	if hasData {
		m.Data = data
		if m.Data == nil {
			m.Data = []byte{}
		}
	}
	m.Purged = !hasData && m.Path == ""
	return m, nil
}

// PurgeMedia drops the bytes of expired media and forgets old tombstones.
func (s *Store) PurgeMedia(ctx context.Context, at, forgetBefore time.Time) ([]registry.Media, error) {
	var out []registry.Media
	err := s.withTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT token_hash, path FROM media
			WHERE expires <= ? AND (data IS NOT NULL OR path <> '')`, nanos(at))
		if err != nil {
			return err
		}
		for rows.Next() {
			var m registry.Media
			var th []byte
			if err := rows.Scan(&th, &m.Path); err != nil {
				rows.Close()
				return err
			}
			copy(m.TokenHash[:], th)
			out = append(out, m)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE media SET data = NULL, path = ''
			WHERE expires <= ? AND (data IS NOT NULL OR path <> '')`, nanos(at)); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM media WHERE expires < ?`, nanos(forgetBefore))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("purge media: %w", err)
	}
	return out, nil
}

// AddPending keeps p for later delivery.
func (s *Store) AddPending(ctx context.Context, p registry.PendingMessage) (int64, error) {
	id, err := registry.ParseIMID(p.Recipient)
	if err != nil {
		return 0, err
	}
	if p.ContentType == "" {
		return 0, invalid("content_type", "is required")
	}
	if p.Created.IsZero() {
		p.Created = now()
	}
	if p.NextAttempt.IsZero() {
		p.NextAttempt = p.Created
	}
	if p.Body == nil {
		p.Body = []byte{}
	}
	res, err := s.w.ExecContext(ctx, `INSERT INTO pending_messages (recipient, sender, sender_display, content_type, body,
			reply_uri, reply_dest, reply_transport, created, expires, attempts, next_attempt)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		id, p.Sender, p.SenderDisplay, p.ContentType, p.Body, p.ReplyURI, p.ReplyDest, p.ReplyTransport,
		nanos(p.Created), nanos(p.Expires), p.Attempts, nanos(p.NextAttempt))
	if err != nil {
		return 0, fmt.Errorf("add pending message for %s: %w", id, err)
	}
	return res.LastInsertId()
}

const pendingColumns = `id, recipient, sender, sender_display, content_type, body, reply_uri, reply_dest, reply_transport,
	created, expires, attempts, next_attempt`

func scanPending(rows *sql.Rows) ([]registry.PendingMessage, error) {
	defer rows.Close()
	out := []registry.PendingMessage{}
	for rows.Next() {
		var p registry.PendingMessage
		var created, expires, next int64
		if err := rows.Scan(&p.ID, &p.Recipient, &p.Sender, &p.SenderDisplay, &p.ContentType, &p.Body,
			&p.ReplyURI, &p.ReplyDest, &p.ReplyTransport, &created, &expires, &p.Attempts, &next); err != nil {
			return nil, err
		}
		p.Created, p.Expires, p.NextAttempt = fromNanos(created), fromNanos(expires), fromNanos(next)
		out = append(out, p)
	}
	return out, rows.Err()
}

// DuePending lists messages due for an attempt at now.
func (s *Store) DuePending(ctx context.Context, at time.Time, limit int) ([]registry.PendingMessage, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+pendingColumns+` FROM pending_messages
		WHERE next_attempt <= ? ORDER BY next_attempt, id LIMIT ?`, nanos(at), limit)
	if err != nil {
		return nil, fmt.Errorf("due pending messages: %w", err)
	}
	out, err := scanPending(rows)
	if err != nil {
		return nil, fmt.Errorf("due pending messages: %w", err)
	}
	return out, nil
}

// PendingFor lists the messages kept for recipient.
func (s *Store) PendingFor(ctx context.Context, recipient string) ([]registry.PendingMessage, error) {
	id, err := registry.ParseIMID(recipient)
	if err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+pendingColumns+` FROM pending_messages
		WHERE recipient = ? ORDER BY created, id`, id)
	if err != nil {
		return nil, fmt.Errorf("pending messages of %s: %w", id, err)
	}
	out, err := scanPending(rows)
	if err != nil {
		return nil, fmt.Errorf("pending messages of %s: %w", id, err)
	}
	return out, nil
}

// ReschedulePending records a failed attempt.
func (s *Store) ReschedulePending(ctx context.Context, id int64, attempts int, next time.Time) error {
	if _, err := s.w.ExecContext(ctx, `UPDATE pending_messages SET attempts = ?, next_attempt = ? WHERE id = ?`,
		attempts, nanos(next), id); err != nil {
		return fmt.Errorf("reschedule pending message %d: %w", id, err)
	}
	return nil
}

// DeletePending removes id and reports whether it was there: of two
// deliverers racing for one message, only the one that deleted it sends it.
func (s *Store) DeletePending(ctx context.Context, id int64) (bool, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM pending_messages WHERE id = ?`, id)
	if err != nil {
		return false, fmt.Errorf("delete pending message %d: %w", id, err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

var _ registry.MediaStore = (*Store)(nil)
