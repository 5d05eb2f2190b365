// Command mixer is the conference mixer's load run: N participants on real
// 20 ms tickers, fed by one packet source at 20 ms, for a duration; it prints
// one JSON line with the CPU used, the participants per core that implies, and
// the late frames (there must be none) and the loops' catch-ups. bench/mixer.sh runs it; the Go
// benchmark in this directory measures the same work per frame.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"time"
)

func main() {
	n := flag.Int("participants", 1000, "participants in all")
	size := flag.Int("size", 3, "participants per conference (0: one conference of all)")
	dur := flag.Duration("duration", 10*time.Second, "measured time, after a 2 s warm-up")
	flag.Parse()
	if err := run(*n, *size, *dur); err != nil {
		fmt.Fprintln(os.Stderr, "mixer load:", err)
		os.Exit(1)
	}
}

func run(n, size int, dur time.Duration) error {
	confs, err := newLoad(n, size, func(int) <-chan time.Time { return nil })
	if err != nil {
		return err
	}
	stop := runAll(confs)
	defer stop()
	feed := time.NewTicker(20 * time.Millisecond)
	defer feed.Stop()
	warm := time.Now().Add(2 * time.Second)
	end := warm.Add(dur)
	var cpu0 time.Duration
	var late0, lost0, over0 uint64
	var wall0 time.Time
	start, sent := time.Now(), int64(0)
	var stalls int // feeder ticks 40 ms (the playout delay) or more behind schedule, after warm-up
	var maxStall time.Duration
	for now := range feed.C {
		if behind := time.Since(start) - time.Duration(sent)*20*time.Millisecond; !wall0.IsZero() {
			// The process could not run for this long: a frame sent this late
			// may already have been played out as missing.
			if behind >= 40*time.Millisecond {
				stalls++
			}
			maxStall = max(maxStall, behind)
		}
		// A real sender's clock does not stop when this process is held up:
		// send every frame due by now, as a burst if ticks were dropped.
		for due := int64(now.Sub(start)/(20*time.Millisecond)) + 1; sent < due; sent++ {
			if err := feedAll(confs); err != nil {
				return err
			}
		}
		if wall0.IsZero() && now.After(warm) {
			wall0, cpu0 = now, cpuTime()
			late0, lost0, over0 = lateFrames(confs)
		}
		if now.After(end) {
			break
		}
	}
	wall, cpu := time.Since(wall0), cpuTime()-cpu0
	late, lost, over := lateFrames(confs)
	frac := cpu.Seconds() / wall.Seconds()
	out := map[string]any{
		"date":                  time.Now().UTC().Format(time.RFC3339),
		"participants":          n,
		"conference_size":       size,
		"conferences":           len(confs),
		"gomaxprocs":            runtime.GOMAXPROCS(0),
		"seconds":               wall.Seconds(),
		"cpu_pct_of_a_core":     100 * frac,
		"participants_per_core": float64(n) / frac,
		"late_frames":           late - late0,
		"lost_frames":           lost - lost0,
		"loop_overruns":         over - over0,
		"sender_stalls_40ms":    stalls,
		"sender_max_behind_ms":  maxStall.Seconds() * 1000,
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
