#!/usr/bin/env python3
"""mediabench.py (the peer harness, unchanged) with the CPU accounting
bench/rtp.sh needs added to each run's JSON line:

  stat_cpu        whole-machine CPU from /proc/stat over the counted phase,
                  in % of one core, split into user, nice, system, irq and
                  softirq (steal, idle and iowait excluded), and their sum
                  "busy": this is where in-kernel forwarding shows, since it
                  runs in softirq context, mostly inside the sender's
                  system calls;
  ksoftirqd_cpu   CPU of the ksoftirqd threads over the counted phase
                  (softirq work the kernel deferred), % of one core;
  own_cpu         generator + relay + ksoftirqd, % of one core: the CPU of
                  everything taking part in the run, whichever context the
                  kernel charged the packet work to;
  target          as given with --label (e.g. "ours-kernel"), instead of
                  mediabench's "ng";
  direct          with --direct: no relay at all, the generator sends each
                  stream straight to the other endpoint socket (the
                  baseline a relay's cost is measured against).

Run from the copied peer harness directory:
  python3 statbench.py --label ours --target ng ... (mediabench's options)
"""
import os
import sys
import threading
import time

HERE = os.getcwd()
sys.path.insert(0, HERE)
import benchutil as bu  # noqa: E402
import mediabench as mb  # noqa: E402

FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def proc_stat():
    with open("/proc/stat") as f:
        vals = [int(x) for x in f.readline().split()[1:9]]
    return dict(zip(FIELDS, vals)), time.monotonic()


def ksoftirqd_pids():
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/comm" % name) as f:
                    if f.read().startswith("ksoftirqd/"):
                        out.append(name)
            except OSError:
                pass
    return out


class Window:
    """/proc/stat sampled at the start and end of rtpload's counted phase
    (it starts -warmup after rtpload and lasts -duration; 0.3 s are left
    off each end so the window lies inside it)."""

    def __init__(self, warmup, duration):
        self.warmup, self.duration = warmup, duration
        self.result = None
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        time.sleep(self.warmup + 0.3)
        s0, t0 = proc_stat()
        time.sleep(max(self.duration - 0.6, 0.5))
        s1, t1 = proc_stat()
        hz = os.sysconf("SC_CLK_TCK")
        r = {k: round(100.0 * (s1[k] - s0[k]) / hz / (t1 - t0), 1) for k in FIELDS}
        r["busy"] = round(sum(r[k] for k in ("user", "nice", "system", "irq", "softirq")), 1)
        self.result = r


_state = {"window": None}
_start_proc = bu.start_proc


def start_proc(cmd, logpath, env=None):
    if any(os.path.basename(c) == "rtpload" for c in cmd):
        a = _state["args"]
        if a.direct:
            cmd = list(cmd)
            mp = cmd[cmd.index("-map") + 1]
            direct_map(mp, a.socks)
        ks = ",".join(ksoftirqd_pids())
        cmd = list(cmd)
        if "-watch-pids" in cmd:
            i = cmd.index("-watch-pids") + 1
            cmd[i] = cmd[i] + "," + ks
        else:
            cmd += ["-watch-pids", ks]
        _state["ksoftirqd"] = ks.split(",")
        _state["window"] = Window(a.warmup, a.duration)
    return _start_proc(cmd, logpath, env)


def direct_map(path, socks):
    """Point every stream at the other endpoint socket, not a relay: stream
    2c (socket A) goes to socket B's port and 2c+1 back (mediabench's
    udprelay target wrote one stream per relay port; its lines are
    rewritten here)."""
    lines = []
    with open(path) as f:
        for ln in f:
            if ln.strip():
                sid, sock, _ = ln.split()
                other = (int(sock) + 1) % socks
                lines.append("%s %s %d" % (sid, sock, mb.EP_BASE + 2 * other))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


_run_one = mb.run_one


def run_one(a, n, wd):
    _state["window"] = None
    res = _run_one(a, n, wd)
    w = _state["window"]
    if w is not None:
        w.t.join(timeout=5)
        res["stat_cpu"] = w.result
    watched = res.get("watched_cpu_pct_of_one_core") or {}
    ks = round(sum(watched.get(p, 0.0) for p in _state.get("ksoftirqd", [])), 1)
    res["ksoftirqd_cpu"] = ks
    res["own_cpu"] = round((res.get("generator_cpu_pct_of_one_core") or 0) +
                           (res.get("target_cpu_pct_of_one_core") or 0) + ks, 1)
    res["target"] = a.label
    res["load_avg"] = os.getloadavg()
    return res


def main():
    label, direct = None, False
    argv = []
    it = iter(sys.argv[1:])
    for x in it:
        if x == "--label":
            label = next(it)
        elif x == "--direct":
            direct = True
        else:
            argv.append(x)
    if direct:
        argv = ["--target", "udprelay"] + [x for x in argv]
    sys.argv = [sys.argv[0]] + argv
    # mediabench parses its own arguments; keep ours beside them
    orig_parse = mb.argparse.ArgumentParser.parse_args

    def parse_args(self, *args, **kw):
        ns = orig_parse(self, *args, **kw)
        ns.label = label or ns.target
        ns.direct = direct
        _state["args"] = ns
        return ns
    mb.argparse.ArgumentParser.parse_args = parse_args
    mb.run_one = run_one
    bu.start_proc = start_proc
    if direct:
        # the udprelay target starts a relay; the direct baseline must not
        mb_start = bu.start_proc

        def no_relay(cmd, logpath, env=None):
            if any(os.path.basename(c) == "udprelay" for c in cmd):
                return _Idle()
            return mb_start(cmd, logpath, env)
        bu.start_proc = no_relay
    mb.main()


class _Idle:
    """Stands in for the relay process the direct baseline does not run."""
    pid = None
    returncode = 0


if __name__ == "__main__":
    main()
