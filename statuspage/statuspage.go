// Package statuspage is the operator's status page at "/": the calls in
// progress with their legs and duration, the clients logged in, the SCP
// backend's state and the recent failed calls with their cause. It is
// behind the provisioning API's token, taken once by a login form and kept
// in a cookie; the page holds every style and script itself, so it works
// with no network beyond the B2BUA.
package statuspage

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/sip"
)

// Snapshot is what the page shows.
type Snapshot struct {
	Node         string                 `json:"node"`
	Version      string                 `json:"version"`
	Calls        []sip.LiveCall         `json:"calls"`
	Clients      []registry.Binding     `json:"clients"`
	ClientsTotal int                    `json:"clients_total"`
	SCP          SCP                    `json:"scp"`
	Checks       []Check                `json:"checks"`
	Failures     []registry.CallSummary `json:"failures"`
}

// SCP is the SCP backend's state.
type SCP struct {
	Backend string `json:"backend"`
	Problem string `json:"problem,omitempty"` // "" : answering
}

// Check is one readiness check; Problem is "" when it passes.
type Check struct {
	Name    string `json:"name"`
	Problem string `json:"problem,omitempty"`
}

// Source gathers a Snapshot.
type Source interface {
	Status(ctx context.Context) (Snapshot, error)
}

// Config configures the page.
type Config struct {
	Token  string // the provisioning API's token; required
	Source Source // required
	Logger *slog.Logger
	Now    func() time.Time // nil: time.Now
}

// Page serves the status page's routes (Register).
type Page struct {
	cfg    Config
	cookie string // the session cookie's value: an HMAC of the token, never the token
}

// CookieName is the session cookie.
const CookieName = "b2bua_status"

// New validates cfg.
func New(cfg Config) (*Page, error) {
	if cfg.Token == "" || cfg.Source == nil {
		return nil, errors.New("statuspage: Token and Source are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	mac := hmac.New(sha256.New, []byte(cfg.Token))
	mac.Write([]byte("b2bua status page session"))
	return &Page{cfg: cfg, cookie: hex.EncodeToString(mac.Sum(nil))}, nil
}

// Register mounts the page on mux: GET / (the page, or the login form),
// POST /login, POST /logout and GET /status.json (the snapshot the page
// refreshes itself from).
func (p *Page) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", p.serveIndex)
	mux.HandleFunc("POST /login", p.serveLogin)
	mux.HandleFunc("POST /logout", p.serveLogout)
	mux.HandleFunc("GET /status.json", p.serveJSON)
}

// authorized: the session cookie, or the API's bearer token (scripts).
func (p *Page) authorized(r *http.Request) bool {
	if c, err := r.Cookie(CookieName); err == nil && subtle.ConstantTimeCompare([]byte(c.Value), []byte(p.cookie)) == 1 {
		return true
	}
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return subtle.ConstantTimeCompare([]byte(tok), []byte(p.cfg.Token)) == 1
	}
	return false
}

// securityHeaders: nothing outside the page may load, frame it or be
// posted to (the page's own inline style and script aside).
func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

func (p *Page) serveIndex(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	if !p.authorized(r) {
		p.renderLogin(w, http.StatusOK, "")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	s, err := p.cfg.Source.Status(ctx)
	if err != nil {
		p.cfg.Logger.Warn("status page", "err", err)
		http.Error(w, "status unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := pageTmpl.Execute(w, view{Snapshot: s, Now: p.cfg.Now()}); err != nil {
		p.cfg.Logger.Warn("status page", "err", err)
	}
}

func (p *Page) serveJSON(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	if !p.authorized(r) {
		http.Error(w, "log in first", http.StatusUnauthorized)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	s, err := p.cfg.Source.Status(ctx)
	if err != nil {
		http.Error(w, "status unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s)
}

func (p *Page) serveLogin(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	tok := strings.TrimSpace(r.PostFormValue("token"))
	if subtle.ConstantTimeCompare([]byte(tok), []byte(p.cfg.Token)) != 1 {
		p.renderLogin(w, http.StatusUnauthorized, "That is not the API token.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: p.cookie, Path: "/", HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (p *Page) serveLogout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (p *Page) renderLogin(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := loginTmpl.Execute(w, msg); err != nil {
		p.cfg.Logger.Warn("status page login", "err", err)
	}
}
