// Package mediastore keeps the media of store-and-link: content sent to a
// terminal that cannot render it is stored under an unguessable token, and
// the terminal gets a link to it. The package decides where the bytes live
// (inline in the registry or in a file), serves GET /m/{token}, and purges
// expired media.
//
// A token is 160 random bits in base64url. Only SHA-256 of the token is
// stored and looked up, so neither a copy of the database nor the time a
// lookup takes tells anything about a valid token.
package mediastore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/imcall/b2bua/registry"
)

// DB is the part of the registry the store needs; registry.MediaStore
// (registry/sqlite) implements it.
type DB interface {
	PutMedia(ctx context.Context, m registry.Media) error
	MediaByTokenHash(ctx context.Context, h [32]byte) (registry.Media, error)
	PurgeMedia(ctx context.Context, now, forgetBefore time.Time) ([]registry.Media, error)
}

// PathPrefix is where the handler serves media: GET PathPrefix + token.
const PathPrefix = "/m/"

// tokenBytes is the token's entropy: 160 bits, above the 128 that make
// guessing hopeless even at a billion tries a second for centuries.
const tokenBytes = 20

// ErrTooLarge is returned by Put for content over Config.MaxSize.
var ErrTooLarge = errors.New("mediastore: content too large")

// Config configures a Store. DB is required.
type Config struct {
	DB DB
	// Dir holds content larger than InlineMax, one file per item; ""
	// keeps everything inline in the registry.
	Dir string
	// InlineMax is the largest content kept inline when Dir is set; 0:
	// 64 KiB.
	InlineMax int64
	// MaxSize is the largest content accepted; 0: 10 MiB.
	MaxSize int64
	// TTL is how long a link works; 0: 7 days.
	TTL time.Duration
	// Tombstone is how long an expired link answers 410 Gone before it
	// becomes unknown (404); 0: 30 days.
	Tombstone time.Duration
	// PurgeInterval is how often expired media is purged; 0: 10 minutes.
	PurgeInterval time.Duration
	Logger        *slog.Logger     // nil: discard
	Now           func() time.Time // nil: time.Now
}

// Store stores media and serves it by token. It is safe for concurrent
// use. Its purge goroutine runs from New until Close.
type Store struct {
	cfg  Config
	log  *slog.Logger
	stop context.CancelFunc
	done chan struct{}
	once sync.Once
}

// New validates cfg and starts the purge ticker.
func New(cfg Config) (*Store, error) {
	if cfg.DB == nil {
		return nil, errors.New("mediastore: Config.DB is required")
	}
	if cfg.InlineMax <= 0 {
		cfg.InlineMax = 64 << 10
	}
	if cfg.MaxSize <= 0 {
		cfg.MaxSize = 10 << 20
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 7 * 24 * time.Hour
	}
	if cfg.Tombstone <= 0 {
		cfg.Tombstone = 30 * 24 * time.Hour
	}
	if cfg.PurgeInterval <= 0 {
		cfg.PurgeInterval = 10 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Dir != "" {
		if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("mediastore: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Store{cfg: cfg, log: cfg.Logger, stop: cancel, done: make(chan struct{})}
	go s.purgeLoop(ctx)
	return s, nil
}

// Close stops the purge goroutine and waits for it.
func (s *Store) Close() error {
	s.once.Do(func() {
		s.stop()
		<-s.done
	})
	return nil
}

// MaxSize is the largest content Put accepts.
func (s *Store) MaxSize() int64 { return s.cfg.MaxSize }

// Item is content to store.
type Item struct {
	Owner       string // IM ID of the recipient
	Sender      string // who sent it
	ContentType string
	Data        []byte
}

// Stored is what Put returns: the token for the link (give it only to the
// recipient; log LogID instead) and the record.
type Stored struct {
	Token string
	Media registry.Media
}

// Put stores it and returns a fresh token for it.
func (s *Store) Put(ctx context.Context, it Item) (Stored, error) {
	if int64(len(it.Data)) > s.cfg.MaxSize {
		return Stored{}, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(it.Data), s.cfg.MaxSize)
	}
	var raw [tokenBytes]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return Stored{}, fmt.Errorf("mediastore: token: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(raw[:])
	now := s.cfg.Now().UTC()
	m := registry.Media{
		TokenHash:   hashToken(token),
		Owner:       it.Owner,
		Sender:      it.Sender,
		ContentType: it.ContentType,
		Size:        int64(len(it.Data)),
		SHA256:      sha256.Sum256(it.Data),
		Created:     now,
		Expires:     now.Add(s.cfg.TTL),
		Data:        it.Data,
	}
	if s.cfg.Dir != "" && m.Size > s.cfg.InlineMax {
		path, err := s.writeFile(it.Data)
		if err != nil {
			return Stored{}, err
		}
		m.Path, m.Data = path, nil
	}
	if err := s.cfg.DB.PutMedia(ctx, m); err != nil {
		if m.Path != "" {
			os.Remove(m.Path)
		}
		return Stored{}, fmt.Errorf("mediastore: %w", err)
	}
	s.log.Info("media stored", "media", LogID(token), "owner", it.Owner, "type", it.ContentType, "size", m.Size)
	return Stored{Token: token, Media: m}, nil
}

// writeFile writes data under a random name that has nothing to do with
// the token, so the directory's contents give no links away.
func (s *Store) writeFile(data []byte) (string, error) {
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("mediastore: file name: %w", err)
	}
	path := filepath.Join(s.cfg.Dir, hex.EncodeToString(raw[:]))
	f, err := os.OpenFile(path+".tmp", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("mediastore: %w", err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(path+".tmp", path)
	}
	if err != nil {
		os.Remove(path + ".tmp")
		return "", fmt.Errorf("mediastore: %w", err)
	}
	return path, nil
}

// Purge drops the content of expired media now and forgets links expired
// longer than the tombstone period. It returns how many were purged.
func (s *Store) Purge(ctx context.Context) (int, error) {
	now := s.cfg.Now().UTC()
	gone, err := s.cfg.DB.PurgeMedia(ctx, now, now.Add(-s.cfg.Tombstone))
	if err != nil {
		return 0, fmt.Errorf("mediastore: %w", err)
	}
	for _, m := range gone {
		if m.Path == "" {
			continue
		}
		if err := os.Remove(m.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("expired media file not removed", "file", filepath.Base(m.Path), "err", err)
		}
	}
	if len(gone) > 0 {
		s.log.Info("expired media purged", "count", len(gone))
	}
	return len(gone), nil
}

func (s *Store) purgeLoop(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(s.cfg.PurgeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			pctx, cancel := context.WithTimeout(ctx, time.Minute)
			if _, err := s.Purge(pctx); err != nil && ctx.Err() == nil {
				s.log.Warn("media purge failed", "err", err)
			}
			cancel()
		}
	}
}

func hashToken(token string) [32]byte { return sha256.Sum256([]byte(token)) }

// LogID is what logs may say about a token: a short prefix of its hash,
// enough to match log lines, useless for building a link.
func LogID(token string) string {
	h := hashToken(token)
	return hex.EncodeToString(h[:6])
}

// Link joins base (e.g. "http://192.0.2.1:8080") and token into the URL of
// the media.
func Link(base, token string) string {
	return strings.TrimRight(base, "/") + PathPrefix + token
}
