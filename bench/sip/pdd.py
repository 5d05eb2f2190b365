#!/usr/bin/env python3
"""Post-dial delay (INVITE sent -> 180 received) at a fixed call rate,
SIPp UAC -> [SUT] -> SIPp UAS on loopback. The delay is taken per call from
a packet capture of the UAC's port (dumpcap, kernel time stamps, read back
with tshark): SIPp 3.6 times responses with CLOCK_MONOTONIC_COARSE, whose
4 ms resolution here is coarser than what is measured. Prints one JSON line
with p50/p90/p99/max in ms.

  pdd.py --sut direct   --rate 200 --duration 30          # SIPp to SIPp
  pdd.py --sut external --target 127.0.0.1:5090 ...       # e.g. b2bua
  pdd.py --sut kamailio --peers DIR ...                    # Kamailio with DIR/sip/kamailio.cfg

Ports as the shared peer benchmark uses them: UAC 127.0.0.1:5070, UAS
127.0.0.1:5080, Kamailio 127.0.0.1:5060. Every process started here is
stopped by its PID; SIPp runs are bounded by -timeout.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def start(cmd, log, cwd):
    f = open(log, "w")
    return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd)


def stop(p, grace=5.0):
    if p is None or p.poll() is not None:
        return
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(grace)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def pct(xs, q):
    if not xs:
        return None
    xs = sorted(xs)
    i = min(len(xs) - 1, max(0, int(round(q / 100.0 * len(xs) + 0.5)) - 1))
    return round(xs[i], 3)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sut", choices=["direct", "external", "kamailio"], required=True)
    ap.add_argument("--label", help="name in the output (default: --sut)")
    ap.add_argument("--target", default="127.0.0.1:5060")
    ap.add_argument("--peers", default=os.path.join(HERE, "..", "..", "..", "shared", "bench-peers"))
    ap.add_argument("--rate", type=int, default=200)
    ap.add_argument("--duration", type=float, default=30)
    ap.add_argument("--call-ms", type=int, default=1000)
    ap.add_argument("--service", default="service", help="user part of the Request-URI")
    ap.add_argument("--warmup", type=float, default=2, help="calls placed in the first N seconds are not counted")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    total = int(a.rate * a.duration)
    bound = int(a.duration * 1.5 + a.call_ms / 1000 + 30)
    res = {"label": a.label or a.sut, "sut": a.sut, "rate": a.rate, "duration_s": a.duration, "calls": total,
           "ts": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    with tempfile.TemporaryDirectory(prefix="pdd-") as wd:
        run(a, res, wd, total, bound)
    print(json.dumps(res), flush=True)


def delays(pcap, warmup):
    """INVITE -> first 180 per Call-ID, in ms, as seen on the UAC's port,
    for calls placed after the first warmup seconds."""
    out = subprocess.run(["tshark", "-r", pcap, "-Y", "sip", "-T", "fields", "-E", "separator=\t",
                          "-e", "frame.time_epoch", "-e", "sip.Call-ID", "-e", "sip.Method",
                          "-e", "sip.Status-Code", "-e", "udp.srcport"],
                         capture_output=True, text=True, check=True).stdout
    sent, got = {}, {}
    for ln in out.splitlines():
        f = ln.split("\t")
        if len(f) < 5:
            continue
        t, cid, method, status, sport = float(f[0]), f[1], f[2], f[3], f[4]
        if method == "INVITE" and sport == "5070":
            sent.setdefault(cid, t)
        elif status == "180" and sport != "5070":
            got.setdefault(cid, t)
    if not sent:
        return [], 0
    t0 = min(sent.values()) + warmup
    counted = [c for c in sent if sent[c] >= t0]
    return [1000 * (got[c] - sent[c]) for c in counted if c in got], len(counted)


def run(a, res, wd, total, bound):
    kam = uas = uac = cap = None
    try:
        target = a.target
        if a.sut == "kamailio":
            kam = start(["kamailio", "-f", os.path.join(a.peers, "sip", "kamailio.cfg"), "-DD", "-E",
                         "-m", "512", "-M", "16", "-n", "2"], os.path.join(wd, "kamailio.log"), wd)
            time.sleep(3)
            if kam.poll() is not None:
                raise SystemExit("kamailio exited at start; see " + os.path.join(wd, "kamailio.log"))
            target = "127.0.0.1:5060"
        elif a.sut == "direct":
            target = "127.0.0.1:5080"
        cap = start(["dumpcap", "-q", "-i", "lo", "-f", "udp port 5070", "-B", "64", "-w", os.path.join(wd, "uac.pcapng")],
                    os.path.join(wd, "dumpcap.log"), wd)
        time.sleep(1.0)
        common = ["-i", "127.0.0.1", "-nostdin", "-timeout", "%ds" % bound, "-buff_size", str(4 << 20)]
        uas = start(["sipp", "-sf", os.path.join(a.peers, "sip", "uas.xml"), "-p", "5080", "-m", str(total)] + common,
                    os.path.join(wd, "uas.out"), wd)
        time.sleep(0.5)
        with open(os.path.join(HERE, "uac_pdd.xml")) as f:
            scen = f.read().replace('timeout="1000" ontimeout="9"', 'timeout="%d" ontimeout="9"' % a.call_ms)
        uac_xml = os.path.join(wd, "uac_pdd.xml")
        with open(uac_xml, "w") as f:
            f.write(scen)
        uac = start(["sipp", target, "-sf", uac_xml, "-p", "5070", "-s", a.service,
                     "-r", str(a.rate), "-m", str(total), "-d", str(a.call_ms),
                     "-l", str(max(100, int(a.rate * (a.call_ms / 1000 + 5))))] + common, os.path.join(wd, "uac.out"), wd)
        try:
            rc = uac.wait(bound + 15)
        except subprocess.TimeoutExpired:
            stop(uac)
            rc = "killed"
        res["uac_rc"] = rc
        time.sleep(0.5)
        stop(cap)
        rtts, counted = delays(os.path.join(wd, "uac.pcapng"), a.warmup)
        res["measured"], res["counted_calls"] = len(rtts), counted
        for q in (50, 90, 99):
            res["p%d_ms" % q] = pct(rtts, q)
        res["max_ms"] = round(max(rtts), 3) if rtts else None
        # A 180 missing from the capture (dropped by dumpcap under load) is
        # not a failed call: SIPp judges the calls.
        res["pass"] = rc == 0
    finally:
        stop(uac)
        stop(uas)
        stop(kam)
        stop(cap)


if __name__ == "__main__":
    main()
