#!/usr/bin/env bash
# Robustness: the PROTOS c07-sip suite (4,527 malformed INVITEs, OUSPG)
# against the built b2bua on loopback, with its default digest
# authentication and the in-process SCP simulator. The runner probes the
# b2bua with OPTIONS as it goes and fails if it stops answering; this script
# also fails if the b2bua process died, and prints how it answered each
# group.
#
#   bench/protos.sh                                   # the whole suite, ~90 s
#   PROTOS_GROUPS=sip-content-length,sip-cseq-integer bench/protos.sh
#   PROTOS_TARGET=kamailio bench/protos.sh            # the same run against Kamailio
#
# PROTOS_TARGET=kamailio runs the suite, the same way, against Kamailio with
# the configuration its package installs (/etc/kamailio/kamailio.cfg, no
# defines, only the listen address given with -l), so that the two can be
# put side by side (bench/RESULTS.md).
#
# The suite lives outside the project (PROTOS_DIR, default
# ../shared/corpus/protos-c07-sip). Some cases name foreign hosts in Via, so
# the run happens inside a fresh network namespace with only lo up
# (unshare -rn) when the kernel allows it, so that no answer leaves the
# machine; otherwise it runs on the host's loopback and says so.
# The per-source rate limit is turned off (--sip-rate 0): the suite sends
# everything from one address, and what is measured here is the parser.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PROTOS_DIR=${PROTOS_DIR:-$ROOT/../shared/corpus/protos-c07-sip}
PROTOS_GROUPS=${PROTOS_GROUPS:-}
PROTOS_TARGET=${PROTOS_TARGET:-b2bua}
KAMAILIO_CFG=${KAMAILIO_CFG:-/etc/kamailio/kamailio.cfg}
SIP=${SIP:-127.0.0.1:5097}
HTTP=${HTTP:-127.0.0.1:5098}

if [ "${PROTOS_IN_NETNS:-}" != 1 ]; then
	tools="python3 go"
	[ "$PROTOS_TARGET" = kamailio ] && tools="python3 kamailio"
	for tool in $tools; do
		command -v "$tool" >/dev/null || { echo "protos.sh: $tool is required" >&2; exit 1; }
	done
	[ -f "$PROTOS_DIR/run-protos.py" ] || { echo "protos.sh: no PROTOS suite in $PROTOS_DIR" >&2; exit 1; }
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
	[ "$PROTOS_TARGET" = kamailio ] || go build -o "$work/b2bua" ./cmd/b2bua
	export PROTOS_WORK=$work PROTOS_DIR PROTOS_GROUPS PROTOS_TARGET KAMAILIO_CFG SIP HTTP
	if command -v unshare >/dev/null && unshare -rn true 2>/dev/null; then
		PROTOS_IN_NETNS=1 exec unshare -rn "$0"
	fi
	echo "protos.sh: unshare -rn not available: running on the host's loopback" >&2
	PROTOS_IN_NETNS=1 "$0"
	exit $?
fi

work=$PROTOS_WORK
if command -v ip >/dev/null; then
	ip link set lo up 2>/dev/null || true
fi
if [ "$PROTOS_TARGET" = kamailio ]; then
	# -DD: stay in the foreground, so that $pid is the main process;
	# -Y: its runtime directory in the scratch space, not /run.
	kamailio -f "$KAMAILIO_CFG" -DD -E -l "udp:$SIP" -Y "$work" -m 64 -M 8 \
		>"$work/target.log" 2>&1 &
	pid=$!
	cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
	trap cleanup EXIT
	args=(--target "$SIP")
	[ -n "$PROTOS_GROUPS" ] && args+=(--groups "$PROTOS_GROUPS")
	sleep 1
	echo "== PROTOS c07-sip against $(kamailio -v | head -1) ($KAMAILIO_CFG) at $SIP ($(date -u +%FT%TZ))"
	status=0
	python3 "$PROTOS_DIR/run-protos.py" "${args[@]}" || status=$?
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "protos.sh: the kamailio process died" >&2
		tail -50 "$work/target.log" >&2
		status=1
	fi
	echo "kamailio main process RSS after the run: $(awk '/VmRSS/ {print $2, $3}' /proc/$pid/status 2>/dev/null || echo '?')"
	exit $status
fi
"$work/b2bua" --db "$work/b2bua.db" --domain protos.example serve \
	--sip-listen "$SIP" --http-listen "$HTTP" --sip-rate 0 --log-level warn \
	>"$work/b2bua.log" 2>&1 &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 100); do
	if python3 - "$HTTP" <<'PY' 2>/dev/null; then break; fi
import sys, urllib.request
sys.exit(0 if urllib.request.urlopen("http://%s/healthz" % sys.argv[1], timeout=1).status == 200 else 1)
PY
	sleep 0.1
done
args=(--target "$SIP" --to-host protos.example)
[ -n "$PROTOS_GROUPS" ] && args+=(--groups "$PROTOS_GROUPS")
echo "== PROTOS c07-sip against b2bua $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?') at $SIP ($(date -u +%FT%TZ))"
status=0
python3 "$PROTOS_DIR/run-protos.py" "${args[@]}" || status=$?
if ! kill -0 "$pid" 2>/dev/null; then
	echo "protos.sh: the b2bua process died" >&2
	tail -50 "$work/b2bua.log" >&2
	status=1
fi
if grep -q '^panic:\|fatal error:' "$work/b2bua.log"; then
	echo "protos.sh: the b2bua log shows a panic" >&2
	grep -A20 '^panic:\|fatal error:' "$work/b2bua.log" >&2
	status=1
fi
echo "b2bua RSS after the run: $(awk '/VmRSS/ {print $2, $3}' /proc/$pid/status 2>/dev/null || echo '?')"
exit $status
