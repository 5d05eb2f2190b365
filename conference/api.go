package conference

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"

	"github.com/imcall/b2bua/registry"
)

// APIPrefix is where the JSON API lives; the handler expects full paths
// (mount it with mux.Handle(APIPrefix, h)).
const APIPrefix = "/api/v1/conferences"

// maxBody bounds a request body: the largest valid one is a few hundred bytes.
const maxBody = 16 << 10

// NewAPI returns the JSON API under APIPrefix (openapi.yaml in this
// directory). It does no authentication of its own: the daemon mounts it
// behind the provisioning API's bearer token, as provision does its routes,
// on both APIPrefix and APIPrefix+"/" (ServeMux prefers them to
// provision's "/api/v1/" as the longer patterns).
// pageBase, if not empty, is the public base URL of the web pages (e.g.
// "https://b2bua.example"); Create then answers with the owner's link.
func NewAPI(m *Manager, pageBase string, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	a := &api{m: m, log: log, base: pageBase}
	mux := http.NewServeMux()
	for pattern, h := range a.routes() {
		mux.Handle(pattern, a.endpoint(h))
	}
	return mux
}

// routes are the API's "METHOD path" patterns, as openapi.yaml lists them.
func (a *api) routes() map[string]func(http.ResponseWriter, *http.Request) error {
	p := APIPrefix
	return map[string]func(http.ResponseWriter, *http.Request) error{
		"POST " + p:                                       a.create,
		"GET " + p:                                        a.list,
		"GET " + p + "/{id}":                              a.show,
		"DELETE " + p + "/{id}":                           a.end,
		"POST " + p + "/{id}/participants":                a.add,
		"DELETE " + p + "/{id}/participants/{pid}":        a.remove,
		"POST " + p + "/{id}/participants/{pid}/{action}": a.act,
	}
}

type api struct {
	m    *Manager
	log  *slog.Logger
	base string
}

// CreateRequest is the body of POST /api/v1/conferences.
type CreateRequest struct {
	Owner string   `json:"owner"`
	Dial  []string `json:"dial,omitempty"`
}

// AddRequest is the body that adds a participant (dial-out).
type AddRequest struct {
	Target  string `json:"target"`
	Display string `json:"display,omitempty"`
}

// CreatedResponse is the answer to a create: the conference, its page's
// token and, when the API knows its public base URL, the page's link.
type CreatedResponse struct {
	Created
	Link string `json:"link,omitempty"`
}

func (a *api) create(w http.ResponseWriter, r *http.Request) error {
	var req CreateRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	c, err := a.m.Create(r.Context(), req.Owner, req.Dial)
	if err != nil {
		return err
	}
	resp := CreatedResponse{Created: c}
	if a.base != "" {
		resp.Link = PageLink(a.base, c.Token)
	}
	writeJSON(w, http.StatusCreated, resp)
	return nil
}

func (a *api) list(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string][]Snapshot{"conferences": a.m.List()})
	return nil
}

func (a *api) show(w http.ResponseWriter, r *http.Request) error {
	c, err := a.m.Conference(r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c.Snapshot())
	return nil
}

func (a *api) end(w http.ResponseWriter, r *http.Request) error {
	s, err := a.m.End(r.Context(), r.PathValue("id"))
	if err != nil && s.ID == "" {
		return err
	}
	if err != nil {
		a.log.Warn("conference end: some calls did not hang up cleanly", "conference", s.ID, "err", err)
	}
	writeJSON(w, http.StatusOK, s)
	return nil
}

func (a *api) add(w http.ResponseWriter, r *http.Request) error {
	return addParticipant(a.m, r.PathValue("id"), w, r)
}

func (a *api) remove(w http.ResponseWriter, r *http.Request) error {
	if err := a.m.Remove(r.Context(), r.PathValue("id"), r.PathValue("pid")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *api) act(w http.ResponseWriter, r *http.Request) error {
	return act(a.m, r.PathValue("id"), w, r)
}

// addParticipant and act are the participant actions the API and the web
// page share, so both answer the same way.
func addParticipant(m *Manager, confID string, w http.ResponseWriter, r *http.Request) error {
	var req AddRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	p, err := m.Add(r.Context(), confID, req.Target, req.Display)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, p)
	return nil
}

func act(m *Manager, confID string, w http.ResponseWriter, r *http.Request) error {
	var (
		p   Participant
		err error
	)
	pid := r.PathValue("pid")
	switch r.PathValue("action") {
	case "mute":
		p, err = m.SetMuted(r.Context(), confID, pid, true)
	case "unmute":
		p, err = m.SetMuted(r.Context(), confID, pid, false)
	case "kick":
		p, err = m.Kick(r.Context(), confID, pid)
	default:
		return &apiError{status: http.StatusNotFound, Code: "not_found", Message: "no such action: mute, unmute or kick"}
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

// apiError is the body of every failed request: {"error": {...}}, with the
// codes of the provisioning API.
type apiError struct {
	status  int
	Code    string `json:"code"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

func (e *apiError) Error() string { return e.Message }

func (a *api) endpoint(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return handle(a.log, h)
}

func handle(log *slog.Logger, h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			e := toError(err)
			if e.status == http.StatusInternalServerError {
				log.Error("conference API: internal error", "method", r.Method, "path", r.URL.Path, "err", err)
			}
			writeJSON(w, e.status, map[string]*apiError{"error": e})
		}
	})
}

func toError(err error) *apiError {
	var (
		e  *apiError
		ve *registry.ValidationError
		me *http.MaxBytesError
	)
	switch {
	case errors.As(err, &e):
		return e
	case errors.As(err, &ve):
		return &apiError{status: http.StatusBadRequest, Code: "invalid_argument", Field: ve.Field, Message: ve.Error()}
	case errors.As(err, &me):
		return &apiError{status: http.StatusRequestEntityTooLarge, Code: "payload_too_large", Message: fmt.Sprintf("body: must be at most %d bytes", me.Limit)}
	case errors.Is(err, ErrNotFound):
		return &apiError{status: http.StatusNotFound, Code: "not_found", Message: err.Error()}
	case errors.Is(err, ErrNotLive), errors.Is(err, ErrEnded):
		return &apiError{status: http.StatusConflict, Code: "failed_precondition", Message: err.Error()}
	}
	return &apiError{status: http.StatusInternalServerError, Code: "internal", Message: "internal error"}
}

// decode reads one JSON object with no unknown fields, as provision does.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		return &apiError{status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type", Message: "Content-Type must be application/json"}
	}
	d := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		var me *http.MaxBytesError
		if errors.As(err, &me) {
			return err
		}
		return &apiError{status: http.StatusBadRequest, Code: "invalid_argument", Message: "body: " + err.Error()}
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
