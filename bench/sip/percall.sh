#!/usr/bin/env bash
# Cost per call of the b2bua's call core, in figures that do not depend on
# the machine's load: instructions (valgrind --tool=cachegrind) and Go heap
# allocations (runtime.MemStats through --pprof) per call, and the
# goroutines and heap a live call holds. perf stat is not supported in this
# VM; cachegrind counts every instruction of every thread.
#
# Each measurement runs the same SIPp load (built-in uac -> b2bua -> built-in
# uas, 1 s calls unless CALL_MS says otherwise) at a low RATE for CALLS
# calls, and an idle run of the same length is subtracted (timers, GC,
# the HTTP listener), so the figure is the calls' own cost.
#
#   bench/sip/percall.sh                     # this tree
#   BIN=/tmp/old/b2bua bench/sip/percall.sh  # another build
#   STEPS="allocs" bench/sip/percall.sh      # only allocations (also: instr, live)
#   LIVE=10000 STEPS=live bench/sip/percall.sh   # 10,000 calls held up at once
#   HEAPPROF=/tmp/live.prof STEPS=live bench/sip/percall.sh   # and their heap profile
#   ALLOCPROF=/tmp/allocs.prof STEPS=allocs bench/sip/percall.sh   # where the allocations are
#
# Ports: uac 5272, uas 5282, b2bua 5290 (SIP), 5291 (HTTP), 5292 (pprof).
set -euo pipefail
cd "$(dirname "$0")/../.."
RATE=${RATE:-50}
CALLS=${CALLS:-1000}
CALL_MS=${CALL_MS:-1000}
LIVE=${LIVE:-2000}
LIVE_RATE=${LIVE_RATE:-200}
MEDIA=${MEDIA:-passthrough}
RTP_PORTS=${RTP_PORTS:-10000-59999}
STEPS=${STEPS:-allocs instr live}
EXTRA=${EXTRA:-}
for tool in sipp go python3 curl valgrind; do
	command -v "$tool" >/dev/null || { echo "percall.sh: $tool is required" >&2; exit 1; }
done
work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
if [ -z "${BIN:-}" ]; then
	go build -o "$work/b2bua" ./cmd/b2bua
	BIN=$work/b2bua
fi
echo "# date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  cpus: $(nproc)  load: $(cut -d' ' -f1-3 /proc/loadavg)  media: $MEDIA  bin: $BIN $EXTRA"
echo secret | "$BIN" --db "$work/p.db" --domain bench.example user add service --password-stdin >/dev/null
"$BIN" --db "$work/p.db" --domain bench.example terminal add --im service --imsi 001010000000001 --active >/dev/null
echo '[{"imsi": "001010000000001", "addr": "127.0.0.1:5282", "state": "online"}]' >"$work/subs.json"

b2b=""
start() { # prefix command (e.g. valgrind ...), may be empty
	# shellcheck disable=SC2086
	(cd "$work" && exec "$@" "$BIN" --db "$work/p.db" --domain bench.example serve --sip-listen 127.0.0.1:5290 \
		--http-listen 127.0.0.1:5291 --pprof 127.0.0.1:5292 --scp-subscribers "$work/subs.json" \
		--trusted 127.0.0.0/8 --log-level warn --media "$MEDIA" --rtp-ports "$RTP_PORTS" --drain-timeout 1s $EXTRA \
		>"$work/b2bua.log" 2>&1) &
	b2b=$!
	pids+=("$b2b")
	for _ in $(seq 600); do curl -sf http://127.0.0.1:5291/healthz >/dev/null && return 0; sleep 0.1; done
	echo "percall.sh: b2bua not ready" >&2
	tail "$work/b2bua.log" >&2
	exit 1
}
stop() {
	kill -TERM "$b2b" 2>/dev/null || true
	sleep 2
	kill -TERM "$b2b" 2>/dev/null || true
	wait "$b2b" 2>/dev/null || true
}
memstat() { # field of runtime.MemStats from the heap profile's text form
	curl -s "http://127.0.0.1:5292/debug/pprof/heap?debug=1" | awk -v f="# $1 = " 'index($0, f) == 1 {print substr($0, length(f) + 1)}'
}
goroutines() { curl -s "http://127.0.0.1:5292/debug/pprof/goroutine?debug=1" | awk 'NR == 1 {print $4}'; }
load() { # calls, rate, call length ms: SIPp's run; prints completed and failed calls
	local n=$1 r=$2 ms=$3
	sipp -sn uas -i 127.0.0.1 -p 5282 -nostdin -buff_size 4194304 >/dev/null 2>&1 &
	local uas=$!
	pids+=("$uas")
	sleep 0.5
	timeout $((n / r + ms / 1000 + 60)) sipp -sn uac -i 127.0.0.1 -p 5272 -s service 127.0.0.1:5290 -r "$r" -m "$n" -l "$n" \
		-d "$ms" -nostdin -buff_size 4194304 -trace_stat -stf "$work/uac.csv" -fd 1 >/dev/null 2>&1 || true
	kill "$uas" 2>/dev/null || true
	wait "$uas" 2>/dev/null || true
	python3 - "$work/uac.csv" <<'PY'
import sys
rows = [l.rstrip("\n").split(";") for l in open(sys.argv[1]) if l.strip()]
h, last = rows[0], rows[-1]
print(int(last[h.index("SuccessfulCall(C)")]), int(last[h.index("FailedCall(C)")]), int(last[h.index("Retransmissions(C)")]))
PY
}

secs=$((CALLS / RATE + CALL_MS / 1000 + 1))
for step in $STEPS; do
	case $step in
	allocs)
		start
		sleep 1
		m0=$(memstat Mallocs) b0=$(memstat TotalAlloc) c0=$(awk '{print $14+$15}' "/proc/$b2b/stat")
		read -r ok failed retr < <(load "$CALLS" "$RATE" "$CALL_MS")
		sleep 1
		m1=$(memstat Mallocs) b1=$(memstat TotalAlloc) c1=$(awk '{print $14+$15}' "/proc/$b2b/stat")
		[ -z "${ALLOCPROF:-}" ] || curl -s -o "$ALLOCPROF" "http://127.0.0.1:5292/debug/pprof/allocs"
		stop
		python3 -c "
import sys; ok,f,r,m0,m1,b0,b1,c0,c1,tck=map(float,sys.argv[1:])
print('ALLOCS %d calls (%d failed, %d retransmissions): %.0f allocations, %.0f bytes per call; CPU %.0f us per call (load-dependent)' % (ok,f,r,(m1-m0)/ok,(b1-b0)/ok,(c1-c0)/tck*1e6/ok))
" "$ok" "$failed" "$retr" "$m0" "$m1" "$b0" "$b1" "$c0" "$c1" "$(getconf CLK_TCK)"
		;;
	instr)
		# Idle run first, then the loaded one, same length: the difference
		# is what the calls cost.
		ir=()
		for n in 0 "$CALLS"; do
			# valgrind 3.19 does not know RDTSCP (Go's cputicks), and
			# callgrind trips on Go's signals (an assertion in its
			# signal tracking): cachegrind without its cache model
			# counts the same instructions.
			GODEBUG=cpu.rdtscp=off,asyncpreemptoff=1 start valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file="$work/cg.$n"
			if [ "$n" = 0 ]; then
				sleep "$secs"
				ok=0
			else
				read -r ok failed retr < <(load "$CALLS" "$RATE" "$CALL_MS")
			fi
			stop
			ir+=("$(awk '/^summary:/ {print $2}' "$work/cg.$n")")
			[ "$n" = 0 ] || { calls=$ok cfailed=$failed cretr=$retr; }
		done
		python3 -c "
import sys; idle,loaded,ok,f,r=map(float,sys.argv[1:])
print('INSTR %d calls (%d failed, %d retransmissions): %.0f instructions idle, %.0f loaded: %.0f instructions per call' % (ok, f, r, idle, loaded, (loaded-idle)/ok))
" "${ir[0]}" "${ir[1]}" "$calls" "$cfailed" "$cretr"
		;;
	live)
		# LIVE calls held up at once (each lasts past the ramp), then the
		# heap, RSS and goroutines per live call over the idle process.
		start
		sleep 1
		curl -s "http://127.0.0.1:5292/debug/pprof/heap?gc=1" >/dev/null
		h0=$(memstat HeapAlloc) s0=$(memstat Stack | cut -d" " -f1) g0=$(goroutines) r0=$(awk '/VmRSS/ {print $2}' "/proc/$b2b/status")
		# Measured 40 s after the last call was placed: by then the
		# INVITE transactions are gone (Timer L and M, 64*T1), and what
		# is left is what a long call holds.
		ms=$((LIVE * 1000 / LIVE_RATE + 60000))
		(load "$LIVE" "$LIVE_RATE" "$ms" >"$work/live.out") &
		lp=$!
		sleep $((LIVE / LIVE_RATE + 40))
		[ -z "${HEAPPROF:-}" ] || curl -s -o "$HEAPPROF" "http://127.0.0.1:5292/debug/pprof/heap"
		curl -s "http://127.0.0.1:5292/debug/pprof/heap?gc=1" >/dev/null
		h1=$(memstat HeapAlloc) s1=$(memstat Stack | cut -d" " -f1) g1=$(goroutines) r1=$(awk '/VmRSS/ {print $2}' "/proc/$b2b/status")
		up=$(curl -s http://127.0.0.1:5291/metrics | awk '/^b2bua_calls_active/ {print $2}')
		wait "$lp" || true
		stop
		python3 -c "
import sys; up,h0,h1,s0,s1,g0,g1,r0,r1=map(float,sys.argv[1:])
print('LIVE %d calls up: live heap %.0f bytes, stacks %.0f bytes, RSS %.0f bytes, %.2f goroutines per call (idle: heap %.1f MB, RSS %.1f MB, %d goroutines)' % (up,(h1-h0)/up,(s1-s0)/up,(r1-r0)*1024/up,(g1-g0)/up,h0/1e6,r0/1024,g0))
" "${up:-0}" "$h0" "$h1" "$s0" "$s1" "$g0" "$g1" "$r0" "$r1"
		cat "$work/live.out" | sed 's/^/# sipp completed failed retransmissions: /'
		;;
	*)
		echo "percall.sh: unknown step $step" >&2
		exit 2
		;;
	esac
done
