package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"

	"github.com/imcall/b2bua/conference"
	"github.com/imcall/b2bua/sip"
	"github.com/imcall/b2bua/sip/confevent"
)

// conferences is the daemon's side of the conference bridge: the manager,
// its JSON API (mounted by provision behind the API token) and its pages.
type conferences struct {
	m     *conference.Manager
	pages *conference.Pages
	api   atomic.Pointer[http.Handler] // set once the HTTP address is known
	subs  *confevent.Service           // SUBSCRIBE to a conference URI
}

// noMedia stands in for the SIP dialer and the mixer until calls reach
// conferences: a dial-out fails at once (the participant shows failed, with
// this reason), and no participant is ever live to hang up or mute.
type noMedia struct{}

var errNoCalls = fmt.Errorf("conference calls are not available on this node: %w", conference.ErrNotLive)

func (noMedia) Dial(context.Context, string, conference.Participant, conference.Leg) error {
	return errNoCalls
}
func (noMedia) Hangup(context.Context, string, string, conference.Ending) error { return errNoCalls }
func (noMedia) SetMuted(context.Context, string, string, bool) error            { return errNoCalls }

func newConferences(domain string, log *slog.Logger) (*conferences, error) {
	m, err := conference.NewManager(conference.Config{Domain: domain, Dialer: noMedia{}, Audio: noMedia{},
		Logger: log})
	if err != nil {
		return nil, err
	}
	return &conferences{m: m, pages: conference.NewPages(m, log)}, nil
}

// routes are the conference API's patterns for provision.Config.Routes.
func (c *conferences) routes() map[string]http.Handler {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if api := c.api.Load(); api != nil {
			(*api).ServeHTTP(w, r)
			return
		}
		http.Error(w, "starting", http.StatusServiceUnavailable)
	})
	return map[string]http.Handler{conference.APIPrefix: h, conference.APIPrefix + "/": h}
}

// serveAPI makes the API answer, with page links starting at pageBase.
func (c *conferences) serveAPI(pageBase string, log *slog.Logger) {
	h := conference.NewAPI(c.m, pageBase, log)
	c.api.Store(&h)
}

// serveEvents answers SUBSCRIBE to conference URIs (RFC 4575) on srv.
func (c *conferences) serveEvents(srv *sip.Server, log *slog.Logger) error {
	subs, err := confevent.New(confevent.Config{SIP: srv, Conferences: c.m, Logger: log})
	if err != nil {
		return err
	}
	c.subs = subs
	srv.HandleSubscribe(subs)
	return nil
}

func (c *conferences) closeEvents() {
	if c.subs != nil {
		_ = c.subs.Close()
	}
}
