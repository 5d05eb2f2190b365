#!/usr/bin/env bash
# PostgreSQL registry: the registry work of one call (round trips and time,
# with the callee's active terminal cached and read), and the latency of
# each read a call makes, on a throwaway server that the benchmark starts
# (internal/pgtest: the Debian postgresql package, Unix socket, fsync off).
# COUNT runs of each (default 5); compare with bench/registry.sh (SQLite)
# in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  host: $(uname -srm)  cpus: $(nproc)  $(go version)  load: $(cut -d' ' -f1-3 /proc/loadavg)"
ls -d /usr/lib/postgresql/*/bin | sed 's/^/postgresql: /'
go test -run '^$' -bench 'CallPath|Lookups' -benchtime "${BENCHTIME:-3000x}" -count "${COUNT:-5}" ./registry/postgres/ | grep -E '^(Benchmark|ok)'
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
