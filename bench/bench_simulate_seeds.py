"""Monte-Carlo scaling: `simulate --seeds 1..200` on 1 worker and on K workers.

Target (issue 16): on 2 workers >= 1.7x the speed of 1 worker. Each configuration
runs as a child process (`minimeter simulate PROFILE [--duration D] --seeds 1..200
--jobs K`, table to stdout), rounds interleaved so both see the same machine load;
the median wall time per configuration is compared. `--jobs 1` runs every meter in
the CLI's own process (no pool, no pickling): the strictest baseline. The tables of
both configurations must be byte-identical. Exit status 1 when the target is missed.

The default is the command as issue 16 writes it, ``--seeds 1..200`` over the
profile's own duration (residential-year: a year; about 75 s on 1 worker, so 3 rounds
take ~7 minutes). ``--duration 14d`` is the quick variant: there the command's fixed
start-up (~0.3 s of interpreter and imports, paid once whatever the number of
workers) is a tenth of the 1-worker time and caps the end-to-end speed-up below the
runs' own (1.58-1.81x against 1.71-1.95x on a quiet machine, 2026-12-01); both are
in ``bench/README.md``.

`--against PYTHON` also runs both configurations with another checkout's
interpreter (e.g. a venv of main; the commands run from the temporary directory,
so each interpreter imports its own checkout), interleaved with this one's in every round, and
prints its medians beside these: before/after figures under the same load. The
target is judged on this checkout's figures.

    .venv/bin/python bench/bench_simulate_seeds.py [--profile residential-year]
        [--duration D (default: the profile's)] [--seeds 1..200] [--jobs 2]
        [--rounds 3] [--against PYTHON]
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = 1.7


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def run(
    python: str, profile: str, duration: str | None, seeds: str, jobs: int
) -> tuple[float, float, float, str]:
    """(wall s, runs alone s, CPU s of the command and its workers, the table)."""
    cmd = [python, "-m", "twin", "simulate", profile]
    cmd += [] if duration is None else ["--duration", duration]
    cmd += ["--seeds", seeds, "--jobs", str(jobs)]
    start, cpu = time.perf_counter(), children_cpu_s()
    # Run from a neutral directory: `-m twin` would import ./twin from the working
    # directory before the interpreter's own installed checkout.
    proc = subprocess.run(
        cmd, capture_output=True, text=True, check=True, cwd=tempfile.gettempdir()
    )
    wall_s, cpu = time.perf_counter() - start, children_cpu_s() - cpu
    inner = re.search(r"in ([\d.]+) s on", proc.stderr)
    return wall_s, float(inner[1]) if inner else float("nan"), cpu, proc.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="residential-year")
    parser.add_argument("--duration", help="simulated time (default: the profile's own)")
    parser.add_argument("--seeds", default="1..200")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--against", metavar="PYTHON", help="another checkout's interpreter")
    args = parser.parse_args()
    pythons = {"this": sys.executable}
    if args.against:
        pythons["against"] = args.against
    configs = [(name, jobs) for name in pythons for jobs in (1, args.jobs)]
    walls: dict[tuple[str, int], list[float]] = {c: [] for c in configs}
    inners: dict[tuple[str, int], list[float]] = {c: [] for c in configs}
    digests: dict[str, set[str]] = {name: set() for name in pythons}
    # The package's bytecode made first (what `make install` does): with
    # PYTHONDONTWRITEBYTECODE set, missing bytecode would be compiled by every run.
    compileall.compile_dir(Path(__file__).resolve().parent.parent / "twin", quiet=1)
    print(f"start: {load()}")
    for r in range(args.rounds):
        for name, jobs in configs if r % 2 == 0 else configs[::-1]:
            wall_s, inner_s, cpu_s, table = run(
                pythons[name], args.profile, args.duration, args.seeds, jobs
            )
            walls[name, jobs].append(wall_s)
            inners[name, jobs].append(inner_s)
            digests[name].add(hashlib.sha256(table.encode()).hexdigest())
            print(
                f"round {r + 1} {name} --jobs {jobs}: {wall_s:.2f} s end to end "
                f"({inner_s:.2f} s runs, {cpu_s:.2f} s CPU)"
            )
    duration = "" if args.duration is None else f" --duration {args.duration}"
    for name in pythons:
        one, many = statistics.median(walls[name, 1]), statistics.median(walls[name, args.jobs])
        one_in = statistics.median(inners[name, 1])
        many_in = statistics.median(inners[name, args.jobs])
        print(
            f"{name} ({pythons[name]}): minimeter simulate {args.profile}{duration} "
            f"--seeds {args.seeds}: median {one:.2f} s on 1 worker, "
            f"{many:.2f} s on {args.jobs}; speed-up {one / many:.2f}x end to end, "
            f"{one_in / many_in:.2f}x for the runs alone"
        )
    same = len(set().union(*digests.values())) == 1
    print(f"tables identical across worker counts{' and checkouts' * bool(args.against)}: {same}")
    speedup = statistics.median(walls["this", 1]) / statistics.median(walls["this", args.jobs])
    met = speedup >= TARGET and same
    print(f"end: {load()}")
    print(f"target >= {TARGET}x on {args.jobs} workers: {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
