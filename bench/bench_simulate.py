"""Batch simulation speed: a year of a profile at 1 s, end to end with --out.

Target (issue 6): the residential-year profile through `minimeter simulate` at 1 s
resolution (31,536,000 samples) with `--out` (1-minute CSV, events, summary, plots)
in <= 30 s on this machine. The command runs as a child process, so the time
includes interpreter start, imports and writing every file. numpy.cumsum over the
same number of float64 is timed in the same run as a reference (the machine is
shared and noisy). Exit status 1 when the target is missed.

    .venv/bin/python bench/bench_simulate.py [--profile residential-year] [--days 365]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from twin.loadprofile import shipped_names

TARGET_S = 30.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="residential-year")
    parser.add_argument("--days", type=float, default=365)
    args = parser.parse_args()
    profile, duration = args.profile, f"{args.days:g}d"
    if profile not in shipped_names() and not Path(profile).exists():
        print(f"profile {profile!r} not found; using the repeating 'default' day instead")
        profile = "default"
    samples = round(args.days * 86_400)

    with tempfile.TemporaryDirectory(prefix="bench-simulate-") as tmp:
        out = Path(tmp) / "out"
        cmd = [sys.executable, "-m", "twin", "simulate", profile, "--duration", duration]
        cmd += ["--step", "1s", "--interval", "1min", "--out", str(out), "--json"]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wall_s = time.perf_counter() - start
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return 1
        sizes = {p.name: p.stat().st_size for p in sorted(out.iterdir())}

    ref = np.random.default_rng(1).random(samples)
    start = time.perf_counter()
    np.cumsum(ref)
    cumsum_s = time.perf_counter() - start

    engine = re.search(r"in ([\d.]+) s \(([\d.]+) M samples/s\)", proc.stderr)
    engine_s = float(engine[1]) if engine else float("nan")
    shown = " ".join(cmd[3:]).replace(str(out), "DIR")
    print(f"command: minimeter {shown} (DIR a temporary folder)")
    print(
        f"end to end: {samples:,} samples in {wall_s:.2f} s = {samples / wall_s / 1e6:.2f} "
        f"M samples/s (simulation alone {engine_s:.2f} s)"
    )
    print("files: " + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sizes.items()))
    print(
        f"numpy.cumsum over {samples:,} float64: {cumsum_s:.3f} s; "
        f"end to end / cumsum = {wall_s / cumsum_s:.1f}x"
    )
    met = wall_s <= TARGET_S * args.days / 365
    print(f"target <= {TARGET_S:g} s for a year: {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
