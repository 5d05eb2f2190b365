package mediastore

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"io"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/imcall/b2bua/registry"
)

// contentPolicy keeps a stored file from acting as a web page: no scripts,
// no plugins, no frames, nothing loaded from elsewhere; sandbox gives the
// document an opaque origin even if a browser renders it.
const contentPolicy = "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'; sandbox"

// ServeHTTP serves GET and HEAD PathPrefix + token. Every answer, found or
// not, carries the same security headers, and a known and an unknown token
// cost the same work up to the answer: one SHA-256 and one indexed lookup
// of the hash. Nothing lists the stored media.
func (s *Store) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", contentPolicy)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "private, no-store")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		plain(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	token, ok := strings.CutPrefix(r.URL.Path, PathPrefix)
	if !ok {
		plain(w, http.StatusNotFound, "not found")
		return
	}
	// A malformed token takes the same path as a well-formed unknown one,
	// so its answer's timing says nothing either.
	want := hashToken(token)
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	m, err := s.cfg.DB.MediaByTokenHash(ctx, want)
	cancel()
	if err == nil && subtle.ConstantTimeCompare(m.TokenHash[:], want[:]) != 1 {
		err = registry.ErrNotFound
	}
	switch {
	case errors.Is(err, registry.ErrNotFound):
		plain(w, http.StatusNotFound, "not found")
		return
	case err != nil:
		s.log.Warn("media lookup failed", "err", err)
		plain(w, http.StatusServiceUnavailable, "temporarily unavailable")
		return
	}
	now := s.cfg.Now()
	if m.Purged || !now.Before(m.Expires) {
		plain(w, http.StatusGone, "this link has expired")
		return
	}
	var body io.ReadSeeker
	if m.Path != "" {
		f, err := os.Open(m.Path)
		if err != nil {
			s.log.Warn("media file missing", "media", LogID(token), "err", err)
			plain(w, http.StatusGone, "this link has expired")
			return
		}
		defer f.Close()
		body = f
	} else {
		body = bytes.NewReader(m.Data)
	}
	h.Set("Content-Type", m.ContentType)
	h.Set("ETag", `"`+hex.EncodeToString(m.SHA256[:])+`"`)
	// The content never changes under a token: let the client keep it
	// until the link expires, but only in its own cache.
	left := int(m.Expires.Sub(now) / time.Second)
	h.Set("Cache-Control", "private, max-age="+strconv.Itoa(max(left, 0))+", immutable")
	h.Set("Content-Disposition", disposition(m.ContentType))
	// ServeContent gives Content-Length, Range (seeking in audio and
	// video), HEAD, and 304 for a matching If-None-Match.
	http.ServeContent(w, r, "", m.Created, body)
}

// disposition lets browsers show images in place and makes everything else
// a download. SVG is an image that can carry script, so it is downloaded.
func disposition(contentType string) string {
	mt, _, _ := mime.ParseMediaType(contentType)
	if strings.HasPrefix(mt, "image/") && mt != "image/svg+xml" {
		return "inline"
	}
	return mime.FormatMediaType("attachment", map[string]string{"filename": "media" + extension(mt)})
}

// extension is a fixed table rather than the system's mime.types, so the
// answer is the same on every host.
func extension(mt string) string {
	switch mt {
	case "text/plain":
		return ".txt"
	case "image/svg+xml":
		return ".svg"
	case "audio/mpeg":
		return ".mp3"
	case "audio/ogg":
		return ".ogg"
	case "audio/amr":
		return ".amr"
	case "audio/wav", "audio/x-wav":
		return ".wav"
	case "video/mp4":
		return ".mp4"
	case "video/3gpp":
		return ".3gp"
	case "video/webm":
		return ".webm"
	}
	return ".bin"
}

func plain(w http.ResponseWriter, status int, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(text)+1))
	w.WriteHeader(status)
	io.WriteString(w, text+"\n")
}

var _ http.Handler = (*Store)(nil)
