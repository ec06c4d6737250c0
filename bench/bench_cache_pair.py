"""Two processes at once on this machine: a numpy pipeline in the core's cache or not.

The Monte-Carlo target (2 workers >= 1.7x one) depends on what two processes doing
the same numpy work get from the machine together. This runs the shape of a seeded
meter's per-block pipeline (``clip, /, log10, *, +, *, cumsum`` over fresh arrays
of 2 x N float64, the same number of samples whatever N) once alone and then as two
copies at once, for N in L2 (2 x 8,192: 128 KB arrays) and N a day at 1 s
(2 x 86,400: 1.4 MB arrays), and prints the pair's throughput against one alone
(2.0x: no contention).

    .venv/bin/python bench/bench_cache_pair.py [--samples 8e9] [--sizes 8192 86400]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np


def pipeline(n: int, total: float) -> float:
    """Seconds for ``total`` samples of the pipeline over 2 x ``n`` arrays."""
    a = np.random.default_rng(1).uniform(0.0, 100.0, (2, n))
    reps = max(1, int(total // (2 * n)))
    start = time.perf_counter()
    for _ in range(reps):
        ratio = np.clip(a, 2.0, 220.0) / 30.0
        pct = np.log10(ratio) * 0.01 + 0.1
        power = a * (pct / 100.0 + 1.0)
        np.cumsum(power[0])
    return time.perf_counter() - start


def timed(n: int, total: float, copies: int) -> list[float]:
    cmd = [sys.executable, __file__, "--child", str(n), "--samples", str(total)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(copies)]
    return [float(p.communicate()[0]) for p in procs]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=float, default=4e8)
    parser.add_argument("--sizes", type=int, nargs="+", default=[8192, 86_400])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(pipeline(args.child, args.samples))
        return 0
    print(f"start: load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for n in args.sizes:
        (alone,) = timed(n, args.samples, 1)
        pair = timed(n, args.samples, 2)
        print(
            f"2 x {n:,} samples: alone {alone:.2f} s; two at once {pair[0]:.2f} / "
            f"{pair[1]:.2f} s; pair throughput {2 * alone / max(pair):.2f}x one alone"
        )
    print(f"end: load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
