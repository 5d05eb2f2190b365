#!/usr/bin/env bash
# Conference mixer benchmark: participants per core at 20 ms G.711 with
# mix-minus, in one big conference and in many 3-party ones.
#  1. the Go benchmark (bench/mixer, GOMAXPROCS=1): the cost of one frame of
#     the whole load, in and out; median of COUNT runs;
#  2. a real-time run (go run ./bench/mixer, GOMAXPROCS=1): the participants
#     on real 20 ms tickers for DURATION, the CPU they use and the late frames
#     (the figure only counts at zero late frames); median of REPEAT runs.
#     The run also reports how often the packet source itself was held up by
#     40 ms (the playout delay) or more: on a shared machine that, not the
#     mixer's CPU, is what makes frames late.
#   COUNT=5 REPEAT=3 DURATION=10s LOADS="1000:0 3000:0 999:3 3000:3" bench/mixer.sh
# LOADS lists participants:conference-size (0: one conference of all).
# Raw JSON lines of the real-time runs go to $OUT (default bench/mixer/results/<UTC time>.jsonl).
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${COUNT:-5}
REPEAT=${REPEAT:-3}
DURATION=${DURATION:-10s}
LOADS=${LOADS:-"1000:0 2000:0 3000:0 999:3 2001:3 3000:3"}
OUT=$(realpath -m "${OUT:-bench/mixer/results/$(date -u +%Y%m%dT%H%M%SZ).jsonl}")
mkdir -p "$(dirname "$OUT")"
echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  host: $(uname -srm)  cpus: $(nproc)  $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)  $(go version)  load: $(cut -d' ' -f1-3 /proc/loadavg)"

echo "## Go benchmark, one core: cost of one 20 ms frame of the whole load (median of $COUNT)"
go test -run '^$' -bench BenchmarkFrame -benchtime 300x -count "$COUNT" -cpu 1 ./bench/mixer |
	awk '/^BenchmarkFrame/ { n=$1; ns[n]=ns[n] " " $3; pc[n]=pc[n] " " $5; al[n]=$(NF-1) }
	function med(s,   k, xs, i, j, t) {
		k = split(substr(s, 2), xs, " ")
		for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (xs[j] + 0 < xs[i] + 0) { t = xs[i]; xs[i] = xs[j]; xs[j] = t }
		return xs[int((k + 1) / 2)]
	}
	END { for (n in ns) printf "%-55s median %10.0f ns/frame  %7.0f participants/core  (%s allocs/frame)\n", n, med(ns[n]), med(pc[n]), al[n] }' | sort

echo "## real time, one core (GOMAXPROCS=1): median of $REPEAT runs of $DURATION"
bin=$(mktemp /tmp/mixerload.XXXXXX)
trap 'rm -f "$bin"' EXIT
go build -o "$bin" ./bench/mixer
for rep in $(seq "$REPEAT"); do
	for load in $LOADS; do
		GOMAXPROCS=1 "$bin" -participants "${load%%:*}" -size "${load##*:}" -duration "$DURATION" >>"$OUT"
	done
done
python3 - "$OUT" <<'PY'
import json, statistics, sys
runs = {}
for l in open(sys.argv[1]):
    if l.strip():
        r = json.loads(l)
        runs.setdefault((r["conference_size"], r["participants"]), []).append(r)
print("| conference size | participants | runs | CPU % of a core | participants per core | late frames | lost frames | loop catch-ups | sender held up >= 40 ms | sender max behind ms |")
print("|---|---|---|---|---|---|---|---|---|---|")
for (size, n), rs in sorted(runs.items()):
    med = lambda k: statistics.median(r[k] for r in rs)
    print("| %s | %d | %d | %.1f | %.0f | %s | %s | %s | %s | %.0f |" % (
        "all" if size == 0 else size, n, len(rs), med("cpu_pct_of_a_core"), med("participants_per_core"),
        "/".join(str(r["late_frames"]) for r in rs), "/".join(str(r["lost_frames"]) for r in rs),
        "/".join(str(r["loop_overruns"]) for r in rs),
        "/".join(str(r["sender_stalls_40ms"]) for r in rs), med("sender_max_behind_ms")))
PY
