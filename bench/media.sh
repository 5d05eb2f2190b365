#!/usr/bin/env bash
# Store-and-link benchmarks: GET /m/{token} for a known token (200 and 304)
# and an unknown one (404), the MESSAGE decision, the message/cpim parser.
# Prints the median ns/op of COUNT runs (default 5) per benchmark.
#   COUNT=7 BENCHTIME=2s bench/media.sh
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${COUNT:-5}
BENCHTIME=${BENCHTIME:-1s}
echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  host: $(uname -srm)  cpus: $(nproc)  $(go version)  load: $(cut -d' ' -f1-3 /proc/loadavg)"
go test -run '^$' -bench . -benchtime "$BENCHTIME" -count "$COUNT" ./bench/media |
	awk '/^Benchmark/ { name=$1; sub(/-[0-9]+$/, "", name); v[name]=v[name] " " $3; a[name]=$(NF-1) }
	END {
		for (n in v) {
			k = split(substr(v[n], 2), xs, " ")
			for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (xs[j] + 0 < xs[i] + 0) { t = xs[i]; xs[i] = xs[j]; xs[j] = t }
			printf "%-40s median %10.0f ns/op  (%d runs, %s allocs/op)\n", n, xs[int((k + 1) / 2)], k, a[n]
		}
	}' | sort
