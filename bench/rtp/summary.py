#!/usr/bin/env python3
"""Summary of a bench/rtp.sh run (its JSON lines): per N and target, the
medians and spreads over the valid runs, and the ratios against rtpengine.
See bench/rtp.sh for what each figure means.

  python3 bench/rtp/summary.py bench/rtp/results/<run>.jsonl
"""
import json
import statistics
import sys


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def spread(xs, fmt):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    return (fmt + " [" + fmt + "–" + fmt + "]") % (med(xs), min(xs), max(xs))


def per10k(cpu, r):
    return cpu * 10000.0 / r["received_pps"] if r.get("received_pps") else None


def main(path):
    rows = [json.loads(ln) for ln in open(path) if ln.strip()]
    runs = {}
    for r in rows:
        runs.setdefault((r["streams"], r["target"]), []).append(r)
    valid = {k: [r for r in rs if "error" not in r and r.get("generator_kept_pace")] for k, rs in runs.items()}
    base = {}  # N -> (own CPU, /proc/stat busy) of the direct baseline
    for (n, t), rs in valid.items():
        if t == "direct" and rs:
            base[n] = (med([r["own_cpu"] for r in rs]),
                       med([r["stat_cpu"]["busy"] for r in rs if r.get("stat_cpu")]))
    print("| target | N | valid runs | loss (median, max) | relay CPU per 10k pps | all CPU per 10k pps | "
          "/proc/stat CPU per 10k pps | p50 ms | p99 ms | load (1 min) | foreign CPU % |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    figs = {}
    for (n, t), rs in sorted(runs.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        ok = valid[(n, t)]
        bad = [r for r in rs if "error" in r]
        head = "| %s | %d | %d/%d |" % (t, n, len(ok), len(rs))
        if len(ok) < min(3, len(rs)):
            why = "error: " + bad[-1]["error"][:60] if bad and not ok else "generator behind (sent %s of %s pps)" % (
                ", ".join(str(int(r.get("sent_pps", 0))) for r in rs if "error" not in r), rs[0].get("offered_pps", "?"))
            print(head + " INVALID: %s |||||||" % why)
            continue
        loss = [1 - r["delivered_fraction"] for r in ok]
        relay = [per10k(r["target_cpu_pct_of_one_core"], r) for r in ok if r.get("target_cpu_pct_of_one_core") is not None]
        allc = stat = []
        if n in base and t != "direct":
            allc = [per10k(r["own_cpu"] - base[n][0], r) for r in ok]
            if base[n][1] is not None:
                stat = [per10k(r["stat_cpu"]["busy"] - base[n][1], r) for r in ok if r.get("stat_cpu")]
        # a run that delivered nothing has no latency (rtpload says -1)
        p50 = [r["latency_us"]["p50"] / 1000 for r in ok if r["latency_us"]["p50"] >= 0]
        p99 = [r["latency_us"]["p99"] / 1000 for r in ok if r["latency_us"]["p99"] >= 0]
        load = [r["load_avg"][0] for r in ok if r.get("load_avg")]
        foreign = [r.get("foreign_cpu_pct_of_one_core") or 0 for r in ok]
        figs[(n, t)] = {"relay": med(relay), "all": med(allc), "p99": med(p99), "loss": max(loss)}
        print(head + " %.5f, %.5f | %s | %s | %s | %s | %s | %.2f | %.0f |" % (
            med(loss), max(loss), spread(relay, "%.1f"), spread(allc, "%.1f"), spread(stat, "%.1f"),
            spread(p50, "%.2f"), spread(p99, "%.2f"), med(load) or 0, med(foreign)))
    print()
    print("Against rtpengine at the same N (medians of valid runs):")
    print()
    print("| N | target | relay CPU ratio | all CPU ratio | p99 ratio | zero loss |")
    print("|---|---|---|---|---|---|")
    for (n, t), f in sorted(figs.items()):
        e = figs.get((n, "rtpengine"))
        if t in ("rtpengine", "direct") or not e:
            continue
        ratio = lambda a, b: "%.2f" % (a / b) if a is not None and b else "-"
        loss = "yes" if f["loss"] == 0 else "no (max %.5f)" % f["loss"]
        if e["loss"] > 0:
            loss += "; rtpengine lost up to %.5f" % e["loss"]
        print("| %d | %s | %s | %s | %s | %s |" % (n, t, ratio(f["relay"], e["relay"]), ratio(f["all"], e["all"]),
                                                 ratio(f["p99"], e["p99"]), loss))


if __name__ == "__main__":
    main(sys.argv[1])
