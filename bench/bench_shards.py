"""N shards x M meters polled once a second each: p99 latency, total RSS and CPU.

Writes a fleet file of ``--ports`` ports x ``--units`` unit ids (default 50 x 200 =
10,000 meters, default profile), starts it as ``--shards`` N processes
(``minimeter run --fleet FILE --shard I/N --state-dir TMP/shard-I``, real time, every
meter stepping once a second, checkpoints every 10 s) or, with ``--workers``, as one
``minimeter run --workers N`` supervisor, and polls every meter once a second for
``--duration`` s with ``--pollers`` poller processes of ``bench_fleet.py`` (each a
share of the ports, 4 connections per port, FC03 40 registers, open-loop schedule;
latency send-to-answer as the poller sees it, its own scheduling included).
Total RSS is the sum of every twin process's peak (``VmHWM``; the supervisor too);
CPU is their utime+stime over the polled window, in cores.

    .venv/bin/python bench/bench_shards.py [--shards 4] [--ports 50] [--units 200]
        [--duration 30] [--workers]

Exits 1 if p99 > ``--max-p99-ms`` (20), total RSS > ``--max-rss-mb`` (1024), or on
any error or missed request.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_fleet import free_ports

REPO = Path(__file__).resolve().parents[1]
FLEET_BENCH = Path(__file__).with_name("bench_fleet.py")


def proc_tree(pids: list[int]) -> list[int]:
    out = []
    for pid in pids:
        out.append(pid)
        children = Path(f"/proc/{pid}/task/{pid}/children")
        if children.exists():
            out += proc_tree([int(c) for c in children.read_text().split()])
    return out


def usage(pids: list[int]) -> tuple[float, float]:
    """(CPU seconds, peak RSS MB) summed over ``pids``."""
    cpu_s, rss_kb = 0.0, 0
    for pid in pids:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu_s += (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                rss_kb += int(line.split()[1])
    return cpu_s, rss_kb / 1024


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--ports", type=int, default=50)
    ap.add_argument("--units", type=int, default=200, help="meters per port (<= 247)")
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--pollers", type=int, default=2, help="poller processes (2)")
    ap.add_argument("--workers", action="store_true", help="one --workers N supervisor")
    ap.add_argument("--max-p99-ms", type=float, default=20.0)
    ap.add_argument("--max-rss-mb", type=float, default=1024.0)
    args = ap.parse_args()

    ports = free_ports(args.ports)
    meters = args.ports * args.units
    with tempfile.TemporaryDirectory(prefix="mm-shards-") as tmp:
        fleet = Path(tmp) / "fleet.yaml"
        lines = ["fleet: 1", "meters:"]
        lines += [f"  - {{unit: {u}, port: {p}}}" for p in ports for u in range(1, args.units + 1)]
        fleet.write_text("\n".join(lines) + "\n")
        base = [sys.executable, "-m", "twin", "run", "--fleet", str(fleet)]
        if args.workers:
            cmds = [[*base, "--workers", str(args.shards), "--state-dir", f"{tmp}/state"]]
        else:
            cmds = [
                [*base, "--shard", f"{i}/{args.shards}", "--state-dir", f"{tmp}/shard-{i}"]
                for i in range(args.shards)
            ]
        t_start = time.monotonic()
        twins = [
            subprocess.Popen(
                c, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
            )
            for c in cmds
        ]
        try:
            for twin in twins:
                assert twin.stdout is not None
                first = twin.stdout.readline()
                if "serving" not in first:
                    raise SystemExit(f"twin did not start: {first!r}")
            startup_s = time.monotonic() - t_start
            pollers = []
            for k in range(args.pollers):
                share = ports[k :: args.pollers]
                cmd = [sys.executable, str(FLEET_BENCH), "--poller", ",".join(map(str, share))]
                cmd += [str(args.units), "4", str(args.warmup), str(args.duration)]
                pollers.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True))
            time.sleep(args.warmup)
            pids = proc_tree([t.pid for t in twins])
            cpu0, _ = usage(pids)
            wall0 = time.monotonic()
            outs = [p.communicate(timeout=args.duration + 120)[0] for p in pollers]
            cpu1, rss_mb = usage(pids)
            cores = (cpu1 - cpu0) / (time.monotonic() - wall0)
        finally:
            for twin in twins:
                twin.send_signal(signal.SIGTERM)
            for twin in twins:
                try:
                    twin.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    twin.kill()
    lat_ms: list[float] = []
    errors = late = 0
    for text in outs:
        out = json.loads(text)
        lat_ms += [x * 1000 for x in out["latency_s"]]
        errors += len(out["errors"])
        late += len(out["late_s"])
    p50, p99, p999 = (percentile(lat_ms, q) for q in (0.5, 0.99, 0.999))
    how = f"--workers {args.shards}" if args.workers else f"{args.shards} x --shard I/N"
    print(
        f"{meters} meters ({args.ports} ports x {args.units} units) as {how}, each polled "
        f"once a second for {args.duration:.0f} s by {args.pollers} pollers; startup "
        f"{startup_s:.1f} s; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
    )
    print(
        f"requests {len(lat_ms)} ({len(lat_ms) / args.duration:.0f}/s) errors {errors} late {late}"
    )
    print(
        f"latency ms: p50 {p50:.2f}  p99 {p99:.2f}  p99.9 {p999:.2f}  max {max(lat_ms):.2f}  "
        f"(target p99 <= {args.max_p99_ms:g})"
    )
    print(
        f"twin processes {len(pids)}: total RSS peak {rss_mb:.0f} MB (target <= "
        f"{args.max_rss_mb:.0f}); CPU {cores:.2f} cores ({cores / len(twins) * 100:.0f} % per "
        f"{'supervisor' if args.workers else 'shard'} process group)"
    )
    ok = p99 <= args.max_p99_ms and rss_mb <= args.max_rss_mb and not errors
    return 0 if ok and len(lat_ms) >= meters * args.duration * 0.98 else 1


if __name__ == "__main__":
    sys.exit(main())
