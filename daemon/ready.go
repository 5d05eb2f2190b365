package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// readyTTL is how long one readiness check is reused: dispatchers probe
// with OPTIONS every few seconds, and each probe must not cost a database
// read.
const readyTTL = time.Second

// pinger is a store that can say it is reachable (registry/sqlite).
type pinger interface {
	Ping(ctx context.Context) error
}

// breaker is an SCP backend with a circuit breaker (scp/scphttp).
type breaker interface{ BreakerOpen() bool }

// check is one readiness condition and its problem, "" when met.
type check struct{ name, problem string }

// readiness answers /readyz and the OPTIONS probe from one cached check.
type readiness struct {
	d   *Daemon
	now func() time.Time

	mu     sync.Mutex
	at     time.Time
	checks []check
}

// run checks what /readyz reports: SIP listening, the store reachable, the
// SCP breaker closed, not draining.
func (r *readiness) run() []check {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := r.now(); !r.at.IsZero() && now.Sub(r.at) < readyTTL {
		return r.checks
	}
	d := r.d
	sipProblem := ""
	select {
	case <-d.sipDown:
		sipProblem = "down"
	default:
		select {
		case <-d.sip.Ready():
		default:
			sipProblem = "starting"
		}
	}
	storeProblem := ""
	if p, ok := d.store.(pinger); ok {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		if err := p.Ping(ctx); err != nil {
			storeProblem = "unreachable: " + err.Error()
		}
		cancel()
	}
	scpProblem := ""
	if b, ok := d.loc.(breaker); ok && b.BreakerOpen() {
		scpProblem = "circuit breaker open"
	}
	drainProblem := ""
	if d.sip.Draining() {
		drainProblem = "draining"
	}
	r.checks = []check{{"sip", sipProblem}, {"store", storeProblem}, {"scp", scpProblem}, {"shutdown", drainProblem}}
	r.at = r.now()
	return r.checks
}

// err is nil when every check passes, else the problems in one error.
func (r *readiness) err() error {
	var p []string
	for _, c := range r.run() {
		if c.problem != "" {
			p = append(p, c.name+" "+c.problem)
		}
	}
	if len(p) == 0 {
		return nil
	}
	return errors.New(strings.Join(p, "; "))
}

// serveReady answers GET /readyz: 200 when every check passes, else 503;
// the body lists each check and its state.
func (r *readiness) serveReady(w http.ResponseWriter, _ *http.Request) {
	checks := r.run()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	status := http.StatusOK
	for _, c := range checks {
		if c.problem != "" {
			status = http.StatusServiceUnavailable
		}
	}
	w.WriteHeader(status)
	for _, c := range checks {
		state := "ok"
		if c.problem != "" {
			state = c.problem
		}
		fmt.Fprintf(w, "%s %s\n", c.name, state)
	}
}

// serveLive answers GET /healthz, liveness: 200 while the process serves
// SIP, 503 once a SIP listener died (serve then exits, for a supervisor to
// restart it). It does not look at the store or the SCP: a dependency
// down is no reason to restart the node (that is /readyz).
func (d *Daemon) serveLive(w http.ResponseWriter, _ *http.Request) {
	select {
	case <-d.sipDown:
		http.Error(w, "sip down", http.StatusServiceUnavailable)
		return
	default:
	}
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintln(w, "ok")
}
