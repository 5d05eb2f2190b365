package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/imcall/b2bua/registry"
)

func testMediaStoreLifecycle(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.open(t)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	data := []byte("\x89PNG fake image bytes")
	inline := registry.Media{TokenHash: sha256.Sum256([]byte("tok-inline")), Owner: "bob", Sender: "alice", ContentType: "image/png",
		Size: int64(len(data)), SHA256: sha256.Sum256(data), Created: t0, Expires: t0.Add(time.Hour), Data: data}
	file := registry.Media{TokenHash: sha256.Sum256([]byte("tok-file")), Owner: "bob", ContentType: "video/mp4",
		Size: 10, Created: t0, Expires: t0.Add(3 * time.Hour), Path: "/var/media/x"}
	empty := registry.Media{TokenHash: sha256.Sum256([]byte("tok-empty")), Owner: "bob", ContentType: "text/plain",
		Created: t0, Expires: t0.Add(time.Hour)}
	for _, m := range []registry.Media{inline, file, empty} {
		if err := s.PutMedia(ctx, m); err != nil {
			t.Fatalf("PutMedia: %v", err)
		}
	}
	if err := s.PutMedia(ctx, inline); !errors.Is(err, registry.ErrExists) {
		t.Errorf("PutMedia twice = %v, want ErrExists", err)
	}
	if err := s.PutMedia(ctx, registry.Media{Owner: "bob", ContentType: "x/y", Created: t0, Expires: t0}); err == nil {
		t.Error("PutMedia with expiry at creation succeeded")
	}

	tests := []struct {
		name       string
		token      string
		wantErr    error
		wantData   []byte
		wantPath   string
		wantPurged bool
	}{
		{name: "inline", token: "tok-inline", wantData: data},
		{name: "file", token: "tok-file", wantPath: "/var/media/x"},
		{name: "empty body", token: "tok-empty", wantData: []byte{}},
		{name: "unknown", token: "nope", wantErr: registry.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := s.MediaByTokenHash(ctx, sha256.Sum256([]byte(tt.token)))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if !bytes.Equal(m.Data, tt.wantData) || (m.Data == nil) != (tt.wantData == nil) || m.Path != tt.wantPath || m.Purged != tt.wantPurged {
				t.Errorf("got data %q path %q purged %v", m.Data, m.Path, m.Purged)
			}
		})
	}
	got, _ := s.MediaByTokenHash(ctx, inline.TokenHash)
	if got.Owner != "bob" || got.Sender != "alice" || got.SHA256 != inline.SHA256 || !got.Created.Equal(t0) || !got.Expires.Equal(inline.Expires) || got.Size != inline.Size {
		t.Errorf("stored fields differ: %+v", got)
	}

	// At t0+2h the inline and empty ones have expired: their bytes go, the
	// file one stays. The rows remain as tombstones.
	purged, err := s.PurgeMedia(ctx, t0.Add(2*time.Hour), t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(purged) != 2 {
		t.Errorf("purged %d, want 2", len(purged))
	}
	m, err := s.MediaByTokenHash(ctx, inline.TokenHash)
	if err != nil || !m.Purged || m.Data != nil {
		t.Errorf("after purge: %+v, %v; want a tombstone", m, err)
	}
	// Later the file's bytes go (the caller gets its path) and old
	// tombstones are forgotten.
	purged, err = s.PurgeMedia(ctx, t0.Add(4*time.Hour), t0.Add(2*time.Hour))
	if err != nil || len(purged) != 1 || purged[0].Path != "/var/media/x" {
		t.Fatalf("second purge = %+v, %v", purged, err)
	}
	if _, err := s.MediaByTokenHash(ctx, inline.TokenHash); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("forgotten tombstone: %v, want ErrNotFound", err)
	}
	if m, err := s.MediaByTokenHash(ctx, file.TokenHash); err != nil || !m.Purged {
		t.Errorf("file media after purge: %+v, %v", m, err)
	}
}

func testPendingMessages(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.open(t)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	add := func(rcpt string, next time.Duration) int64 {
		t.Helper()
		id, err := s.AddPending(ctx, registry.PendingMessage{Recipient: rcpt, Sender: "alice", ContentType: "text/plain", Body: []byte("hi " + rcpt),
			ReplyDest: "127.0.0.1:5070", ReplyTransport: "UDP", Created: t0, Expires: t0.Add(24 * time.Hour), NextAttempt: t0.Add(next)})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	a := add("bob", 0)
	b := add("carol", time.Minute)
	c := add("bob", 2*time.Minute)
	if _, err := s.AddPending(ctx, registry.PendingMessage{Recipient: "not valid!", ContentType: "text/plain"}); err == nil {
		t.Error("AddPending with an invalid recipient succeeded")
	}

	due, err := s.DuePending(ctx, t0.Add(time.Minute), 10)
	if err != nil || len(due) != 2 || due[0].ID != a || due[1].ID != b {
		t.Fatalf("DuePending = %+v, %v", due, err)
	}
	if string(due[0].Body) != "hi bob" || due[0].ReplyDest != "127.0.0.1:5070" || !due[0].Expires.Equal(t0.Add(24*time.Hour)) {
		t.Errorf("fields: %+v", due[0])
	}
	if err := s.ReschedulePending(ctx, a, 1, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	due, _ = s.DuePending(ctx, t0.Add(time.Minute), 10)
	if len(due) != 1 || due[0].ID != b {
		t.Errorf("after reschedule due = %+v", due)
	}
	bobs, err := s.PendingFor(ctx, "bob")
	if err != nil || len(bobs) != 2 || bobs[0].ID != a || bobs[1].ID != c || bobs[0].Attempts != 1 {
		t.Fatalf("PendingFor(bob) = %+v, %v", bobs, err)
	}
	if ok, err := s.DeletePending(ctx, a); !ok || err != nil {
		t.Errorf("DeletePending = %v, %v", ok, err)
	}
	if ok, err := s.DeletePending(ctx, a); ok || err != nil {
		t.Errorf("DeletePending again = %v, %v; want false, nil", ok, err)
	}
}
