// Command scp-bench measures the http SCP backend (scp/scphttp) against a
// running SCP such as `scpsim serve`: lookups per second and latency
// percentiles at several concurrencies. bench/scp.sh starts scpsim and runs
// it; it prints one table row per concurrency and, with -json, one JSON line
// per run.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/imcall/b2bua/bench/locload"
	"github.com/imcall/b2bua/scp"
	"github.com/imcall/b2bua/scp/scphttp"
	"github.com/imcall/b2bua/scp/sim"
)

type result struct {
	Concurrency int     `json:"concurrency"`
	Lookups     int     `json:"lookups"`
	Errors      int     `json:"errors"`
	PerSec      float64 `json:"lookups_per_s"`
	P50us       float64 `json:"p50_us"`
	P99us       float64 `json:"p99_us"`
	P999us      float64 `json:"p999_us"`
	MaxUs       float64 `json:"max_us"`
}

func main() {
	url := flag.String("url", "http://127.0.0.1:8070", "base URL of the SCP")
	conc := flag.String("c", "1,8,32", "comma-separated concurrencies")
	dur := flag.Duration("d", 5*time.Second, "duration of each run")
	warm := flag.Duration("warmup", time.Second, "warm-up before each run (not measured)")
	subs := flag.Int("subscribers", 1000, "subscribers to attach before measuring")
	runs := flag.Int("runs", 1, "runs per concurrency; the table shows the median by lookups/s")
	asJSON := flag.Bool("json", false, "also print one JSON line per run")
	cpuprofile := flag.String("cpuprofile", "", "write the client's CPU profile to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "scp-bench:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}

	ids, err := seed(*url, *subs)
	if err != nil {
		fmt.Fprintln(os.Stderr, "scp-bench:", err)
		os.Exit(1)
	}
	fmt.Printf("http backend -> %s, %d subscribers, GOMAXPROCS=%d, %v per run, %d run(s)\n", *url, len(ids), runtime.GOMAXPROCS(0), *dur, *runs)
	fmt.Printf("%11s %12s %9s %9s %9s %9s %7s\n", "concurrency", "lookups/s", "p50", "p99", "p99.9", "max", "errors")
	for _, f := range strings.Split(*conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintln(os.Stderr, "scp-bench: -c: want positive integers")
			os.Exit(2)
		}
		var rs []result
		for r := 0; r < *runs; r++ {
			res, err := run(*url, ids, n, *warm, *dur)
			if err != nil {
				fmt.Fprintln(os.Stderr, "scp-bench:", err)
				os.Exit(1)
			}
			if *asJSON {
				b, _ := json.Marshal(res)
				fmt.Println(string(b))
			}
			rs = append(rs, res)
		}
		slices.SortFunc(rs, func(a, b result) int { return int(a.PerSec - b.PerSec) })
		m := rs[len(rs)/2]
		fmt.Printf("%11d %12.0f %7.0fus %7.0fus %7.0fus %7.0fus %7d\n", m.Concurrency, m.PerSec, m.P50us, m.P99us, m.P999us, m.MaxUs, m.Errors)
	}
}

// seed attaches n subscribers, half online, a quarter busy, a quarter
// absent, so answers differ in size and state.
func seed(url string, n int) ([]string, error) {
	c, err := sim.NewClient(url, nil)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	ids := make([]string, n)
	states := []scp.State{scp.Online, scp.Online, scp.Busy, scp.Absent}
	for i := range ids {
		ids[i] = fmt.Sprintf("imsi:00199%010d", i)
		sub := sim.Subscriber{ID: ids[i], Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 5062), State: states[i%4]}
		if _, err := c.Attach(ctx, sub); err != nil {
			return nil, fmt.Errorf("seeding %s: %w", ids[i], err)
		}
	}
	return ids, nil
}

func run(url string, ids []string, conc int, warm, dur time.Duration) (result, error) {
	c, err := scphttp.New(scphttp.Config{URL: url, MaxIdleConnsPerHost: conc})
	if err != nil {
		return result{}, err
	}
	defer c.Close()
	m := locload.Measure(c, ids, conc, warm, dur)
	if len(m.Latencies) == 0 {
		return result{}, fmt.Errorf("no lookups completed at concurrency %d", conc)
	}
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	return result{
		Concurrency: conc,
		Lookups:     len(m.Latencies),
		Errors:      m.Errors,
		PerSec:      m.PerSec(),
		P50us:       us(m.Percentile(0.50)),
		P99us:       us(m.Percentile(0.99)),
		P999us:      us(m.Percentile(0.999)),
		MaxUs:       us(m.Max()),
	}, nil
}
