#!/usr/bin/env bash
# Registry lookup benchmark: ActiveTerminal lookups per second from one
# goroutine on a SQLite registry of 10,000 users (20,000 terminals), as the
# median of several runs. Extra arguments go to the program, e.g.
#   bench/registry.sh -runs 7 -duration 3s -users 100000
# Modes: cached (the call path), churn (another handle commits every 10 ms,
# so the cache is dropped and refilled), sql (same query, no cache).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  host: $(uname -srm)  cpus: $(nproc)  $(go version)"
go run ./bench/registry -users 10000 -runs 5 -duration 2s "$@"
