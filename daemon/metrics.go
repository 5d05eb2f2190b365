package daemon

import (
	"context"
	"strings"
	"time"

	"github.com/imcall/b2bua/metrics"
	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/rtpproxy"
	"github.com/imcall/b2bua/sip"
)

// liveBindings is the registry's list of the clients logged in now
// (registry/sqlite); a store without it exports no such gauge.
type liveBindings interface {
	LiveBindings(ctx context.Context, now time.Time, limit int) ([]registry.Binding, int, error)
}

// newMetrics builds the metrics of d, which read the SIP server and the
// RTP proxy at scrape time; d.sip is set after this, before any scrape.
func newMetrics(d *Daemon, scpSpec string) *metrics.Metrics {
	backend, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(scpSpec)), ":")
	cfg := metrics.Config{
		ActiveCalls: func() int { return d.sip.ActiveCalls() },
		Paths:       d.pathMetrics,
		Overload:    func() sip.OverloadStats { return d.sip.OverloadStats() },
		SCPBackend:  backend,
	}
	if d.rtp != nil {
		cfg.RTP = func() rtpproxy.Metrics { return d.rtp.Metrics() }
	}
	if lb, ok := d.store.(liveBindings); ok {
		cfg.Clients = func(ctx context.Context) (int, error) {
			_, n, err := lb.LiveBindings(ctx, time.Now(), 0)
			return n, err
		}
	}
	return metrics.New(cfg)
}

func (d *Daemon) pathMetrics() sip.PathMetrics { return d.sip.PathMetrics() }
