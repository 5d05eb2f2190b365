#!/usr/bin/env bash
# HTTP SCP backend benchmark: scp/scphttp against `scpsim serve` on loopback.
# Prints lookups/s and p50/p99/p99.9/max latency per concurrency.
#
#   bench/scp.sh                         # concurrency 1,8,32; 5 s each; 3 runs, median shown
#   CONC=1,8,32,64 DURATION=10s RUNS=5 bench/scp.sh
#   PIN=1 bench/scp.sh                   # scpsim on CPU 1, the client on CPU 0
#
# scpsim and the bench program are built into a temporary directory; scpsim
# is stopped by its PID when the script exits.
set -euo pipefail
cd "$(dirname "$0")/.."

CONC=${CONC:-1,8,32}
DURATION=${DURATION:-5s}
RUNS=${RUNS:-3}
SUBSCRIBERS=${SUBSCRIBERS:-1000}
PIN=${PIN:-0}

tmp=$(mktemp -d)
pid=
cleanup() {
	if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/scpsim" ./cmd/scpsim
go build -o "$tmp/scp-bench" ./bench/scp

server_prefix=() client_prefix=()
if [ "$PIN" = 1 ] && command -v taskset >/dev/null; then
	server_prefix=(taskset -c 1) client_prefix=(taskset -c 0)
fi

"${server_prefix[@]}" "$tmp/scpsim" serve --http 127.0.0.1:0 2>"$tmp/scpsim.log" &
pid=$!
addr=
for _ in $(seq 100); do
	addr=$(sed -n 's/.*msg="scpsim listening" proto=http addr=\([^ ]*\).*/\1/p' "$tmp/scpsim.log")
	[ -n "$addr" ] && break
	sleep 0.1
done
if [ -z "$addr" ]; then echo "scpsim did not start:" >&2; cat "$tmp/scpsim.log" >&2; exit 1; fi

echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(uname -sr) $(go version | cut -d' ' -f3) nproc=$(nproc) load: $(cut -d' ' -f1-3 /proc/loadavg)"
"${client_prefix[@]}" "$tmp/scp-bench" -url "http://$addr" -c "$CONC" -d "$DURATION" -runs "$RUNS" -subscribers "$SUBSCRIBERS"
