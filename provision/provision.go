// Package provision is the provisioning HTTP API: the IM service's own
// servers create, list, activate and remove terminals (and users, contacts,
// trunks and DIDs) over JSON with a bearer token. It shares its validation
// with the b2bua CLI (see TerminalRequest, UserRequest, TrunkRequest,
// DIDRequest), so the same mistake gives the same words on both.
//
// Every route lives under /api/v1/; the handler expects the full path (mount
// it with mux.Handle("/api/v1/", h), without http.StripPrefix). The routes
// are described by openapi.yaml in this directory.
package provision

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/imcall/b2bua/httpserver"
	"github.com/imcall/b2bua/qrcard"
	"github.com/imcall/b2bua/ratelimit"
	"github.com/imcall/b2bua/registry"
)

// Prefix is the path every route of the API starts with.
const Prefix = "/api/v1/"

// DefaultMaxBodyBytes bounds a request body when Config.MaxBodyBytes is 0:
// the largest valid request is a few hundred bytes.
const DefaultMaxBodyBytes = 64 << 10

// DefaultRealm is the digest realm used when Config.Realm is empty; it
// matches the default of the b2bua --domain flag.
const DefaultRealm = "127.0.0.1"

// Config is what NewHandler needs.
type Config struct {
	// Store is the registry; required.
	Store Store
	// Token is the bearer token every request must present (RFC 6750
	// section 2.1). Empty refuses every request: the API never runs open.
	Token string
	// MaxBodyBytes bounds a request body; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Realm is the digest realm (the IM domain) new credentials are made
	// for; empty means DefaultRealm.
	Realm string
	// Logger receives one line per request (never the token); nil means
	// slog.Default().
	Logger *slog.Logger
	// AuthFailures wrong tokens from one source within AuthLockout get it
	// 429 for AuthLockout (ratelimit.go); 0: DefaultAuthFailures and
	// DefaultAuthLockout, negative: no lock-out.
	AuthFailures int
	AuthLockout  time.Duration
	// Routes are further handlers under Prefix, keyed by ServeMux pattern
	// (e.g. the conference API's "/api/v1/conferences"), served behind the
	// same token, lock-out and request log as the API's own routes, so a
	// client has one credential and one failure budget.
	Routes map[string]http.Handler
}

// Error codes: stable strings clients may switch on.
const (
	CodeInvalidArgument      = "invalid_argument"       // 400
	CodeUnauthorized         = "unauthorized"           // 401
	CodeNotFound             = "not_found"              // 404
	CodeMethodNotAllowed     = "method_not_allowed"     // 405
	CodeAlreadyExists        = "already_exists"         // 409
	CodePayloadTooLarge      = "payload_too_large"      // 413
	CodeUnsupportedMediaType = "unsupported_media_type" // 415
	CodeInternal             = "internal"               // 500
	CodeUnavailable          = "unavailable"            // 503
)

// Error is the body of every failed request: {"error": {...}}.
type Error struct {
	Code    string `json:"code"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
	status  int
}

// Error gives the message, so an *Error can travel as an error.
func (e *Error) Error() string { return e.Message }

type errorBody struct {
	Error *Error `json:"error"`
}

type api struct {
	store   Store
	token   [sha256.Size]byte
	open    bool // a token is configured
	maxBody int64
	realm   string
	log     *slog.Logger
	fails   *ratelimit.Lockout // wrong tokens per source
	extra   map[string]http.Handler
}

// NewHandler returns the API's handler. It panics if cfg.Store is nil, a
// wiring mistake no request could recover from.
func NewHandler(cfg Config) http.Handler {
	if cfg.Store == nil {
		panic("provision: Config.Store is nil")
	}
	a := &api{store: cfg.Store, maxBody: cfg.MaxBodyBytes, realm: cfg.Realm, log: cfg.Logger, fails: newTokenLockout(cfg), extra: cfg.Routes}
	if a.maxBody <= 0 {
		a.maxBody = DefaultMaxBodyBytes
	}
	if a.realm == "" {
		a.realm = DefaultRealm
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	a.open = cfg.Token != ""
	// Comparing fixed-size digests keeps the comparison constant-time in the
	// token's length too.
	a.token = sha256.Sum256([]byte(cfg.Token))
	if !a.open {
		a.log.Warn("provisioning API has no token configured: every request is refused")
	}
	mux, _ := a.mux()
	return a.logged(a.authenticated(a.canonical(mux)))
}

// canonical answers, as JSON, what ServeMux would answer with a redirect or
// plain text: a path outside Prefix (404 page not found), and a path that
// is not clean ("//", "/./", "/../": 307 to the cleaned path, which a client
// would follow with its token and method). Such a path names no endpoint.
func (a *api) canonical(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if !strings.HasPrefix(p, Prefix) || strings.Contains(p, "//") ||
			strings.Contains(p+"/", "/./") || strings.Contains(p+"/", "/../") {
			a.writeError(w, r, &Error{status: http.StatusNotFound, Code: CodeNotFound, Message: "no such endpoint: " + p})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// route is one endpoint; the table is the single source of the mux and of
// the OpenAPI cross-check test.
type route struct {
	method, path string
	h            func(http.ResponseWriter, *http.Request) error
}

func (a *api) routes() []route {
	return []route{
		{"GET", "/api/v1/users", a.listUsers},
		{"POST", "/api/v1/users", a.createUser},
		{"GET", "/api/v1/users/{im}", a.getUser},
		{"DELETE", "/api/v1/users/{im}", a.deleteUser},
		{"PUT", "/api/v1/users/{im}/password", a.setPassword},
		{"GET", "/api/v1/users/{im}/terminals", a.listUserTerminals},
		{"POST", "/api/v1/users/{im}/terminals", a.createTerminal},
		{"GET", "/api/v1/users/{im}/contacts", a.listContacts},
		{"POST", "/api/v1/users/{im}/contacts", a.createContact},
		{"GET", "/api/v1/terminals", a.listTerminals},
		{"GET", "/api/v1/terminals/{id}", a.getTerminal},
		{"DELETE", "/api/v1/terminals/{id}", a.deleteTerminal},
		{"POST", "/api/v1/terminals/{id}/activate", a.activate},
		{"POST", "/api/v1/terminals/{id}/deactivate", a.deactivate},
		{"GET", "/api/v1/users/{im}/dids", a.listUserDIDs},
		{"GET", "/api/v1/trunks", a.listTrunks},
		{"POST", "/api/v1/trunks", a.createTrunk},
		{"DELETE", "/api/v1/trunks/{name}", a.deleteTrunk},
		{"GET", "/api/v1/dids", a.listDIDs},
		{"POST", "/api/v1/dids", a.createDID},
		{"GET", "/api/v1/dids/{number}", a.getDID},
		{"DELETE", "/api/v1/dids/{number}", a.deleteDID},
		{"GET", "/api/v1/calls", a.listCalls},
	}
}

// mux builds the ServeMux and returns it with the "METHOD path" patterns of
// the endpoints it serves.
func (a *api) mux() (*http.ServeMux, []string) {
	mux := http.NewServeMux()
	var patterns []string
	allow := map[string][]string{}
	for _, rt := range a.routes() {
		p := rt.method + " " + rt.path
		mux.Handle(p, a.endpoint(rt.h))
		patterns = append(patterns, p)
		allow[rt.path] = append(allow[rt.path], rt.method)
	}
	// A known path with another method: 405 with Allow (RFC 9110 section
	// 15.5.6), as JSON rather than ServeMux's plain text.
	for path, methods := range allow {
		if slices.Contains(methods, "GET") {
			methods = append(methods, "HEAD")
		}
		sort.Strings(methods)
		allowed := strings.Join(methods, ", ")
		mux.Handle(path, a.endpoint(func(w http.ResponseWriter, r *http.Request) error {
			w.Header().Set("Allow", allowed)
			return &Error{status: http.StatusMethodNotAllowed, Code: CodeMethodNotAllowed,
				Message: fmt.Sprintf("method %s is not allowed here: use %s", r.Method, allowed)}
		}))
	}
	for pattern, h := range a.extra {
		mux.Handle(pattern, h)
	}
	mux.Handle(Prefix, a.endpoint(func(w http.ResponseWriter, r *http.Request) error {
		return &Error{status: http.StatusNotFound, Code: CodeNotFound, Message: "no such endpoint: " + r.URL.Path}
	}))
	return mux, patterns
}

// endpoint turns a handler that returns an error into an http.Handler that
// writes the error as JSON.
func (a *api) endpoint(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			a.writeError(w, r, err)
		}
	})
}

func (a *api) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := toError(err)
	if e.status == http.StatusInternalServerError {
		a.log.Error("provisioning API: internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, e.status, errorBody{Error: e})
}

// toError maps an error to the API's error: validation failures name their
// field; the registry's sentinel errors keep their words.
func toError(err error) *Error {
	var (
		e  *Error
		ve *registry.ValidationError
		me *http.MaxBytesError
	)
	switch {
	case errors.As(err, &e):
		return e
	case errors.As(err, &ve):
		return &Error{status: http.StatusBadRequest, Code: CodeInvalidArgument, Field: ve.Field, Message: ve.Error()}
	case errors.As(err, &me):
		return &Error{status: http.StatusRequestEntityTooLarge, Code: CodePayloadTooLarge,
			Message: fmt.Sprintf("body: must be at most %d bytes", me.Limit)}
	case errors.Is(err, registry.ErrNotFound), errors.Is(err, registry.ErrNoActiveTerminal):
		return &Error{status: http.StatusNotFound, Code: CodeNotFound, Message: err.Error()}
	case errors.Is(err, registry.ErrExists):
		return &Error{status: http.StatusConflict, Code: CodeAlreadyExists, Message: err.Error()}
	case errors.Is(err, registry.ErrUnavailable):
		// The store's server is down or unreachable: the request may
		// succeed when it is back, or at another node.
		return &Error{status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: "registry unavailable: try again later"}
	}
	return &Error{status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error"}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client went away; nothing to do
}

// authenticated checks the bearer token (RFC 6750 section 2.1) before any
// routing, so an unauthenticated client learns nothing about the routes.
func (a *api) authenticated(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.lockedOut(w, r) {
			return
		}
		scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		presented := strings.EqualFold(scheme, "Bearer") && token != ""
		got := sha256.Sum256([]byte(strings.TrimSpace(token)))
		if !a.open || !presented || subtle.ConstantTimeCompare(got[:], a.token[:]) != 1 {
			if presented {
				a.tokenFailed(r)
			}
			// RFC 6750 section 3: error="invalid_token" only when a token
			// was presented.
			challenge := `Bearer realm="b2bua"`
			msg := "a bearer token is required"
			if presented {
				challenge += `, error="invalid_token"`
				msg = "the bearer token is not valid"
			}
			w.Header().Set("WWW-Authenticate", challenge)
			// Nothing of the body is wanted: do not wait for a slow one.
			httpserver.RefuseNow(w)
			writeJSON(w, http.StatusUnauthorized, errorBody{Error: &Error{Code: CodeUnauthorized, Message: msg}})
			return
		}
		next.ServeHTTP(w, r)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (RefuseNow).
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// logged writes one line per request: method, path, status, duration. It
// never logs headers, so the token stays out of the log.
func (a *api) logged(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		a.log.Info("provisioning API", "method", r.Method, "path", r.URL.Path, "status", sw.status,
			"remote", r.RemoteAddr, "duration", time.Since(start))
	})
}

func (a *api) terminalID(r *http.Request) (int64, error) {
	return ParseTerminalID(r.PathValue("id"))
}

// user checks that the path's IM ID is valid and exists.
func (a *api) user(r *http.Request) (registry.User, error) {
	im, err := registry.ParseIMID(r.PathValue("im"))
	if err != nil {
		return registry.User{}, err
	}
	return a.store.User(r.Context(), im)
}

// UserList is the answer of GET /api/v1/users.
type UserList struct {
	Users []UserView `json:"users"`
}

// TerminalList is the answer of GET /api/v1/terminals and
// GET /api/v1/users/{im}/terminals.
type TerminalList struct {
	Terminals []TerminalView `json:"terminals"`
}

// ContactList is the answer of GET /api/v1/users/{im}/contacts.
type ContactList struct {
	Contacts []ContactView `json:"contacts"`
}

// NewUserList, NewTerminalList and NewContactList give the list views.
func NewUserList(us []registry.User) UserList {
	l := UserList{Users: []UserView{}}
	for _, u := range us {
		l.Users = append(l.Users, NewUserView(u))
	}
	return l
}

// NewTerminalList gives the view of a list of terminals.
func NewTerminalList(ts []registry.Terminal) TerminalList {
	l := TerminalList{Terminals: []TerminalView{}}
	for _, t := range ts {
		l.Terminals = append(l.Terminals, NewTerminalView(t))
	}
	return l
}

// NewContactList gives the view of a list of contacts.
func NewContactList(cs []registry.Contact) ContactList {
	l := ContactList{Contacts: []ContactView{}}
	for _, c := range cs {
		l.Contacts = append(l.Contacts, NewContactView(c))
	}
	return l
}

func (a *api) listUsers(w http.ResponseWriter, r *http.Request) error {
	us, err := a.store.Users(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, NewUserList(us))
	return nil
}

func (a *api) createUser(w http.ResponseWriter, r *http.Request) error {
	var req UserRequest
	if err := a.decode(w, r, &req); err != nil {
		return err
	}
	u, err := req.User(a.realm)
	if err != nil {
		return err
	}
	if u, err = a.store.AddUser(r.Context(), u); err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/users/"+u.IMID)
	writeJSON(w, http.StatusCreated, NewUserView(u))
	return nil
}

func (a *api) getUser(w http.ResponseWriter, r *http.Request) error {
	u, err := a.user(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, NewUserView(u))
	return nil
}

func (a *api) deleteUser(w http.ResponseWriter, r *http.Request) error {
	im, err := registry.ParseIMID(r.PathValue("im"))
	if err != nil {
		return err
	}
	if err := a.store.RemoveUser(r.Context(), im); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// PasswordRequest is the body of PUT /api/v1/users/{im}/password.
type PasswordRequest struct {
	Password string `json:"password"`
}

func (a *api) setPassword(w http.ResponseWriter, r *http.Request) error {
	im, err := registry.ParseIMID(r.PathValue("im"))
	if err != nil {
		return err
	}
	var req PasswordRequest
	if err := a.decode(w, r, &req); err != nil {
		return err
	}
	pw, err := ParsePassword(req.Password)
	if err != nil {
		return err
	}
	if err := a.store.SetCredentials(r.Context(), im, registry.NewCredentials(im, a.realm, pw)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *api) listUserTerminals(w http.ResponseWriter, r *http.Request) error {
	u, err := a.user(r)
	if err != nil {
		return err
	}
	ts, err := a.store.Terminals(r.Context(), u.IMID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, NewTerminalList(ts))
	return nil
}

func (a *api) createTerminal(w http.ResponseWriter, r *http.Request) error {
	var req TerminalRequest
	if err := a.decode(w, r, &req); err != nil {
		return err
	}
	nt, err := req.NewTerminal(r.PathValue("im"))
	if err != nil {
		return err
	}
	t, err := a.store.AddTerminal(r.Context(), nt)
	if err != nil {
		return err
	}
	w.Header().Set("Location", fmt.Sprintf("/api/v1/terminals/%d", t.ID))
	writeJSON(w, http.StatusCreated, NewTerminalView(t))
	return nil
}

func (a *api) listTerminals(w http.ResponseWriter, r *http.Request) error {
	ts, err := a.store.Terminals(r.Context(), "")
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, NewTerminalList(ts))
	return nil
}

func (a *api) getTerminal(w http.ResponseWriter, r *http.Request) error {
	id, err := a.terminalID(r)
	if err != nil {
		return err
	}
	t, err := a.store.Terminal(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, NewTerminalView(t))
	return nil
}

func (a *api) deleteTerminal(w http.ResponseWriter, r *http.Request) error {
	id, err := a.terminalID(r)
	if err != nil {
		return err
	}
	if err := a.store.RemoveTerminal(r.Context(), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *api) activate(w http.ResponseWriter, r *http.Request) error {
	return a.setActive(w, r, a.store.Activate)
}

func (a *api) deactivate(w http.ResponseWriter, r *http.Request) error {
	return a.setActive(w, r, a.store.Deactivate)
}

func (a *api) setActive(w http.ResponseWriter, r *http.Request, op func(context.Context, int64) (registry.Terminal, error)) error {
	id, err := a.terminalID(r)
	if err != nil {
		return err
	}
	t, err := op(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, NewTerminalView(t))
	return nil
}

// ContactRequest is the body of POST /api/v1/users/{im}/contacts: the
// imcall: URI a QR code holds (see package qrcard).
type ContactRequest struct {
	URI string `json:"uri"`
}

func (a *api) listContacts(w http.ResponseWriter, r *http.Request) error {
	u, err := a.user(r)
	if err != nil {
		return err
	}
	cs, err := a.store.Contacts(r.Context(), u.IMID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, NewContactList(cs))
	return nil
}

func (a *api) createContact(w http.ResponseWriter, r *http.Request) error {
	owner, err := registry.ParseIMID(r.PathValue("im"))
	if err != nil {
		return err
	}
	var req ContactRequest
	if err := a.decode(w, r, &req); err != nil {
		return err
	}
	card, err := qrcard.Parse(req.URI)
	if err != nil {
		// qrcard names the CLI's --qr picture; here the field is the URI.
		var ve *registry.ValidationError
		if errors.As(err, &ve) && ve.Field == "qr" {
			return &registry.ValidationError{Field: "uri", Rule: ve.Rule}
		}
		return err
	}
	c, err := a.store.AddContact(r.Context(), card.Contact(owner))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, NewContactView(c))
	return nil
}
