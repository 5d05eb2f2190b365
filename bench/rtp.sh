#!/usr/bin/env bash
# RTP relay benchmark: N relayed G.711 streams (20 ms, 50 packets/s each)
# through rtpengine (userspace), through our rtpproxy (driven over rtpengine's
# ng protocol by bench/rtp/ngshim) and through the plain Go UDP relay, in
# one run, interleaved per N so that all three see the same machine.
#
#   bench/rtp.sh                      # N = 500,1000,2000,3000,4000, 20 s each
#   STREAMS=500,1000 DURATION=10 bench/rtp.sh
#   TARGETS="ours rtpengine" bench/rtp.sh
#   PIN=1 bench/rtp.sh                # relay on CPU 1, generator on CPU 0
#   REPEAT=3 bench/rtp.sh             # each (N, target) 3 times; the summary gives medians
#
# Needs: Go, python3, rtpengine (apt-get install -y rtpengine-daemon) and the
# peer harness in $BENCH_PEERS (default /work/shared/bench-peers), which is
# copied to a temporary directory and built there (nothing is written into
# it). Raw JSON lines go to $OUT (default bench/rtp/results/<UTC time>.jsonl); the
# summary table is printed at the end. Every process started here is stopped
# by its PID when the script exits.
set -euo pipefail
cd "$(dirname "$0")/.."

PEERS=${BENCH_PEERS:-/work/shared/bench-peers}
STREAMS=${STREAMS:-500,1000,2000,3000,4000}
DURATION=${DURATION:-20}
TARGETS=${TARGETS:-"rtpengine ours udprelay"}
OUT=$(realpath -m "${OUT:-bench/rtp/results/$(date -u +%Y%m%dT%H%M%SZ).jsonl}")
mkdir -p "$(dirname "$OUT")"
QUIET_WAIT=${QUIET_WAIT:-30}
NOISE_RETRIES=${NOISE_RETRIES:-1}
REPEAT=${REPEAT:-1}
NG=127.0.0.1:2224

work=$(mktemp -d /tmp/rtpbench.XXXXXX)
shim_pid=""
cleanup() {
	if [ -n "$shim_pid" ]; then kill "$shim_pid" 2>/dev/null || true; wait "$shim_pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

mkdir -p "$work/peers"
cp -r "$PEERS"/*.py "$PEERS"/go "$work/peers/"
rm -rf "$work/peers/go/bin"
(cd "$work/peers/go" && go build -trimpath -o bin/ ./...)
go build -trimpath -o "$work/ngshim" ./bench/rtp/ngshim
if [[ " $TARGETS " == *" rtpengine "* ]] && ! command -v rtpengine >/dev/null; then
	echo "rtpengine not installed: apt-get install -y rtpengine-daemon rtpengine-utils" >&2
	exit 1
fi

pin=()
shim_cmd=("$work/ngshim" -ng "$NG" -ports 20000-49999)
if [ "${PIN:-}" = 1 ]; then
	pin=(--pin)
	shim_cmd=(taskset -c 1 "${shim_cmd[@]}")
fi
common=(--duration "$DURATION" --quiet-wait "$QUIET_WAIT" --noise-retries "$NOISE_RETRIES" --out "$OUT" "${pin[@]}")
echo "# $(date -u +%FT%TZ) $(nproc) CPUs, $(uname -r), go $(go env GOVERSION), rtpengine $(dpkg-query -W -f='${Version}' rtpengine-daemon 2>/dev/null || echo none)" >&2

IFS=, read -ra ns <<<"$STREAMS"
for rep in $(seq "$REPEAT"); do
for n in "${ns[@]}"; do
	for t in $TARGETS; do
		case $t in
		ours)
			"${shim_cmd[@]}" -for $((DURATION + 120))s >"$work/ngshim.log" 2>&1 &
			shim_pid=$!
			sleep 0.5
			(cd "$work/peers" && python3 mediabench.py --target ng --ng "$NG" --target-pid "$shim_pid" \
				--streams "$n" "${common[@]}") || true
			kill "$shim_pid" 2>/dev/null || true
			wait "$shim_pid" 2>/dev/null || true
			shim_pid=""
			;;
		rtpengine | udprelay)
			(cd "$work/peers" && python3 mediabench.py --target "$t" --streams "$n" "${common[@]}") || true
			;;
		*) echo "unknown target $t" >&2; exit 2 ;;
		esac
	done
done
done

# Summary of this run: per target and N, the median over the repeats of
# each figure (a noisy run that was retried counts once, by its last attempt).
python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
runs = {}
for r in rows:
    if r.get("noisy") and "error" not in r:
        continue  # superseded by its retry
    runs.setdefault((r["target"], r["streams"]), []).append(r)
med = lambda xs: statistics.median(xs) if xs else float("nan")
print("| target | N | runs | delivered | relay CPU (% of a core) | CPU per 10k pps relayed | p50 ms | p99 ms | generator kept pace | foreign CPU % |")
print("|---|---|---|---|---|---|---|---|---|---|")
for (t, n), rs in sorted(runs.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    ok = [r for r in rs if "error" not in r]
    name = "rtpproxy" if t == "ng" else t
    if not ok:
        print("| %s | %d | %d | error: %s |" % (name, n, len(rs), rs[-1]["error"][:60]))
        continue
    cpu = [r["target_cpu_pct_of_one_core"] for r in ok if r.get("target_cpu_pct_of_one_core") is not None]
    per = [r["target_cpu_pct_of_one_core"] * 10000.0 / r["received_pps"] for r in ok
           if r.get("target_cpu_pct_of_one_core") is not None and r["received_pps"]]
    print("| %s | %d | %d | %.4f | %.1f | %.1f | %.2f | %.2f | %d/%d | %.0f |" % (
        name, n, len(ok), med([r["delivered_fraction"] for r in ok]), med(cpu), med(per),
        med([r["latency_us"]["p50"] for r in ok]) / 1000, med([r["latency_us"]["p99"] for r in ok]) / 1000,
        sum(1 for r in ok if r["generator_kept_pace"]), len(ok),
        med([r.get("foreign_cpu_pct_of_one_core") or 0 for r in ok])))
PY
