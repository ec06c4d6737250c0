"""The `numpy.cumsum` reference of the core and simulate benches, timed two ways.

Issue 16's targets are ratios to `numpy.cumsum` over a year's float64 array measured
in the same run. `np.cumsum(a)` allocates a fresh 252 MB output whose page faults make
it swing several-fold between rounds (transparent huge pages); `np.cumsum(a, out=buf)`
into a touched, preallocated output does not. Both are timed each round, right after
the work they are compared with, so the two benches report the same references.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

import numpy as np


def timed(work: Callable[[], object]) -> tuple[float, float]:
    """(wall s, CPU s) of ``work()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


class CumsumReference:
    """A year's (or ``samples``) float64 array; each ``round()`` times both cumsums."""

    def __init__(self, samples: int) -> None:
        self.ref = np.random.default_rng(1).random(samples)
        self.buf = np.empty_like(self.ref)
        np.cumsum(self.ref, out=self.buf)  # touch the preallocated output once
        self.fresh: list[tuple[float, float]] = []
        self.preallocated: list[tuple[float, float]] = []

    def round(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """Time one fresh and one preallocated cumsum; returns ((wall, CPU), (wall, CPU))."""
        self.fresh.append(timed(lambda: np.cumsum(self.ref)))
        self.preallocated.append(timed(lambda: np.cumsum(self.ref, out=self.buf)))
        return self.fresh[-1], self.preallocated[-1]

    def ratios(self, timings: list[tuple[float, float]], label: str) -> dict[str, float]:
        """Print ``timings`` (one (wall, CPU) per round) against each reference: range,
        median per-round ratio (CPU beside it) and best of each; returns the medians."""
        medians = {}
        best = min(w for w, _ in timings)
        for name, ref_t in (("fresh", self.fresh), ("preallocated", self.preallocated)):
            per_round = [t[0] / r[0] for t, r in zip(timings, ref_t, strict=True)]
            per_round_cpu = [t[1] / r[1] for t, r in zip(timings, ref_t, strict=True)]
            medians[name] = statistics.median(per_round)
            print(
                f"vs cumsum {name}: best {min(w for w, _ in ref_t):.3f} s, "
                f"worst {max(w for w, _ in ref_t):.3f} s; per-round {label} ratio "
                f"{min(per_round):.2f}-{max(per_round):.2f}x, median {medians[name]:.2f}x "
                f"(CPU: median {statistics.median(per_round_cpu):.2f}x); "
                f"best of each {best / min(w for w, _ in ref_t):.2f}x"
            )
        return medians
