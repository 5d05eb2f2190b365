#!/usr/bin/env bash
# SIP signalling benchmark: SIPp UAC -> b2bua (in-process SCP simulator) ->
# SIPp UAS on loopback, beside Kamailio (stateful proxy) in the same run.
#
# 1. Highest call rate sustained for DURATION seconds with zero failed calls,
#    no retransmissions and >= 97% of the target rate (the shared peer
#    harness, ../shared/bench-peers/sipbench.py "search"), for the b2bua and
#    for Kamailio.
# 2. Post-dial delay (INVITE -> 180, per call, microsecond clock) at a fixed
#    PDD_RATE for SIPp alone, through the b2bua and through Kamailio; the
#    delay a node adds is its figure minus SIPp alone (bench/sip/pdd.py).
#
# Calls: INVITE / 100 / 180 / 200 / ACK, 1 s, BYE / 200, UDP. The caller is
# on the trusted list, as behind a Kamailio: no digest challenge.
#
# 3. The same search through the b2bua with 1, 2 and 4 UDP readers
#    (--sip-udp-readers): how it scales with the sockets it reads.
# 4. LIVE concurrent long calls (LIVE_RATE calls/s, each LIVE_MS long),
#    measured once the INVITE transactions are over: memory per call of
#    the b2bua (proportional set size, Go live heap and stacks, goroutines)
#    beside Kamailio with its dialog module (the proportional set size of
#    all its processes, shared memory counted once).
# 5. Overload: OVER_RATE (past capacity) for DURATION, then CLEAN_RATE at
#    once, with the overload guard and without it: what is refused (503),
#    what is retransmitted, and whether the next clean run is clean.
#
#   bench/sip.sh                          # everything, ~60 min
#   DURATION=30 MAX_RUNS=4 bench/sip.sh   # quicker
#   STEPS=b2bua bench/sip.sh              # only the b2bua (also: b2bua-anchor, kamailio, pdd, readers, overload, live)
#   MEDIA=anchor bench/sip.sh             # media through the RTP proxy in every b2bua step
#
# Needs sipp (sip-tester) and kamailio (apt-get install -y kamailio).
# Ports: UAC 5070, UAS 5080, Kamailio 5060, b2bua 5090 (SIP) and 5091 (HTTP).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PEERS=${BENCH_PEERS:-$ROOT/../shared/bench-peers}
DURATION=${DURATION:-60}
MAX_RUNS=${MAX_RUNS:-6}
B2B_LO=${B2B_LO:-250}
B2B_HI=${B2B_HI:-4000}
KAM_LO=${KAM_LO:-500}
KAM_HI=${KAM_HI:-4000}
PDD_RATE=${PDD_RATE:-200}
PDD_SECS=${PDD_SECS:-30}
STEPS=${STEPS:-b2bua kamailio b2bua-anchor readers pdd overload live}
READERS=${READERS:-0} # --sip-udp-readers of the b2bua steps; 0: one per CPU
# The searches measure capacity without the overload guard, as Kamailio
# has none: with it, a run past capacity ends in 503s rather than in
# retransmissions, and fails either way. The overload step measures it.
SEARCH_FLAGS=${SEARCH_FLAGS:---overload-delay 0}
OVER_RATE=${OVER_RATE:-1000}   # overload step: a rate past capacity
CLEAN_RATE=${CLEAN_RATE:-100}  # and one under it, run right after
READER_CURVE=${READER_CURVE:-1 2 4}
LIVE=${LIVE:-10000}
LIVE_RATE=${LIVE_RATE:-200}
LIVE_MS=${LIVE_MS:-100000}
# Anchored, a call holds four sockets: 4,000 calls are 16,000 descriptors
# of the 20,000 the hard limit allows here.
LIVE_ANCHOR=${LIVE_ANCHOR:-4000}
# SIPp's uac sends SDP but no RTP: passthrough measures signalling alone.
# Anchored (MEDIA=anchor), a call holds two port pairs for its length plus
# the 2 s drain, so the range must hold about 6 pairs per call/s of 1 s calls.
MEDIA=${MEDIA:-passthrough}
RTP_PORTS=${RTP_PORTS:-10000-59999}
OUT=${OUT:-$ROOT/bench/sip/results.jsonl}
SIP=127.0.0.1:5090
HTTP=127.0.0.1:5091
PPROF=127.0.0.1:5092

for tool in sipp python3 go; do
	command -v "$tool" >/dev/null || { echo "sip.sh: $tool is required" >&2; exit 1; }
done
[ -f "$PEERS/sipbench.py" ] || { echo "sip.sh: no peer harness at $PEERS (set BENCH_PEERS)" >&2; exit 1; }

work=$(mktemp -d)
b2bua_pid=""
cleanup() {
	if [ -n "$b2bua_pid" ] && kill -0 "$b2bua_pid" 2>/dev/null; then
		kill -TERM "$b2bua_pid"
		wait "$b2bua_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

echo "# date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  host: $(uname -srm)  cpus: $(nproc)  load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# $(go version)  $(sipp -v 2>&1 | grep -o 'SIPp v[^ -]*' | head -1)  $(kamailio -v 2>/dev/null | head -1 || echo 'kamailio: not installed')"
echo "# results appended to $OUT"

start_b2bua() { # [media [readers [flags...]]]
	local media=${1:-$MEDIA} readers=${2:-$READERS}
	shift $(($# < 2 ? $# : 2))
	local db="$work/b2bua.db"
	if [ ! -f "$db" ]; then
		go build -o "$work/b2bua" ./cmd/b2bua
		# sipbench's UAC calls sip:service@...: the IM user "service" has
		# one legacy terminal that the simulator finds online at the UAS.
		echo secret | "$work/b2bua" --db "$db" --domain bench.example user add service --password-stdin >/dev/null
		"$work/b2bua" --db "$db" --domain bench.example terminal add --im service --imsi 001010000000001 --active >/dev/null
	fi
	echo '[{"imsi": "001010000000001", "addr": "127.0.0.1:5080", "state": "online"}]' >"$work/subscribers.json"
	"$work/b2bua" --db "$db" --domain bench.example serve --sip-listen "$SIP" --http-listen "$HTTP" \
		--scp-subscribers "$work/subscribers.json" --trusted 127.0.0.1/32 --log-level warn \
		--media "$media" --rtp-ports "$RTP_PORTS" --drain-timeout 10s --sip-udp-readers "$readers" \
		--pprof "$PPROF" "$@" >"$work/b2bua.log" 2>&1 &
	b2bua_pid=$!
	for _ in $(seq 100); do
		if python3 -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://$HTTP/healthz', timeout=1).status == 200 else 1)" 2>/dev/null; then
			return 0
		fi
		kill -0 "$b2bua_pid" 2>/dev/null || { cat "$work/b2bua.log" >&2; exit 1; }
		sleep 0.1
	done
	echo "sip.sh: b2bua not ready" >&2
	exit 1
}

stop_b2bua() {
	# Calls whose BYE was lost in an overloaded run stay up (passthrough
	# has no media supervision and SIP has no session timer here); say how
	# many, and let --drain-timeout end them.
	python3 -c "import urllib.request; print('sip.sh: calls still up at stop:', [l for l in urllib.request.urlopen('http://$HTTP/metrics', timeout=2).read().decode().splitlines() if l.startswith('b2bua_calls_active')])" >&2 2>/dev/null || true
	if ! kill -TERM "$b2bua_pid" 2>/dev/null; then
		echo "sip.sh: b2bua had exited during the run; last lines of its log:" >&2
		tail -20 "$work/b2bua.log" >&2
	fi
	wait "$b2bua_pid" 2>/dev/null || true
	b2bua_pid=""
}

search() { # label, sipbench args...
	local label=$1
	shift
	echo "## search: $label"
	python3 "$PEERS/sipbench.py" search --duration "$DURATION" --max-runs "$MAX_RUNS" \
		--quiet-wait "${QUIET_WAIT:-20}" --noise-retries 1 --out "$OUT" "$@" | tee "$work/search-$label.jsonl" >/dev/null
	python3 - "$work/search-$label.jsonl" "$label" <<'PY'
import json, sys
runs = [r for r in (json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")) if "rate_target" in r]
ok = [r for r in runs if r.get("pass")]
best = max(ok, key=lambda r: r["rate_target"]) if ok else None
fail = min((r["rate_target"] for r in runs if not r.get("pass")), default=None)
if best:
    u = best["uac"]
    print("RESULT %s: max sustained %d calls/s (achieved %s) for %ss, zero failures; lowest failing rate %s; "
          "INVITE->200 avg %.2f ms, p99 bucket %s; SUT CPU %s%% of one core; foreign load %s%% of a core"
          % (sys.argv[2], best["rate_target"], best["rate_achieved"], best["duration_s"], fail,
             u["invite_to_200_avg_ms"] or 0, u["invite_to_200_p99_bucket"],
             (best.get("sut_cpu") or {}).get("cpu_pct_of_one_core", "-"), best.get("foreign_cpu_pct_of_one_core")))
else:
    print("RESULT %s: no rate passed (lowest tried %s)" % (sys.argv[2], fail))
PY
}

pdd() { # label, pdd.py args...
	local label=$1
	shift
	python3 bench/sip/pdd.py --label "$label" --rate "$PDD_RATE" --duration "$PDD_SECS" --peers "$PEERS" "$@" |
		tee -a "$OUT" | python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
print("PDD %-8s at %d calls/s: p50 %s ms  p90 %s ms  p99 %s ms  max %s ms  (%d/%d calls after warm-up)%s" % (
    r["label"], r["rate"], r["p50_ms"], r["p90_ms"], r["p99_ms"], r["max_ms"], r["measured"], r["counted_calls"],
    "" if r["pass"] else "  FAILED (uac rc %s)" % r["uac_rc"]))'
}

pss() { # proportional set size in kB of the processes given
	local t=0 p v
	for p in "$@"; do
		v=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
		t=$((t + ${v:-0}))
	done
	echo "$t"
}

tree() { # a process and its descendants
	local p
	echo "$1"
	for p in $(cat "/proc/$1/task/"*/children 2>/dev/null); do tree "$p"; done
}

live() { # label, calls, sut pid finder (function), sipbench args...
	local label=$1 calls=$2 finder=$3
	shift 3
	local secs=$((calls / LIVE_RATE))
	local pids before="" after
	# The b2bua runs already: its baseline is taken before any call.
	pids=$($finder 0)
	[ -z "$pids" ] || before=$(pss $pids)
	python3 "$PEERS/sipbench.py" run --rate "$LIVE_RATE" --duration "$secs" --call-ms "$LIVE_MS" \
		--quiet-wait 5 --noise-retries 0 --out "$OUT" "$@" >"$work/live-$label.jsonl" 2>"$work/live-$label.err" &
	local bench=$!
	if [ -z "$before" ]; then
		# Kamailio is started by sipbench 2 s before its UAC: the
		# baseline is taken as soon as it is up.
		for _ in $(seq 300); do
			pids=$($finder "$bench")
			[ -z "$pids" ] || break
			sleep 0.1
		done
		sleep 0.5
		pids=$($finder "$bench")
		before=$(pss $pids)
	fi
	# Once the last INVITE transaction is over (64*T1 after the last
	# call was placed), what is left is what the calls hold.
	sleep $((secs + 45))
	pids=$($finder "$bench")
	after=$(pss $pids)
	echo "LIVE $label: $calls calls placed at $LIVE_RATE/s, ${LIVE_MS} ms each: PSS ${before} kB before, ${after} kB with the calls up: $(((after - before) * 1024 / calls)) bytes per call"
	[ -z "${LIVE_EXTRA:-}" ] || $LIVE_EXTRA "$calls"
	wait "$bench" || true
	tail -1 "$work/live-$label.err" >&2 || true
}

b2bua_pids() { tree "$b2bua_pid"; }
kamailio_pids() { # the kamailio sipbench (pid $1) started, and its workers
	local k
	[ "$1" != 0 ] || return 0
	k=$(ps -o pid= --ppid "$1" | while read -r p; do
		if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = kamailio ]; then echo "$p"; fi
	done | head -1) || true
	if [ -n "$k" ]; then tree "$k"; fi
}

b2bua_go_memory() { # live heap, stacks, goroutines per call from --pprof
	python3 - "http://$PPROF" "$1" "$b2bua_base" <<'PY'
import re, sys, urllib.request
base, n, idle = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
urllib.request.urlopen(base + "/debug/pprof/heap?gc=1", timeout=30).read()
t = urllib.request.urlopen(base + "/debug/pprof/heap?debug=1", timeout=30).read().decode()
heap = int(re.search(r"# HeapAlloc = (\d+)", t).group(1))
stack = int(re.search(r"# Stack = (\d+)", t).group(1))
g = int(urllib.request.urlopen(base + "/debug/pprof/goroutine?debug=1", timeout=30).read().decode().split()[3])
m = urllib.request.urlopen("http://" + base.split("//")[1].rsplit(":", 1)[0] + ":5091/metrics", timeout=30).read().decode()
up = int(re.search(r"^b2bua_calls_active (\d+)", m, re.M).group(1))
h0, s0, g0 = (int(x) for x in idle)
print("LIVE b2bua Go: %d calls up: live heap %d bytes, stacks %d bytes, %.2f goroutines per call" % (
    up, (heap - h0) / max(up, 1), (stack - s0) / max(up, 1), (g - g0) / max(up, 1)))
PY
}

b2bua_go_idle() {
	python3 - "http://$PPROF" <<'PY'
import re, sys, urllib.request
base = sys.argv[1]
urllib.request.urlopen(base + "/debug/pprof/heap?gc=1", timeout=30).read()
t = urllib.request.urlopen(base + "/debug/pprof/heap?debug=1", timeout=30).read().decode()
g = urllib.request.urlopen(base + "/debug/pprof/goroutine?debug=1", timeout=30).read().decode().split()[3]
print(re.search(r"# HeapAlloc = (\d+)", t).group(1), re.search(r"# Stack = (\d+)", t).group(1), g)
PY
}

for step in $STEPS; do
	case $step in
	b2bua)
		start_b2bua "$MEDIA" "$READERS" $SEARCH_FLAGS
		search b2bua --sut external --target "$SIP" --sut-pid "$b2bua_pid" --lo "$B2B_LO" --hi "$B2B_HI"
		stop_b2bua
		;;
	b2bua-anchor)
		start_b2bua anchor "$READERS" $SEARCH_FLAGS
		search b2bua-anchor --sut external --target "$SIP" --sut-pid "$b2bua_pid" --lo "$B2B_LO" --hi "$B2B_HI"
		stop_b2bua
		;;
	readers)
		for n in $READER_CURVE; do
			start_b2bua "$MEDIA" "$n" $SEARCH_FLAGS
			search "b2bua-readers-$n" --sut external --target "$SIP" --sut-pid "$b2bua_pid" --lo "$B2B_LO" --hi "$B2B_HI"
			stop_b2bua
		done
		;;
	overload)
		# OVER_RATE for DURATION, then CLEAN_RATE at once: with the
		# guard (the default flags) and without it.
		for guard in on off; do
			flags=()
			[ "$guard" = on ] || flags=(--overload-delay 0)
			start_b2bua "$MEDIA" "$READERS" "${flags[@]}"
			for r in "$OVER_RATE" "$CLEAN_RATE"; do
				python3 "$PEERS/sipbench.py" run --sut external --target "$SIP" --sut-pid "$b2bua_pid" --rate "$r" \
					--duration "$DURATION" --quiet-wait 5 --noise-retries 0 --out "$OUT" 2>&1 >/dev/null |
					grep -v '^# waiting\|^# machine\|^# {' | sed "s/^/OVERLOAD guard $guard: /" || true # a failed run is the point
				python3 -c "import urllib.request,re; m=urllib.request.urlopen('http://$HTTP/metrics', timeout=30).read().decode(); print('OVERLOAD guard $guard: after %s calls/s:' % $r, ' '.join(l for l in m.splitlines() if re.match(r'^b2bua_(calls_active|sip_overload_refused_total) ', l)))" || true
			done
			stop_b2bua
		done
		;;
	live)
		for media in passthrough anchor; do
			n=$LIVE
			[ "$media" = passthrough ] || n=$LIVE_ANCHOR
			start_b2bua "$media"
			b2bua_base=$(b2bua_go_idle)
			LIVE_EXTRA=b2bua_go_memory live "b2bua-$media" "$n" b2bua_pids --sut external --target "$SIP"
			stop_b2bua
		done
		live kamailio-dialog "$LIVE" kamailio_pids --sut kamailio --dialog
		;;
	live-kamailio)
		live kamailio-dialog "$LIVE" kamailio_pids --sut kamailio --dialog
		;;
	kamailio)
		search kamailio --sut kamailio --lo "$KAM_LO" --hi "$KAM_HI"
		;;
	pdd)
		pdd direct --sut direct
		start_b2bua "$MEDIA" "$READERS" $SEARCH_FLAGS
		pdd b2bua --sut external --target "$SIP"
		stop_b2bua
		pdd kamailio --sut kamailio
		;;
	*)
		echo "sip.sh: unknown step $step" >&2
		exit 2
		;;
	esac
done
