package conference

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// PagePrefix is where the web pages live: GET PagePrefix + token is the
// page of the conference the token belongs to; its actions and its event
// stream live under the same token.
const PagePrefix = "/conf/"

// PageLink joins base (e.g. "https://b2bua.example") and token into the
// link of a conference's page, the one the owner gets.
func PageLink(base, token string) string {
	return strings.TrimRight(base, "/") + PagePrefix + token
}

// keepAlive is how often an idle event stream gets a comment line, so
// proxies and NATs on the way do not close it.
const keepAlive = 20 * time.Second

// writeWindow is how long one write of an event stream may take. The
// server's WriteTimeout bounds a whole answer, which would cut a stream
// meant to stay open; each write moves the deadline on instead, so a
// client that stops reading is still dropped.
const writeWindow = 10 * time.Second

//go:embed page.html
var pageHTML string

var pageTemplate = template.Must(template.New("page").Parse(pageHTML))

// Pages serves the web pages under PagePrefix.
type Pages struct {
	http.Handler
	m      *Manager
	log    *slog.Logger
	stop   context.Context
	cancel context.CancelFunc
}

// Close ends every open event stream, so that http.Server.Shutdown need not
// wait for them (register it with RegisterOnShutdown); pages served after
// it get their stream closed at once and reconnect elsewhere.
func (p *Pages) Close() error {
	p.cancel()
	return nil
}

// NewPages returns the handler of the web pages under PagePrefix. The
// token is the only credential: 256 random bits, looked up by its hash and
// compared in constant time (Manager.ByToken). Mount it with
// mux.Handle(PagePrefix, h).
func NewPages(m *Manager, log *slog.Logger) *Pages {
	if log == nil {
		log = slog.Default()
	}
	p := &Pages{m: m, log: log}
	p.stop, p.cancel = context.WithCancel(context.Background())
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PagePrefix+"{token}", p.withConf(p.page))
	mux.HandleFunc("GET "+PagePrefix+"{token}/events", p.withConf(p.events))
	mux.HandleFunc("GET "+PagePrefix+"{token}/state", p.withConf(func(w http.ResponseWriter, r *http.Request, c *Conference) {
		writeJSON(w, http.StatusOK, c.Snapshot())
	}))
	mux.HandleFunc("POST "+PagePrefix+"{token}/participants", p.withConf(func(w http.ResponseWriter, r *http.Request, c *Conference) {
		handle(p.log, func(w http.ResponseWriter, r *http.Request) error { return addParticipant(m, c.ID(), w, r) }).ServeHTTP(w, r)
	}))
	mux.HandleFunc("POST "+PagePrefix+"{token}/participants/{pid}/{action}", p.withConf(func(w http.ResponseWriter, r *http.Request, c *Conference) {
		handle(p.log, func(w http.ResponseWriter, r *http.Request) error {
			// The body must be JSON: a cross-site form cannot send that
			// without a CORS preflight this server never grants.
			var none struct{}
			if err := decode(w, r, &none); err != nil {
				return err
			}
			return act(m, c.ID(), w, r)
		}).ServeHTTP(w, r)
	}))
	p.Handler = securityHeaders(mux)
	return p
}

// securityHeaders: the token is in the path, so no referrer ever carries
// it off, and nothing is cached or framed.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "private, no-store")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		next.ServeHTTP(w, r)
	})
}

func (p *Pages) withConf(h func(http.ResponseWriter, *http.Request, *Conference)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, ok := p.m.ByToken(r.PathValue("token"))
		if !ok {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		h(w, r, c)
	}
}

func (p *Pages) page(w http.ResponseWriter, r *http.Request, c *Conference) {
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	nonce := base64.StdEncoding.EncodeToString(raw[:])
	h := w.Header()
	// Inline script and style only, by nonce; the page fetches only from
	// its own origin, so it works with no network beyond this server.
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'nonce-"+nonce+"'; style-src 'nonce-"+nonce+
		"'; connect-src 'self'; img-src data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	h.Set("Content-Type", "text/html; charset=utf-8")
	s := c.Snapshot()
	if err := pageTemplate.Execute(w, map[string]string{"Nonce": nonce, "URI": s.URI, "Owner": s.Owner}); err != nil {
		p.log.Warn("conference page", "conference", s.ID, "err", err)
	}
}

// events is the page's server-sent event stream (HTML Living Standard
// §9.2): the whole state as JSON on every change, sent as it happens, so a
// talking change reaches the page within a network round trip.
func (p *Pages) events(w http.ResponseWriter, r *http.Request, c *Conference) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(p.stop, cancel)
	defer stop()
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	// Not every writer has a connection (httptest's recorder): ignored.
	_ = rc.SetWriteDeadline(time.Now().Add(writeWindow))
	w.WriteHeader(http.StatusOK)
	watch := c.Watch(ctx)
	tick := time.NewTicker(keepAlive)
	defer tick.Stop()
	for {
		_ = rc.SetWriteDeadline(time.Now().Add(keepAlive + writeWindow))
		select {
		case ev, ok := <-watch.Events():
			if !ok {
				return
			}
			b, err := json.Marshal(ev.State)
			if err != nil {
				return
			}
			if _, err := w.Write(append(append([]byte("event: state\ndata: "), b...), '\n', '\n')); err != nil {
				return
			}
		case <-tick.C:
			if _, err := w.Write([]byte(": keep-alive\n\n")); err != nil {
				return
			}
		case <-ctx.Done():
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}
