package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/imcall/b2bua/sip"
)

// limitOptions are the flags of the per-source SIP limits.
type limitOptions struct {
	rate         string
	burst        int
	userRate     string
	userBurst    int
	authFailures int
	srcFailures  int
	authLockout  time.Duration
}

func (o *limitOptions) register(f *pflag.FlagSet) {
	f.StringVar(&o.rate, "sip-rate", envOr("B2BUA_SIP_RATE", "50/s"), "requests outside a dialog per untrusted source address (IPv6: per /64), N/s or N/m; over it they get 503 with Retry-After; 0 turns it off (env B2BUA_SIP_RATE)")
	f.IntVar(&o.burst, "sip-burst", 100, "requests a source may send at once before --sip-rate applies")
	f.StringVar(&o.userRate, "sip-user-rate", "20/s", "requests per authenticated user, from any address (behind a --proxies proxy too), N/s or N/m; over it they get 503 with Retry-After; 0 turns it off")
	f.IntVar(&o.userBurst, "sip-user-burst", 50, "requests a user may send at once before --sip-user-rate applies")
	f.IntVar(&o.authFailures, "sip-auth-failures", 10, "failed digest authentications as one user name from one source within a minute that lock that user out from that source only (403 without a check); 0 turns it off")
	f.IntVar(&o.srcFailures, "sip-auth-source-failures", 30, "failed digest authentications from one source, any user names, within a minute after which it may authenticate only as users that did so from it lately; 0 turns it off")
	f.DurationVar(&o.authLockout, "sip-auth-lockout", 5*time.Minute, "how long both lock-outs last")
}

// limits turns the flags into the B2BUA's limits.
func (o *limitOptions) limits() (sip.Limits, error) {
	rate, err := parseRate(o.rate)
	if err != nil {
		return sip.Limits{}, fmt.Errorf("--sip-rate: %w", err)
	}
	if o.burst < 1 && rate > 0 {
		return sip.Limits{}, fmt.Errorf("--sip-burst: must be at least 1")
	}
	userRate, err := parseRate(o.userRate)
	if err != nil {
		return sip.Limits{}, fmt.Errorf("--sip-user-rate: %w", err)
	}
	if o.userBurst < 1 && userRate > 0 {
		return sip.Limits{}, fmt.Errorf("--sip-user-burst: must be at least 1")
	}
	if o.authFailures < 0 {
		return sip.Limits{}, fmt.Errorf("--sip-auth-failures: must be 0 or more")
	}
	if o.srcFailures < 0 {
		return sip.Limits{}, fmt.Errorf("--sip-auth-source-failures: must be 0 or more")
	}
	return sip.Limits{Rate: rate, Burst: o.burst, UserRate: userRate, UserBurst: o.userBurst, AuthFailures: o.authFailures, AuthSourceFailures: o.srcFailures, AuthWindow: time.Minute, AuthLockout: o.authLockout}, nil
}

// parseRate reads "50/s", "600/m" or "50" (per second) as requests per
// second; "0" or "off" is no limit.
func parseRate(s string) (float64, error) {
	s = strings.TrimSpace(s)
	if s == "off" {
		return 0, nil
	}
	num, unit, _ := strings.Cut(s, "/")
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a rate such as 50/s or 600/m", s)
	}
	switch unit {
	case "", "s":
		return n, nil
	case "m":
		return n / 60, nil
	}
	return 0, fmt.Errorf("%q: the unit must be /s or /m", s)
}
