#!/usr/bin/env bash
# Quick load check of the b2bua's call core: SIPp's built-in uac -> b2bua
# (in-process SCP simulator, caller trusted) -> SIPp's built-in uas, RUNS
# runs of SECS seconds at each RATE. Prints, per run, SIPp's successful and
# failed calls, its retransmissions and the b2bua's CPU time per call (from
# /proc, over the uac's run); with PROFILE=DIR also a CPU profile per run
# (go tool pprof DIR/RATE-N.prof). The reference figures come from
# bench/sip.sh; this one finds where the b2bua spends its time.
#
#   bench/sip/quick.sh 1500 2000 2500
#   MEDIA=anchor RUNS=1 PROFILE=/tmp/prof bench/sip/quick.sh 2000
#
# Ports: uac 5172, uas 5182, b2bua 5190 (SIP), 5191 (HTTP), 5192 (pprof).
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${SECS:-20}
RUNS=${RUNS:-3}
MEDIA=${MEDIA:-passthrough}
# Anchored, each call holds two port pairs for its length plus the 2 s drain:
# 2,000 calls/s of 1 s calls need about 12,000 pairs, more than the default
# range's 5,000 (past it new calls get 503, "media port pool exhausted").
RTP_PORTS=${RTP_PORTS:-10000-59999}
PROFILE=${PROFILE:-}
[ $# -gt 0 ] || set -- 2000
for tool in sipp go python3 curl; do
	command -v "$tool" >/dev/null || { echo "quick.sh: $tool is required" >&2; exit 1; }
done
work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
go build -o "$work/b2bua" ./cmd/b2bua
[ -z "$PROFILE" ] || mkdir -p "$PROFILE"
echo "# date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  cpus: $(nproc)  load: $(cut -d' ' -f1-3 /proc/loadavg)  media: $MEDIA  ${SECS}s per run"

run() { # rate, n
	local rate=$1 n=$2 w="$work/run-$1-$2"
	mkdir -p "$w"
	echo secret | "$work/b2bua" --db "$w/p.db" --domain bench.example user add service --password-stdin >/dev/null
	"$work/b2bua" --db "$w/p.db" --domain bench.example terminal add --im service --imsi 001010000000001 --active >/dev/null
	echo '[{"imsi": "001010000000001", "addr": "127.0.0.1:5182", "state": "online"}]' >"$w/subs.json"
	(cd "$w" && exec "$work/b2bua" --db "$w/p.db" --domain bench.example serve --sip-listen 127.0.0.1:5190 \
		--http-listen 127.0.0.1:5191 --pprof 127.0.0.1:5192 --scp-subscribers "$w/subs.json" \
		--trusted 127.0.0.0/8 --log-level warn --media "$MEDIA" --rtp-ports "$RTP_PORTS" --drain-timeout 1s >"$w/b2bua.log" 2>&1) &
	local b2b=$!
	pids+=("$b2b")
	for _ in $(seq 100); do curl -sf http://127.0.0.1:5191/healthz >/dev/null && break; sleep 0.1; done
	sipp -sn uas -i 127.0.0.1 -p 5182 -nostdin -buff_size 4194304 >/dev/null 2>&1 &
	local uas=$!
	pids+=("$uas")
	sleep 0.5
	local prof=""
	if [ -n "$PROFILE" ]; then
		curl -s -o "$PROFILE/$rate-$n.prof" "http://127.0.0.1:5192/debug/pprof/profile?seconds=$((SECS - 4))" &
		prof=$!
	fi
	local t0 t1 load0 rc=0
	t0=$(awk '{print $14+$15}' "/proc/$b2b/stat")
	load0=$(cut -d' ' -f1 /proc/loadavg)
	timeout $((SECS + 15)) sipp -sn uac -i 127.0.0.1 -p 5172 -s service 127.0.0.1:5190 -r "$rate" -m $((rate * SECS)) \
		-d 1000 -nostdin -buff_size 4194304 -trace_stat -stf "$w/uac.csv" -fd 1 >/dev/null 2>&1 || rc=$?
	t1=$(awk '{print $14+$15}' "/proc/$b2b/stat")
	[ -z "$prof" ] || wait "$prof"
	kill "$uas" 2>/dev/null || true
	kill -TERM "$b2b" 2>/dev/null || true
	sleep 1.5
	kill -TERM "$b2b" 2>/dev/null || true
	wait "$b2b" 2>/dev/null || true
	python3 - "$w/uac.csv" "$rate" "$n" "$rc" "$t0" "$t1" "$(getconf CLK_TCK)" "$load0" "$(cut -d' ' -f1 /proc/loadavg)" "$SECS" <<'PY'
import sys
path, rate, n, rc, t0, t1, tck, l0, l1, secs = sys.argv[1:]
rows = [l.rstrip("\n").split(";") for l in open(path) if l.strip()]
h, last = rows[0], rows[-1]
col = lambda name: int(last[h.index(name)])
ok, failed, retr = col("SuccessfulCall(C)"), col("FailedCall(C)"), col("Retransmissions(C)")
cpu = (float(t1) - float(t0)) / float(tck)
print("rate %s run %s: %d of %d calls completed, %d failed, %d retransmissions%s; b2bua CPU %.1f s, %d us per call; load %s -> %s"
      % (rate, n, ok, int(rate) * int(secs), failed, retr, "" if rc == "0" else " (uac cut at the time limit)",
         cpu, cpu * 1e6 / max(ok + failed, 1), l0, l1))
PY
}

for rate in "$@"; do
	for n in $(seq "$RUNS"); do
		run "$rate" "$n"
	done
done
