package daemon

import (
	"context"
	"time"

	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/statuspage"
)

// statusSource gathers the status page's snapshot from the running parts.
type statusSource struct {
	d       *Daemon
	node    string
	backend string
}

// Status page bounds: the page is for a person, not an export.
const (
	statusClients  = 50
	statusFailures = 20
	statusScan     = 200 // recent records read to find the failures among them
)

func (s statusSource) Status(ctx context.Context) (statuspage.Snapshot, error) {
	d := s.d
	snap := statuspage.Snapshot{Node: s.node, Version: BuildVersion().String(), SCP: statuspage.SCP{Backend: s.backend},
		Calls: d.sip.LiveCalls(ctx), Clients: []registry.Binding{}, Failures: []registry.CallSummary{}}
	for _, c := range d.ready.run() {
		snap.Checks = append(snap.Checks, statuspage.Check{Name: c.name, Problem: c.problem})
		if c.name == "scp" {
			snap.SCP.Problem = c.problem
		}
	}
	if lb, ok := d.store.(liveBindings); ok {
		bs, n, err := lb.LiveBindings(ctx, time.Now(), statusClients)
		if err != nil {
			return snap, err
		}
		snap.Clients, snap.ClientsTotal = bs, n
	}
	recs, err := d.store.ListCalls(ctx, registry.CallFilter{Limit: statusScan})
	if err != nil {
		return snap, err
	}
	for _, r := range recs {
		switch o := r.Outcome(); o {
		case "answered", "active", "cancelled":
		default:
			snap.Failures = append(snap.Failures, r.Summary())
		}
		if len(snap.Failures) == statusFailures {
			break
		}
	}
	return snap, nil
}
