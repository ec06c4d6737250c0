"""Batch simulation speed: a year of a profile at 1 s, end to end with --out.

Targets: the residential-year profile through `minimeter simulate` at 1 s resolution
(31,536,000 samples) with `--out` (1-minute CSV, events, summary, plots) in <= 30 s
on this machine (issue 6), and in <= 6x numpy.cumsum over the same number of
float64 (issue 16). The command runs as a child process, so its time includes
interpreter start, imports and writing every file; its CPU time is the total of
every process and thread of the run (user + system: the command, its sampler and
recorder threads, and the plot and events processes it forks, all waited for).

Each round runs the command, then cumsum two ways, as bench/bench_core.py does:

- fresh: ``np.cumsum(a)`` allocates its output every time, so its time is mostly
  the kernel handing out fresh pages (the first round's is the coldest); the
  issue's figures were taken against one such cold measurement;
- preallocated: ``np.cumsum(a, out=buf)`` into an output touched before the rounds:
  the summation alone, the steady, stricter reference.

Per round both ratios are printed (wall; CPU in brackets), then the median of the
per-round ratios and the ratio of the best of each. The 6x target is judged on the
median per-round wall ratio against the fresh cumsum: the reference of the issue's
own figures (its 21.6 s = 25.7x implies a cumsum of ~0.84 s, an allocating one);
the ratio against the preallocated cumsum, the stricter one, is printed beside it.
Exit status 1 when the 30 s target is missed.

    .venv/bin/python bench/bench_simulate.py [--profile residential-year] [--days 365]
        [--rounds 3] [--old PATH-OF-ANOTHER-CHECKOUT]
"""

from __future__ import annotations

import argparse
import compileall
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cumsum_ref import CumsumReference, load

from twin.loadprofile import shipped_names

TARGET_S = 30.0
TARGET_RATIO = 6.0


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_simulate(
    cmd: list[str], out: Path, tree: Path | None = None
) -> tuple[float, float, float, dict[str, int]]:
    """(wall s, CPU s, simulation alone s, file sizes) of one run of the command (from
    the checkout ``tree`` when given: its ``twin`` first on the path)."""
    env = None if tree is None else {**os.environ, "PYTHONPATH": str(tree)}
    wall, cpu = time.perf_counter(), children_cpu_s()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env, cwd=tree)
    wall, cpu = time.perf_counter() - wall, children_cpu_s() - cpu
    if proc.returncode != 0:
        raise SystemExit(f"the command failed:\n{proc.stderr}")
    engine = re.search(r"in ([\d.]+) s \(([\d.]+) M samples/s\)", proc.stderr)
    sizes = {p.name: p.stat().st_size for p in sorted(out.iterdir())}
    return wall, cpu, float(engine[1]) if engine else float("nan"), sizes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="residential-year")
    parser.add_argument("--days", type=float, default=365)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument(
        "--old",
        type=Path,
        help="another checkout (e.g. of main): its command run too, in every round (default: none)",
    )
    args = parser.parse_args()
    profile, duration = args.profile, f"{args.days:g}d"
    if profile not in shipped_names() and not Path(profile).exists():
        print(f"profile {profile!r} not found; using the repeating 'default' day instead")
        profile = "default"
    samples = round(args.days * 86_400)
    # Each tree's bytecode made first (what `make install` does): with
    # PYTHONDONTWRITEBYTECODE set, stale or missing bytecode is compiled on every run.
    for tree in [Path(__file__).resolve().parent.parent, *([args.old] if args.old else [])]:
        compileall.compile_dir(tree / "twin", quiet=1)
    print(f"start: {load()}")
    cumsum = CumsumReference(samples)
    runs: list[tuple[float, float]] = []
    old_runs: list[tuple[float, float]] = []
    engine_s: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-simulate-") as tmp:
        out = Path(tmp) / "out"
        cmd = [sys.executable, "-m", "twin", "simulate", profile, "--duration", duration]
        cmd += ["--step", "1s", "--interval", "1min", "--out", str(out), "--json"]
        shown = " ".join(cmd[3:]).replace(str(out), "DIR")
        print(f"command: minimeter {shown} (DIR a temporary folder)")
        for r in range(args.rounds):
            wall, cpu, engine, sizes = run_simulate(cmd, out)
            runs.append((wall, cpu))
            engine_s.append(engine)
            (fw, fc), (pw, pc) = cumsum.round()
            if args.old is not None:
                old_wall, old_cpu, _, _ = run_simulate(cmd, out, args.old.resolve())
                old_runs.append((old_wall, old_cpu))
                print(f"round {r + 1}: the old checkout {old_wall:.2f} s ({old_cpu:.2f} CPU)")
            print(
                f"round {r + 1}: end to end {wall:.2f} s ({cpu:.2f} CPU; simulation alone "
                f"{engine:.2f} s); cumsum fresh {fw:.3f} s ({fc:.3f}), preallocated {pw:.3f} s "
                f"({pc:.3f}); e2e/fresh {wall / fw:.1f}x ({cpu / fc:.1f}x), e2e/preallocated "
                f"{wall / pw:.1f}x ({cpu / pc:.1f}x)"
            )
    print("files: " + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sizes.items()))
    best_wall = min(w for w, _ in runs)
    median_wall = statistics.median(w for w, _ in runs)
    print(
        f"end to end: {samples:,} samples, best {best_wall:.2f} s = "
        f"{samples / best_wall / 1e6:.2f} M samples/s, median {median_wall:.2f} s "
        f"(CPU of every process median {statistics.median(c for _, c in runs):.2f} s; "
        f"simulation alone median "
        f"{statistics.median(engine_s):.2f} s)"
    )
    verdicts = cumsum.ratios(runs, "end to end")
    judged, strict = verdicts["fresh"], verdicts["preallocated"]
    print(
        f"target <= {TARGET_RATIO:g}x cumsum, judged on the median per-round ratio against the "
        f"fresh (allocating) cumsum, the issue's reference: {judged:.1f}x, "
        f"{'met' if judged <= TARGET_RATIO else 'NOT met'} (against the preallocated cumsum: "
        f"{strict:.1f}x, {'met' if strict <= TARGET_RATIO else 'NOT met'})"
    )
    if old_runs:
        old_wall = statistics.median(w for w, _ in old_runs)
        old_cpu = statistics.median(c for _, c in old_runs)
        new_cpu = statistics.median(c for _, c in runs)
        print(
            f"old checkout {args.old}: median {old_wall:.2f} s ({old_cpu:.2f} CPU); this one "
            f"{median_wall:.2f} s ({new_cpu:.2f} CPU): {old_wall / median_wall:.2f}x less wall, "
            f"{old_cpu / new_cpu:.2f}x less CPU"
        )
    met = best_wall <= TARGET_S * args.days / 365
    print(f"target <= {TARGET_S:g} s for a year: {'met' if met else 'NOT met'}")
    print(f"end: {load()}")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
