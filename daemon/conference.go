package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/imcall/b2bua/conference"
	"github.com/imcall/b2bua/confmedia"
	"github.com/imcall/b2bua/rtpproxy"
	"github.com/imcall/b2bua/sip"
	"github.com/imcall/b2bua/sip/confcall"
	"github.com/imcall/b2bua/sip/confevent"
)

// conferences is the daemon's side of the conference bridge: the manager,
// its JSON API (mounted by provision behind the API token) and its pages.
type conferences struct {
	m      *conference.Manager
	pages  *conference.Pages
	api    atomic.Pointer[http.Handler] // set once the HTTP address is known
	subs   *confevent.Service           // SUBSCRIBE to a conference URI
	calls  atomic.Pointer[confcall.Service]
	bridge *confmedia.Bridge
}

// errNoDialOut: a node without conference calls (passthrough media)
// places none; a participant added by dial-out shows failed with it.
var errNoDialOut = errors.New("dial-out needs anchored media (--media anchor)")

// Dial is the manager's dial-out (confcall.Service.Dial).
func (c *conferences) Dial(ctx context.Context, confID string, p conference.Participant, leg conference.Leg) error {
	if calls := c.calls.Load(); calls != nil {
		return calls.Dial(ctx, confID, p, leg)
	}
	return errNoDialOut
}

// Hangup ends a participant's call (kick, end).
func (c *conferences) Hangup(ctx context.Context, confID, pid string, why conference.Ending) error {
	if calls := c.calls.Load(); calls != nil {
		return calls.Hangup(ctx, confID, pid, why)
	}
	return fmt.Errorf("no conference calls on this node: %w", conference.ErrNotLive)
}

func newConferences(domain string, log *slog.Logger) (*conferences, error) {
	c := &conferences{}
	c.bridge = confmedia.NewBridge(confmedia.BridgeConfig{Logger: log, Talking: func(confID, pid string, on bool) {
		if calls := c.calls.Load(); calls != nil {
			calls.Talking(confID, pid, on)
		}
	}})
	m, err := conference.NewManager(conference.Config{Domain: domain, Dialer: c, Audio: c.bridge, Logger: log})
	if err != nil {
		return nil, err
	}
	c.m, c.pages = m, conference.NewPages(m, log)
	return c, nil
}

// callConfig is what the conference calls take from the daemon's Config.
type callConfig struct {
	Trunk        string // host:port of dial-outs to +E.164 numbers
	RingTimeout  time.Duration
	MediaTimeout time.Duration
}

// serveCalls answers INVITEs to conference URIs on srv and places the
// dial-outs, their media anchored on proxy (none in passthrough mode: no
// conference calls).
func (c *conferences) serveCalls(srv *sip.Server, proxy *rtpproxy.Proxy, records confcall.Records, cc callConfig, log *slog.Logger) error {
	if proxy == nil {
		return nil
	}
	calls, err := confcall.New(confcall.Config{SIP: srv, Conferences: c.m, Media: proxy, Mix: c.bridge, Router: srv, Records: records,
		Trunk: cc.Trunk, RingTimeout: cc.RingTimeout, MediaTimeout: cc.MediaTimeout, Logger: log})
	if err != nil {
		return err
	}
	c.calls.Store(calls)
	srv.HandleConferences(calls)
	return nil
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

// closeCalls hangs up the conference calls (BYE while SIP still runs) and
// ends the subscriptions with their final NOTIFY.
func (c *conferences) closeCalls() {
	if calls := c.calls.Load(); calls != nil {
		_ = calls.Close()
	}
	if c.subs != nil {
		_ = c.subs.Close()
	}
}
