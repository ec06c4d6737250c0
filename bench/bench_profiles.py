"""Profile sampling speed: the year of residential load at 1 s, in 1-day blocks.

Prints samples/s for ``Sampler.block`` over the whole year (31.5 M samples) and, as a
reference measured in the same run, ``numpy.cumsum`` over the same number of float64
samples in the same block size. The process first lets glibc keep freed memory, as
the batch runners do (``twin.batch.simulate.keep_freed_memory``; ``--fresh-pages``
leaves the default, where every day-sized array is faulted in afresh).
Usage: ``.venv/bin/python bench/bench_profiles.py``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from twin.batch.simulate import keep_freed_memory
from twin.loadprofile import load_profile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="residential-year")
    parser.add_argument("--dt", type=float, default=1.0, help="sample period (s)")
    parser.add_argument("--block", type=int, default=86_400, help="samples per block")
    parser.add_argument("--days", type=float, default=None, help="limit the span (days)")
    parser.add_argument(
        "--fresh-pages", action="store_true", help="leave glibc's default (memory returned)"
    )
    args = parser.parse_args()
    if not args.fresh_pages:
        keep_freed_memory()

    profile = load_profile(args.profile)
    sampler = profile.sampler()
    span_s = profile.duration_s if args.days is None else args.days * 86_400
    n_total = round(span_s / args.dt)

    start = time.perf_counter()
    done = 0
    while done < n_total:
        m = min(args.block, n_total - done)
        sampler.block(done * args.dt, args.dt, m)
        done += m
    sampling_s = time.perf_counter() - start

    data = np.ones(args.block)
    start = time.perf_counter()
    done = 0
    while done < n_total:
        m = min(args.block, n_total - done)
        np.cumsum(data[:m])
        done += m
    cumsum_s = time.perf_counter() - start

    print(f"profile {profile.name}: {n_total} samples at {args.dt:g} s, blocks of {args.block}")
    print(f"sampler.block : {sampling_s:7.3f} s  {n_total / sampling_s / 1e6:8.1f} M samples/s")
    print(f"numpy.cumsum  : {cumsum_s:7.3f} s  {n_total / cumsum_s / 1e6:8.1f} M samples/s")


if __name__ == "__main__":
    main()
