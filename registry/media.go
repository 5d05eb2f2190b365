package registry

import (
	"context"
	"time"
)

// Media is one stored piece of content for store-and-link. It is keyed by
// the SHA-256 of its link token; the token itself is never stored.
type Media struct {
	TokenHash   [32]byte // SHA-256 of the link token
	Owner       string   // IM ID of the recipient the link was sent to
	Sender      string   // who sent it (IM ID or URI user), for the record
	ContentType string
	Size        int64
	SHA256      [32]byte // of the content
	Created     time.Time
	Expires     time.Time
	Data        []byte // inline content; nil when Path is set or after purge
	Path        string // file holding the content; "" when inline
	Purged      bool   // the bytes are gone (expired); the row is a tombstone
}

// PendingMessage is a MESSAGE kept for a recipient who was absent or busy.
type PendingMessage struct {
	ID             int64
	Recipient      string // IM ID
	Sender         string // IM ID or URI user of the sender
	SenderDisplay  string
	ContentType    string
	Body           []byte
	ReplyURI       string // where the delivery notice is addressed
	ReplyDest      string // host:port the notice is sent to
	ReplyTransport string // UDP, TCP, TLS
	Created        time.Time
	Expires        time.Time // kept until then, then dropped
	Attempts       int
	NextAttempt    time.Time
}

// MediaStore is the part of the registry that keeps stored media and
// deferred messages. registry/sqlite implements it.
type MediaStore interface {
	// PutMedia stores m; a second m with the same TokenHash is ErrExists.
	PutMedia(ctx context.Context, m Media) error
	// MediaByTokenHash gives the media keyed by h, or ErrNotFound.
	MediaByTokenHash(ctx context.Context, h [32]byte) (Media, error)
	// PurgeMedia drops the bytes of media expired at now (returning the
	// rows whose Path the caller must remove) and deletes the tombstones of
	// media expired before forgetBefore.
	PurgeMedia(ctx context.Context, now, forgetBefore time.Time) ([]Media, error)

	// AddPending keeps a message for later delivery and returns its ID.
	AddPending(ctx context.Context, p PendingMessage) (int64, error)
	// DuePending lists up to limit messages whose NextAttempt is at or
	// before now, oldest first.
	DuePending(ctx context.Context, now time.Time, limit int) ([]PendingMessage, error)
	// PendingFor lists the messages kept for recipient, oldest first.
	PendingFor(ctx context.Context, recipient string) ([]PendingMessage, error)
	// ReschedulePending records one more failed attempt of id.
	ReschedulePending(ctx context.Context, id int64, attempts int, next time.Time) error
	// DeletePending removes id (delivered or given up); a missing id is not
	// an error, so that two deliverers racing do not fail.
	DeletePending(ctx context.Context, id int64) (bool, error)
	// HurryPending makes recipient's kept messages due at at (those due
	// later), so that the node delivering them tries them on its next
	// sweep.
	HurryPending(ctx context.Context, recipient string, at time.Time) error
}
