"""Monte-Carlo scaling: `simulate --seeds 1..200` on 1 worker and on K workers.

Target (issue 16): on 2 workers >= 1.7x the speed of 1 worker. Each configuration
runs as a child process (`minimeter simulate PROFILE --duration D --seeds 1..200
--jobs K`, table to stdout), rounds interleaved so both see the same machine load;
the median wall time per configuration is compared. `--jobs 1` runs every meter in
the CLI's own process (no pool, no pickling): the strictest baseline. The tables of
both configurations must be byte-identical. Exit status 1 when the target is missed.

The default duration is 14 days (2 days until 2026-12-01): the runs got ~7x faster
(lockstep groups sharing sampled blocks, freed memory kept), so at 2 days the
command's fixed start-up (~0.4 s of interpreter and imports, paid once whatever the
number of workers) was a third of the 1-worker time and bounded the end-to-end
speed-up near 1.5x however well the runs scale; at 14 days the runs are ~95 % of it.

    .venv/bin/python bench/bench_simulate_seeds.py [--profile residential-year]
        [--duration 14d] [--seeds 1..200] [--jobs 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import resource
import statistics
import subprocess
import sys
import time

TARGET = 1.7


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def run(profile: str, duration: str, seeds: str, jobs: int) -> tuple[float, float, float, str]:
    """(wall s, runs alone s, CPU s of the command and its workers, the table)."""
    cmd = [sys.executable, "-m", "twin", "simulate", profile, "--duration", duration]
    cmd += ["--seeds", seeds, "--jobs", str(jobs)]
    start, cpu = time.perf_counter(), children_cpu_s()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    wall_s, cpu = time.perf_counter() - start, children_cpu_s() - cpu
    inner = re.search(r"in ([\d.]+) s on", proc.stderr)
    return wall_s, float(inner[1]) if inner else float("nan"), cpu, proc.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="residential-year")
    parser.add_argument("--duration", default="14d")
    parser.add_argument("--seeds", default="1..200")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    walls: dict[int, list[float]] = {1: [], args.jobs: []}
    inners: dict[int, list[float]] = {1: [], args.jobs: []}
    digests: set[str] = set()
    print(f"start: {load()}")
    for r in range(args.rounds):
        for jobs in (1, args.jobs) if r % 2 == 0 else (args.jobs, 1):
            wall_s, inner_s, cpu_s, table = run(args.profile, args.duration, args.seeds, jobs)
            walls[jobs].append(wall_s)
            inners[jobs].append(inner_s)
            digests.add(hashlib.sha256(table.encode()).hexdigest())
            print(
                f"round {r + 1} --jobs {jobs}: {wall_s:.2f} s end to end ({inner_s:.2f} s runs, "
                f"{cpu_s:.2f} s CPU)"
            )
    one, many = statistics.median(walls[1]), statistics.median(walls[args.jobs])
    one_in, many_in = statistics.median(inners[1]), statistics.median(inners[args.jobs])
    speedup = one / many
    print(
        f"minimeter simulate {args.profile} --duration {args.duration} --seeds {args.seeds}: "
        f"median {one:.2f} s on 1 worker, {many:.2f} s on {args.jobs}; "
        f"speed-up {speedup:.2f}x end to end, {one_in / many_in:.2f}x for the runs alone"
    )
    print(f"tables identical across worker counts: {len(digests) == 1}")
    met = speedup >= TARGET and len(digests) == 1
    print(f"end: {load()}")
    print(f"target >= {TARGET}x on {args.jobs} workers: {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
