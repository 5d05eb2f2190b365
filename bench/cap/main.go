// Command cap-bench measures the CAP SCP backend (scp/capscp) against a
// running gsmSCF such as `scpsim serve --cap`: lookups per second and
// latency percentiles over one M3UA association, at several concurrencies.
// bench/cap.sh starts scpsim and runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/imcall/b2bua/bench/locload"
	"github.com/imcall/b2bua/scp"
	"github.com/imcall/b2bua/scp/capscp"
	"github.com/imcall/b2bua/scp/sim"
)

type result struct {
	conc    int
	lookups int
	errs    int
	perSec  float64
	p50     time.Duration
	p99     time.Duration
	max     time.Duration
}

func main() {
	httpURL := flag.String("http", "http://127.0.0.1:8070", "scpsim's HTTP API, to seed subscribers")
	capURL := flag.String("cap", "cap+tcp://127.0.0.1:2905", "the SCP's CAP URL")
	conc := flag.String("c", "1,8,32,128", "comma-separated concurrencies")
	dur := flag.Duration("d", 5*time.Second, "duration of each run")
	warm := flag.Duration("warmup", time.Second, "warm-up before each run (not measured)")
	subs := flag.Int("subscribers", 1000, "subscribers to attach before measuring")
	runs := flag.Int("runs", 3, "runs per concurrency; the median by lookups/s is shown")
	flag.Parse()
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "cap-bench:", err)
		os.Exit(1)
	}
	ids, err := seed(*httpURL, *subs)
	if err != nil {
		fail(err)
	}
	c, err := capscp.New(capscp.Config{URL: *capURL, Timeout: 5 * time.Second})
	if err != nil {
		fail(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err = c.WaitUp(ctx)
	cancel()
	if err != nil {
		fail(fmt.Errorf("association: %w", err))
	}
	fmt.Printf("cap backend -> %s, one association, %d subscribers, GOMAXPROCS=%d, %v per run, %d run(s)\n", *capURL, len(ids), runtime.GOMAXPROCS(0), *dur, *runs)
	fmt.Printf("%11s %12s %9s %9s %9s %7s\n", "concurrency", "lookups/s", "p50", "p99", "max", "errors")
	for _, f := range strings.Split(*conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintln(os.Stderr, "cap-bench: -c: want positive integers")
			os.Exit(2)
		}
		var rs []result
		for range *runs {
			rs = append(rs, run(c, ids, n, *warm, *dur))
		}
		slices.SortFunc(rs, func(a, b result) int { return int(a.perSec - b.perSec) })
		m := rs[len(rs)/2]
		us := func(d time.Duration) string { return fmt.Sprintf("%.0fus", float64(d.Nanoseconds())/1e3) }
		fmt.Printf("%11d %12.0f %9s %9s %9s %7d\n", m.conc, m.perSec, us(m.p50), us(m.p99), us(m.max), m.errs)
	}
}

// seed attaches n subscribers over HTTP: half online, a quarter busy, a
// quarter absent, so that answers differ (Connect or ReleaseCall).
func seed(url string, n int) ([]string, error) {
	c, err := sim.NewClient(url, nil)
	if err != nil {
		return nil, err
	}
	states := []scp.State{scp.Online, scp.Online, scp.Busy, scp.Absent}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("imsi:00198%010d", i)
		sub := sim.Subscriber{ID: ids[i], Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 5062), State: states[i%4]}
		if _, err := c.Attach(context.Background(), sub); err != nil {
			return nil, fmt.Errorf("seeding %s: %w", ids[i], err)
		}
	}
	return ids, nil
}

func run(c *capscp.Client, ids []string, conc int, warm, dur time.Duration) result {
	m := locload.Measure(c, ids, conc, warm, dur)
	return result{conc: conc, lookups: len(m.Latencies), errs: m.Errors, perSec: m.PerSec(),
		p50: m.Percentile(0.50), p99: m.Percentile(0.99), max: m.Max()}
}
