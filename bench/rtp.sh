#!/usr/bin/env bash
# RTP relay benchmark: N relayed G.711 streams (20 ms, 50 packets/s each, so
# 50*N packets/s into the relay and as many out) through
#
#   direct       no relay: the generator sends each stream straight to the
#                other endpoint; the baseline for "all CPU" (below)
#   rtpengine    rtpengine (Debian package, userspace: --table=-1)
#   ours         our rtpproxy, userspace relay (driven over rtpengine's ng
#                protocol by bench/rtp/ngshim)
#   ours-kernel  our rtpproxy with in-kernel forwarding (ngshim -kernel on:
#                needs root and Linux >= 6.6)
#   udprelay     the plain Go UDP relay of the peer harness (not by default)
#
# all in one run, interleaved per N and per repeat so that every target sees
# the same machine.
#
#   bench/rtp.sh                                  # the defaults below
#   STREAMS=250,1000 REPEAT=3 DURATION=10 bench/rtp.sh
#   TARGETS="ours ours-kernel" bench/rtp.sh
#   PIN=0 bench/rtp.sh                            # no CPU pinning
#
# Knobs (environment):
#   STREAMS   N values, comma-separated            default 250,500,1000,2000,3000
#   REPEAT    runs per (N, target); the summary    default 5
#             gives medians and min-max over them
#   DURATION  counted seconds per run (3 s warm-up default 10
#             and 1 s drain besides)
#   TARGETS   see above                            default "direct rtpengine ours ours-kernel"
#   PIN       1: relay on CPU $PIN_SUT, generator  default 1
#             on CPU $PIN_GEN (taskset), so the
#             generator never competes with the relay
#   QUIET_WAIT  seconds to wait for a quiet machine before each run
#             (mediabench waits for < 10% busy; it goes on after this)  default 20
#   OUT       raw JSON lines (one per run)         default bench/rtp/results/<UTC>.jsonl
#   BENCH_PEERS  the peer harness (copied to a temporary directory and built
#             there; nothing is written into it)   default /work/shared/bench-peers
#
# A run is INVALID, and left out of the medians, when the generator did not
# keep pace (it sent < 98% of the offered packets in the counted time):
# it then measured an overload, not the relay at N. The summary shows, per
# (N, target), how many of the runs were valid; a row with fewer than 3
# valid runs prints no figures.
#
# Figures per (N, target), over the valid runs:
#   loss      1 - delivered fraction (median, max)
#   relay CPU the relay process (all threads), % of one core per 10k packets/s
#             relayed: what rtpengine and our userspace relay cost
#   all CPU   generator + relay + ksoftirqd minus the same for "direct" at
#             the same N, per 10k packets/s relayed: the relay's whole cost,
#             softirq included wherever the kernel charged it. For
#             in-kernel forwarding this is the figure to read (the program
#             runs in softirq, mostly inside the generator's send calls)
#   stat CPU  the same difference from /proc/stat's user+nice+system+irq+
#             softirq of the whole machine: includes other users' load, so
#             it is only meaningful on a quiet machine (load is printed)
#   p50, p99  one-way latency generator -> relay -> sink, ms (median, spread)
#
# Needs: Go, python3, rtpengine (apt-get install -y rtpengine-daemon). Every
# process started here is stopped by its PID when the script exits.
set -euo pipefail
cd "$(dirname "$0")/.."

PEERS=${BENCH_PEERS:-/work/shared/bench-peers}
STREAMS=${STREAMS:-250,500,1000,2000,3000}
DURATION=${DURATION:-10}
TARGETS=${TARGETS:-"direct rtpengine ours ours-kernel"}
OUT=$(realpath -m "${OUT:-bench/rtp/results/$(date -u +%Y%m%dT%H%M%SZ).jsonl}")
mkdir -p "$(dirname "$OUT")"
QUIET_WAIT=${QUIET_WAIT:-20}
REPEAT=${REPEAT:-5}
PIN=${PIN:-1}
PIN_SUT=${PIN_SUT:-1}
PIN_GEN=${PIN_GEN:-0}
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
cp bench/rtp/statbench.py "$work/peers/"
rm -rf "$work/peers/go/bin"
(cd "$work/peers/go" && go build -trimpath -o bin/ ./...)
go build -trimpath -o "$work/ngshim" ./bench/rtp/ngshim
if [[ " $TARGETS " == *" rtpengine "* ]] && ! command -v rtpengine >/dev/null; then
	echo "rtpengine not installed: apt-get install -y rtpengine-daemon" >&2
	exit 1
fi

pin=()
shim_pin=()
if [ "$PIN" = 1 ]; then
	pin=(--pin --pin-sut "$PIN_SUT" --pin-gen "$PIN_GEN")
	shim_pin=(taskset -c "$PIN_SUT")
fi
# No noise retries: every run counts once, and load is recorded per run.
common=(--duration "$DURATION" --quiet-wait "$QUIET_WAIT" --noise-retries 0 --out "$OUT" "${pin[@]}")
{
	echo "# $(date -u +%FT%TZ) $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), Linux $(uname -r)"
	echo "# go $(go env GOVERSION), rtpengine $(dpkg-query -W -f='${Version}' rtpengine-daemon 2>/dev/null || echo none), commit $(git rev-parse --short HEAD 2>/dev/null || echo ?)"
	echo "# STREAMS=$STREAMS REPEAT=$REPEAT DURATION=$DURATION PIN=$PIN TARGETS=\"$TARGETS\"; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT.meta" >&2

run_shim() { # label, kernel mode, N
	"${shim_pin[@]}" "$work/ngshim" -ng "$NG" -ports 20000-49999 -kernel "$2" -for $((DURATION + 120))s >"$work/ngshim.log" 2>&1 &
	shim_pid=$!
	for _ in $(seq 50); do grep -q ready "$work/ngshim.log" 2>/dev/null && break; sleep 0.1; done
	if ! grep -q ready "$work/ngshim.log"; then
		echo "ngshim did not start:" >&2; cat "$work/ngshim.log" >&2
		kill "$shim_pid" 2>/dev/null || true; wait "$shim_pid" 2>/dev/null || true; shim_pid=""
		return 1
	fi
	(cd "$work/peers" && python3 statbench.py --label "$1" --target ng --ng "$NG" --target-pid "$shim_pid" \
		--streams "$3" "${common[@]}") || true
	kill "$shim_pid" 2>/dev/null || true
	wait "$shim_pid" 2>/dev/null || true
	shim_pid=""
}

IFS=, read -ra ns <<<"$STREAMS"
for rep in $(seq "$REPEAT"); do
	for n in "${ns[@]}"; do
		for t in $TARGETS; do
			echo "# repeat $rep/$REPEAT N=$n $t (load $(cut -d' ' -f1 /proc/loadavg))" >&2
			case $t in
			ours) run_shim ours off "$n" ;;
			ours-kernel) run_shim ours-kernel on "$n" ;;
			direct)
				(cd "$work/peers" && python3 statbench.py --label direct --direct --streams "$n" "${common[@]}") || true
				;;
			rtpengine | udprelay)
				(cd "$work/peers" && python3 statbench.py --target "$t" --streams "$n" "${common[@]}") || true
				;;
			*) echo "unknown target $t" >&2; exit 2 ;;
			esac
		done
	done
done

python3 bench/rtp/summary.py "$OUT"
