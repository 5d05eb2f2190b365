package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/imcall/b2bua/registry"
)

// Stored media and deferred messages.

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
	var data []byte
	if m.Path == "" {
		data = m.Data
		if data == nil {
			data = []byte{}
		}
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO media (token_hash, owner, sender, content_type, size, sha256, created, expires, data, path)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		m.TokenHash[:], m.Owner, m.Sender, m.ContentType, m.Size, m.SHA256[:], nanos(m.Created), nanos(m.Expires), data, m.Path)
	if isUnique(err) {
		return fmt.Errorf("media: %w", registry.ErrExists)
	}
	if err != nil {
		return wrapf(err, "put media")
	}
	return nil
}

// MediaByTokenHash gives the media keyed by h with its inline bytes.
func (s *Store) MediaByTokenHash(ctx context.Context, h [32]byte) (registry.Media, error) {
	var m registry.Media
	var th, sum, data []byte
	var created, expires int64
	var hasData bool
	err := s.pool.QueryRow(ctx, `SELECT token_hash, owner, sender, content_type, size, sha256, created, expires, data, data IS NOT NULL, path
		FROM media WHERE token_hash = $1`, h[:]).
		Scan(&th, &m.Owner, &m.Sender, &m.ContentType, &m.Size, &sum, &created, &expires, &data, &hasData, &m.Path)
	if errors.Is(err, pgx.ErrNoRows) {
		return registry.Media{}, fmt.Errorf("media: %w", registry.ErrNotFound)
	}
	if err != nil {
		return registry.Media{}, wrapf(err, "media")
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
// The rows whose bytes it dropped are returned by the same statement, so
// two nodes purging at once each get distinct rows, never one twice.
func (s *Store) PurgeMedia(ctx context.Context, at, forgetBefore time.Time) ([]registry.Media, error) {
	var out []registry.Media
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE media m SET data = NULL, path = ''
			FROM (SELECT token_hash, path FROM media WHERE expires <= $1 AND (data IS NOT NULL OR path <> '') FOR UPDATE) old
			WHERE m.token_hash = old.token_hash RETURNING old.token_hash, old.path`, nanos(at))
		if err != nil {
			return err
		}
		if out, err = collect(rows, func(row pgx.Row) (registry.Media, error) {
			var m registry.Media
			var th []byte
			err := row.Scan(&th, &m.Path)
			copy(m.TokenHash[:], th)
			return m, err
		}); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM media WHERE expires < $1`, nanos(forgetBefore))
		return err
	})
	if err != nil {
		return nil, wrapf(err, "purge media")
	}
	if len(out) == 0 {
		out = nil
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
	var out int64
	err = s.pool.QueryRow(ctx, `INSERT INTO pending_messages (recipient, sender, sender_display, content_type, body,
			reply_uri, reply_dest, reply_transport, created, expires, attempts, next_attempt)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id`,
		id, p.Sender, p.SenderDisplay, p.ContentType, p.Body, p.ReplyURI, p.ReplyDest, p.ReplyTransport,
		nanos(p.Created), nanos(p.Expires), p.Attempts, nanos(p.NextAttempt)).Scan(&out)
	if err != nil {
		return 0, wrapf(err, "add pending message for %s", id)
	}
	return out, nil
}

const pendingColumns = `id, recipient, sender, sender_display, content_type, body, reply_uri, reply_dest, reply_transport,
	created, expires, attempts, next_attempt`

func scanPending(row pgx.Row) (registry.PendingMessage, error) {
	var p registry.PendingMessage
	var created, expires, next int64
	err := row.Scan(&p.ID, &p.Recipient, &p.Sender, &p.SenderDisplay, &p.ContentType, &p.Body,
		&p.ReplyURI, &p.ReplyDest, &p.ReplyTransport, &created, &expires, &p.Attempts, &next)
	p.Created, p.Expires, p.NextAttempt = fromNanos(created), fromNanos(expires), fromNanos(next)
	if p.Body == nil {
		p.Body = []byte{}
	}
	return p, err
}

// DuePending lists messages due for an attempt at now.
func (s *Store) DuePending(ctx context.Context, at time.Time, limit int) ([]registry.PendingMessage, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.pool.Query(ctx, `SELECT `+pendingColumns+` FROM pending_messages
		WHERE next_attempt <= $1 ORDER BY next_attempt, id LIMIT $2`, nanos(at), limit)
	if err != nil {
		return nil, wrapf(err, "due pending messages")
	}
	out, err := collect(rows, scanPending)
	if err != nil {
		return nil, wrapf(err, "due pending messages")
	}
	return out, nil
}

// PendingFor lists the messages kept for recipient.
func (s *Store) PendingFor(ctx context.Context, recipient string) ([]registry.PendingMessage, error) {
	id, err := registry.ParseIMID(recipient)
	if err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+pendingColumns+` FROM pending_messages
		WHERE recipient = $1 ORDER BY created, id`, id)
	if err != nil {
		return nil, wrapf(err, "pending messages of %s", id)
	}
	out, err := collect(rows, scanPending)
	if err != nil {
		return nil, wrapf(err, "pending messages of %s", id)
	}
	return out, nil
}

// ReschedulePending records a failed attempt.
func (s *Store) ReschedulePending(ctx context.Context, id int64, attempts int, next time.Time) error {
	if _, err := s.pool.Exec(ctx, `UPDATE pending_messages SET attempts = $1, next_attempt = $2 WHERE id = $3`,
		attempts, nanos(next), id); err != nil {
		return wrapf(err, "reschedule pending message %d", id)
	}
	return nil
}

// DeletePending removes id and reports whether it was there.
func (s *Store) DeletePending(ctx context.Context, id int64) (bool, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM pending_messages WHERE id = $1`, id)
	if err != nil {
		return false, wrapf(err, "delete pending message %d", id)
	}
	return tag.RowsAffected() > 0, nil
}

// HurryPending makes recipient's kept messages due at at, for the node
// that holds the delivery lease to try them on its next sweep.
func (s *Store) HurryPending(ctx context.Context, recipient string, at time.Time) error {
	id, err := registry.ParseIMID(recipient)
	if err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, `UPDATE pending_messages SET next_attempt = $1 WHERE recipient = $2 AND next_attempt > $1`,
		nanos(at), id); err != nil {
		return wrapf(err, "hurry pending messages of %s", id)
	}
	return nil
}

var _ registry.MediaStore = (*Store)(nil)
