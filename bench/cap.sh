#!/usr/bin/env bash
# CAP SCP backend benchmark: scp/capscp against `scpsim serve --cap` on
# loopback, one M3UA association over TCP. Prints lookups/s and p50/p99/max
# per concurrency, then (unless FUZZTIME=0) fuzzes every SS7 decoder.
#
#   bench/cap.sh                          # concurrency 1,8,32,128; 5 s each; 3 runs, median shown
#   CONC=1,32 DURATION=10s RUNS=5 bench/cap.sh
#   FUZZTIME=60s bench/cap.sh             # fuzz each decoder 60 s (default 30 s; 0 skips)
#   PIN=1 bench/cap.sh                    # scpsim on CPU 1, the client on CPU 0
#
# scpsim is stopped by its PID when the script exits.
set -euo pipefail
cd "$(dirname "$0")/.."

CONC=${CONC:-1,8,32,128}
DURATION=${DURATION:-5s}
RUNS=${RUNS:-3}
SUBSCRIBERS=${SUBSCRIBERS:-1000}
FUZZTIME=${FUZZTIME:-30s}
PIN=${PIN:-0}

tmp=$(mktemp -d)
pid=
cleanup() {
	if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/scpsim" ./cmd/scpsim
go build -o "$tmp/cap-bench" ./bench/cap

server_prefix=() client_prefix=()
if [ "$PIN" = 1 ] && command -v taskset >/dev/null; then
	server_prefix=(taskset -c 1) client_prefix=(taskset -c 0)
fi

"${server_prefix[@]}" "$tmp/scpsim" serve --http 127.0.0.1:0 --cap 127.0.0.1:0 2>"$tmp/scpsim.log" &
pid=$!
http= capaddr=
for _ in $(seq 100); do
	http=$(sed -n 's/.*msg="scpsim listening" proto=http addr=\([^ ]*\).*/\1/p' "$tmp/scpsim.log")
	capaddr=$(sed -n 's/.*msg="scpsim listening" proto=cap network=tcp addr=\([^ ]*\).*/\1/p' "$tmp/scpsim.log")
	[ -n "$http" ] && [ -n "$capaddr" ] && break
	sleep 0.1
done
if [ -z "$http" ] || [ -z "$capaddr" ]; then echo "scpsim did not start:" >&2; cat "$tmp/scpsim.log" >&2; exit 1; fi

echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(uname -sr) $(go version | cut -d' ' -f3) nproc=$(nproc) load: $(cut -d' ' -f1-3 /proc/loadavg)"
"${client_prefix[@]}" "$tmp/cap-bench" -http "http://$http" -cap "cap+tcp://$capaddr" -c "$CONC" -d "$DURATION" -runs "$RUNS" -subscribers "$SUBSCRIBERS"

if [ "$FUZZTIME" != 0 ]; then
	echo "# fuzzing each SS7 decoder for $FUZZTIME"
	for t in ber:FuzzDecode ber:FuzzDifferential m3ua:FuzzDecode sccp:FuzzDecode tcap:FuzzDecode cap:FuzzDecode pcap:FuzzSCTPData trace:FuzzDescribe; do
		pkg=${t%%:*} fn=${t#*:}
		out=$(go test -run '^$' -fuzz "^$fn\$" -fuzztime "$FUZZTIME" "./scp/ss7/$pkg" 2>&1) || { echo "$out"; echo "FUZZ FAILURE in scp/ss7/$pkg $fn"; exit 1; }
		echo "scp/ss7/$pkg $fn: $(echo "$out" | grep -o 'execs: [0-9]*' | tail -1), no failure"
	done
fi
