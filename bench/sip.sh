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
#   bench/sip.sh                          # everything, ~30 min
#   DURATION=30 MAX_RUNS=4 bench/sip.sh   # quicker
#   STEPS=b2bua bench/sip.sh              # only the b2bua (also: kamailio, pdd)
#   MEDIA=anchor bench/sip.sh             # media through the RTP proxy
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
STEPS=${STEPS:-b2bua kamailio pdd}
# SIPp's uac sends SDP but no RTP: passthrough measures signalling alone.
# Anchored (MEDIA=anchor), a call holds two port pairs for its length plus
# the 2 s drain, so the range must hold about 6 pairs per call/s of 1 s calls.
MEDIA=${MEDIA:-passthrough}
RTP_PORTS=${RTP_PORTS:-10000-59999}
OUT=${OUT:-$ROOT/bench/sip/results.jsonl}
SIP=127.0.0.1:5090
HTTP=127.0.0.1:5091

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

start_b2bua() {
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
		--media "$MEDIA" --rtp-ports "$RTP_PORTS" --drain-timeout 10s \
		>"$work/b2bua.log" 2>&1 &
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
		--quiet-wait 20 --noise-retries 1 --out "$OUT" "$@" | tee "$work/search-$label.jsonl" >/dev/null
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

for step in $STEPS; do
	case $step in
	b2bua)
		start_b2bua
		search b2bua --sut external --target "$SIP" --sut-pid "$b2bua_pid" --lo "$B2B_LO" --hi "$B2B_HI"
		stop_b2bua
		;;
	kamailio)
		search kamailio --sut kamailio --lo "$KAM_LO" --hi "$KAM_HI"
		;;
	pdd)
		pdd direct --sut direct
		start_b2bua
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
