// Package locload drives an scp.Locator from several goroutines and measures
// each lookup, for the SCP backends' benchmarks (bench/scp, bench/cap).
package locload

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/imcall/b2bua/scp"
)

// Sample is one measured run: every lookup's latency, sorted, and how many
// of them failed.
type Sample struct {
	Latencies []time.Duration
	Errors    int
	Elapsed   time.Duration
}

// PerSec is the lookup rate over the measured interval.
func (s Sample) PerSec() float64 { return float64(len(s.Latencies)) / s.Elapsed.Seconds() }

// Percentile gives the latency below which a fraction p of the lookups fell
// (0 when nothing was measured).
func (s Sample) Percentile(p float64) time.Duration {
	if len(s.Latencies) == 0 {
		return 0
	}
	return s.Latencies[min(len(s.Latencies)-1, int(p*float64(len(s.Latencies))))]
}

// Max is the slowest lookup.
func (s Sample) Max() time.Duration { return s.Percentile(1) }

// Measure runs conc workers looking up ids in turn: warm without measuring,
// then dur measured. Each worker keeps its own latencies so the loop takes
// no lock per lookup.
func Measure(loc scp.Locator, ids []string, conc int, warm, dur time.Duration) Sample {
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		s       Sample
		measure = make(chan struct{})
		stop    = make(chan struct{})
	)
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 1<<16)
			e, on := 0, false
			for i := w; ; i += conc {
				select {
				case <-stop:
					mu.Lock()
					s.Latencies, s.Errors = append(s.Latencies, lat...), s.Errors+e
					mu.Unlock()
					return
				case <-measure:
					if !on {
						on, lat, e = true, lat[:0], 0
					}
				default:
				}
				start := time.Now()
				_, err := loc.Locate(context.Background(), ids[i%len(ids)])
				if d := time.Since(start); on {
					lat = append(lat, d)
					if err != nil {
						e++
					}
				}
			}
		}()
	}
	time.Sleep(warm)
	close(measure)
	t0 := time.Now()
	time.Sleep(dur)
	close(stop)
	s.Elapsed = time.Since(t0)
	wg.Wait()
	slices.Sort(s.Latencies)
	return s
}
