package main

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/imcall/b2bua/sip"
)

// loadOptions are the flags of SIP throughput and overload.
type loadOptions struct {
	readers    int
	maxDelay   time.Duration
	maxCalls   int
	retryAfter time.Duration
}

func (o *loadOptions) register(f *pflag.FlagSet) {
	f.IntVar(&o.readers, "sip-udp-readers", 0, "UDP sockets on the SIP port (SO_REUSEPORT), one reader each; the kernel spreads peers over them (default one per CPU)")
	f.DurationVar(&o.maxDelay, "overload-delay", 250*time.Millisecond, "past capacity: while goroutines wait longer than this to run (90th percentile over 20 ms), new INVITEs get 503 with Retry-After at once; 0: off")
	f.IntVar(&o.maxCalls, "max-calls", 0, "live calls past which new INVITEs get 503 with Retry-After (0: no limit)")
	f.DurationVar(&o.retryAfter, "overload-retry-after", 5*time.Second, "Retry-After of the overload 503s")
}

func (o *loadOptions) config() (readers int, ov sip.Overload, err error) {
	switch {
	case o.readers < 0:
		return 0, sip.Overload{}, fmt.Errorf("--sip-udp-readers: %d: must be 0 (one per CPU) or more", o.readers)
	case o.maxCalls < 0:
		return 0, sip.Overload{}, fmt.Errorf("--max-calls: %d: must be 0 (no limit) or more", o.maxCalls)
	case o.maxDelay < 0:
		return 0, sip.Overload{}, fmt.Errorf("--overload-delay: %v: must be 0 (off) or more", o.maxDelay)
	case o.retryAfter < time.Second:
		return 0, sip.Overload{}, fmt.Errorf("--overload-retry-after: %v: must be at least 1s (Retry-After counts seconds)", o.retryAfter)
	}
	return o.readers, sip.Overload{MaxDelay: o.maxDelay, MaxCalls: o.maxCalls, RetryAfter: o.retryAfter}, nil
}
