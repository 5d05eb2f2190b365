package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/scp"
)

// Routes of the HTTP SCP protocol, documented in scp/openapi.yaml. Every
// route lives under PathPrefix so that a host serving other APIs can mount
// the handler with mux.Handle(sim.PathPrefix, h).
const (
	PathPrefix      = "/scp/v1/"
	LocatePath      = "/scp/v1/locate"
	SubscribersPath = "/scp/v1/subscribers"
)

// Error codes of the protocol's error object; they are the codes of the
// B2BUA's provisioning API where the two overlap.
const (
	CodeUnknownSubscriber    = "unknown_subscriber"
	CodeInvalidArgument      = "invalid_argument"
	CodeNotFound             = "not_found"
	CodeMethodNotAllowed     = "method_not_allowed"
	CodePayloadTooLarge      = "payload_too_large"
	CodeUnsupportedMediaType = "unsupported_media_type"
	CodeInternal             = "internal"
)

const maxRequestBytes = 64 << 10

// ErrorBody is the protocol's error answer: {"error": {...}}.
type ErrorBody struct {
	Error ErrorObject `json:"error"`
}

// ErrorObject says what went wrong: a stable code for programs, a message
// for people and, for invalid requests, the field at fault.
type ErrorObject struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// Change is the body of PUT (attach) and PATCH (move, set state) on a
// subscriber. In a PATCH an absent field is left as it is.
type Change struct {
	Addr  *string `json:"addr,omitempty"`
	State *string `json:"state,omitempty"`
}

type handler struct {
	sim *Simulator
	log *slog.Logger
}

// NewHandler serves the HTTP SCP protocol for sim: the locate query that the
// B2BUA's http backend asks, and the admin routes that scpsim's subscriber
// commands use. A nil logger discards.
func NewHandler(sim *Simulator, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := &handler{sim: sim, log: logger}
	mux := http.NewServeMux()
	// paths knows the routes without their methods, so that a known path
	// asked with the wrong method gets 405 rather than the catch-all's 404.
	paths := http.NewServeMux()
	allow := map[string][]string{}
	for _, rt := range h.routes() {
		mux.HandleFunc(rt.method+" "+rt.path, rt.fn)
		if allow[rt.path] == nil {
			paths.HandleFunc(rt.path, http.NotFound)
		}
		allow[rt.path] = append(allow[rt.path], rt.method)
	}
	mux.HandleFunc(PathPrefix, func(w http.ResponseWriter, r *http.Request) {
		if _, pat := paths.Handler(r); pat != "" {
			w.Header().Set("Allow", strings.Join(allow[pat], ", "))
			writeError(w, http.StatusMethodNotAllowed, ErrorObject{Code: CodeMethodNotAllowed, Message: "method " + r.Method + " not allowed on " + r.URL.Path})
			return
		}
		writeError(w, http.StatusNotFound, ErrorObject{Code: CodeNotFound, Message: "no such route: " + r.Method + " " + r.URL.Path})
	})
	// What ServeMux would answer with a redirect or plain text (a path
	// outside PathPrefix, or one that is not clean) is no route either.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !IsCleanUnder(r.URL.Path, PathPrefix) {
			writeError(w, http.StatusNotFound, ErrorObject{Code: CodeNotFound, Message: "no such route: " + r.Method + " " + r.URL.Path})
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// IsCleanUnder reports whether p starts with prefix and has no empty, "."
// or ".." segment, i.e. whether ServeMux would route it without a
// redirect. A host mounting the handler sends it every path that cleans to
// one under prefix, so the answer is the protocol's JSON error rather than
// the host mux's redirect.
func IsCleanUnder(p, prefix string) bool {
	return strings.HasPrefix(p, prefix) && !strings.Contains(p, "//") &&
		!strings.Contains(p+"/", "/./") && !strings.Contains(p+"/", "/../")
}

type route struct {
	method, path string // path in ServeMux pattern form, as in openapi.yaml
	fn           http.HandlerFunc
}

// routes is the one list of the protocol's operations; a test checks it
// against scp/openapi.yaml.
func (h *handler) routes() []route {
	return []route{
		{http.MethodGet, LocatePath, h.locate},
		{http.MethodGet, SubscribersPath, h.list},
		{http.MethodGet, SubscribersPath + "/{id}", h.get},
		{http.MethodPut, SubscribersPath + "/{id}", h.attach},
		{http.MethodPatch, SubscribersPath + "/{id}", h.patch},
		{http.MethodDelete, SubscribersPath + "/{id}", h.detach},
	}
}

var jsonContentType = []string{"application/json"}

// locate is the hot path: the answer is built by hand, without reflection,
// because its two fields are an enum and a netip address that never need
// escaping.
func (h *handler) locate(w http.ResponseWriter, r *http.Request) {
	id := queryID(r.URL.RawQuery)
	if id == "" {
		writeError(w, http.StatusBadRequest, ErrorObject{Code: CodeInvalidArgument, Field: "id", Message: "id: is required, e.g. ?id=imsi:001010000000001"})
		return
	}
	loc, err := h.sim.Locate(r.Context(), id)
	if err != nil {
		if _, perr := ParseID(id); perr != nil {
			// Malformed: 400 as openapi.yaml says, not the 404 of an
			// identity the SCP does not know (the lookup found nothing
			// because there is nothing to look up).
			writeErr(w, h.log, perr)
			return
		}
		writeErr(w, h.log, err)
		return
	}
	b := make([]byte, 0, 64)
	b = append(b, `{"state":"`...)
	b = append(b, loc.State...)
	b = append(b, '"')
	if loc.Addr.IsValid() {
		b = append(b, `,"addr":"`...)
		b = loc.Addr.AppendTo(b)
		b = append(b, '"')
	}
	b = append(b, "}\n"...)
	w.Header()["Content-Type"] = jsonContentType
	w.Header()["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.Write(b)
}

// queryID reads the id parameter keeping a literal '+' as '+': an MSISDN
// is written with one (msisdn:+441632960001), and form decoding would turn
// it into a space, which no mobile identity contains. %2B works too.
func queryID(raw string) string {
	for raw != "" {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		if k, v, _ := strings.Cut(kv, "="); k == "id" {
			if u, err := url.PathUnescape(v); err == nil {
				return u
			}
			return v
		}
	}
	return ""
}

func (h *handler) list(w http.ResponseWriter, r *http.Request) {
	subs := h.sim.List()
	out := make([]entry, len(subs))
	for i, s := range subs {
		out[i] = toEntry(s)
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *handler) get(w http.ResponseWriter, r *http.Request) {
	sub, err := h.sim.Get(r.PathValue("id"))
	if err != nil {
		writeErr(w, h.log, err)
		return
	}
	writeJSON(w, http.StatusOK, toEntry(sub))
}

func (h *handler) attach(w http.ResponseWriter, r *http.Request) {
	var c Change
	if !decodeBody(w, r, &c) {
		return
	}
	sub := Subscriber{ID: r.PathValue("id"), State: scp.Online}
	if c.State != nil {
		sub.State = scp.State(*c.State)
	}
	if c.Addr != nil && *c.Addr != "" {
		ap, err := ParseAddr(*c.Addr)
		if err != nil {
			writeErr(w, h.log, err)
			return
		}
		sub.Addr = ap
	}
	created, err := h.sim.Attach(sub)
	if err != nil {
		writeErr(w, h.log, err)
		return
	}
	got, err := h.sim.Get(sub.ID)
	if err != nil {
		writeErr(w, h.log, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, toEntry(got))
}

func (h *handler) patch(w http.ResponseWriter, r *http.Request) {
	var c Change
	if !decodeBody(w, r, &c) {
		return
	}
	if c.Addr == nil && c.State == nil {
		writeError(w, http.StatusBadRequest, ErrorObject{Code: CodeInvalidArgument, Message: "body: give addr, state or both"})
		return
	}
	id := r.PathValue("id")
	var (
		sub Subscriber
		err error
	)
	if c.Addr != nil {
		var ap netip.AddrPort
		if ap, err = ParseAddr(*c.Addr); err == nil {
			sub, err = h.sim.Move(id, ap)
		}
	}
	if err == nil && c.State != nil {
		sub, err = h.sim.SetState(id, scp.State(*c.State))
	}
	if err != nil {
		writeErr(w, h.log, err)
		return
	}
	writeJSON(w, http.StatusOK, toEntry(sub))
}

func (h *handler) detach(w http.ResponseWriter, r *http.Request) {
	if err := h.sim.Detach(r.PathValue("id")); err != nil {
		writeErr(w, h.log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// decodeBody reads a JSON request body strictly; on failure it has already
// answered.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			writeError(w, http.StatusUnsupportedMediaType, ErrorObject{Code: CodeUnsupportedMediaType, Message: "body: Content-Type must be application/json"})
			return false
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBytes))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, ErrorObject{Code: CodeInvalidArgument, Message: `body: is required, a JSON object such as {"addr":"127.0.0.1:5062","state":"online"}`})
		return false
	}
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("unexpected data after the JSON object")
		}
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, ErrorObject{Code: CodePayloadTooLarge, Message: fmt.Sprintf("body: larger than %d bytes", maxRequestBytes)})
			return false
		}
		writeError(w, http.StatusBadRequest, ErrorObject{Code: CodeInvalidArgument, Message: "body: " + jsonErr(nil, err)})
		return false
	}
	return true
}

// writeErr maps the simulator's errors to the protocol's answers.
func writeErr(w http.ResponseWriter, log *slog.Logger, err error) {
	var ve *registry.ValidationError
	switch {
	case errors.Is(err, scp.ErrUnknownSubscriber):
		writeError(w, http.StatusNotFound, ErrorObject{Code: CodeUnknownSubscriber, Message: err.Error()})
	case errors.As(err, &ve):
		writeError(w, http.StatusBadRequest, ErrorObject{Code: CodeInvalidArgument, Field: ve.Field, Message: ve.Error()})
	default:
		log.Error("scp admin request failed", "err", err)
		writeError(w, http.StatusInternalServerError, ErrorObject{Code: CodeInternal, Message: err.Error()})
	}
}

func writeError(w http.ResponseWriter, status int, e ErrorObject) {
	writeJSON(w, status, ErrorBody{Error: e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"code":"internal","message":"encoding the answer failed"}}`)
	}
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
