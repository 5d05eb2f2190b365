package main

import (
	"fmt"
	"log/slog"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/imcall/b2bua/sip"
)

// connOptions are the flags that bound SIP's TCP and TLS connections.
type connOptions struct {
	maxConns, perSource int
	idle, message       time.Duration
}

func (o *connOptions) register(f *pflag.FlagSet) {
	f.IntVar(&o.maxConns, "sip-max-conns", 0, "open SIP connections per TCP/TLS listener; past it a connection is closed at once (default min(1024, a quarter of the descriptor limit))")
	f.IntVar(&o.perSource, "sip-max-conns-per-source", 0, "open SIP TCP/TLS connections from one address (IPv6: per /64) (default min(128, --sip-max-conns))")
	f.DurationVar(&o.idle, "sip-idle-timeout", 180*time.Second, "a SIP TCP/TLS connection silent this long between messages is closed; RFC 5626 keep-alives count")
	f.DurationVar(&o.message, "sip-message-timeout", 10*time.Second, "a SIP message over TCP/TLS must arrive whole this soon after its first byte")
}

func (o *connOptions) limits() (sip.ConnLimits, error) {
	if o.maxConns < 0 || o.perSource < 0 {
		return sip.ConnLimits{}, fmt.Errorf("--sip-max-conns and --sip-max-conns-per-source: must be 0 or more")
	}
	if o.idle <= 0 || o.message <= 0 {
		return sip.ConnLimits{}, fmt.Errorf("--sip-idle-timeout and --sip-message-timeout: must be positive")
	}
	return sip.ConnLimits{MaxConns: o.maxConns, MaxConnsPerSource: o.perSource, IdleTimeout: o.idle, MessageTimeout: o.message}, nil
}

// raiseNofile raises the soft descriptor limit to the hard one and returns
// what to log, once serve is up (an error before that must stay the only
// line on stderr). Go's runtime does the raise itself since 1.19 (and
// restores the old limit for the programs it starts); doing it here too
// keeps it true whatever starts us, and the log line says what the
// connection limits are sized from.
func raiseNofile() func(*slog.Logger) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return func(log *slog.Logger) { log.Warn("descriptor limit unknown", "err", err) }
	}
	before := r.Cur
	if r.Cur < r.Max {
		r.Cur = r.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
			return func(log *slog.Logger) {
				log.Warn("descriptor limit not raised", "soft", before, "hard", r.Max, "err", err)
			}
		}
	}
	return func(log *slog.Logger) {
		log.Info("descriptor limit", "nofile", r.Cur, "hard", r.Max, "soft_at_start", before)
	}
}
