"""Core speed: one dual-element meter through one year at 1 s resolution.

Target (issue 2): >= 5 M samples/s. Printed beside numpy.cumsum over the same
number of samples in the same run, since this machine is shared and noisy.

    .venv/bin/python bench/bench_core.py [--days 365]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from twin.core import MeterConfig, MeterCore, SampleBlock


def day_inputs(day: int) -> SampleBlock:
    """A varying residential-like day: current follows a daily curve plus a ripple."""
    t = np.arange(86_400, dtype=np.float64)
    base = 8.0 + 6.0 * np.sin(2 * np.pi * (t / 86_400 - 0.3)) ** 2
    ripple = 2.0 * np.sin(2 * np.pi * t / 900.0 + day)
    amps = np.vstack([base + ripple, base * 0.7 + 1.0])
    volts = np.vstack([120.0 + np.sin(t / 5000.0), 119.0 + np.cos(t / 7000.0)])
    return SampleBlock.build(86_400, 1.0, voltage_v=volts, current_a=amps, cos_phi=[0.97, 0.92])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=365)
    args = parser.parse_args()
    blocks = [day_inputs(d) for d in range(7)]  # inputs prepared outside the timing
    core = MeterCore(MeterConfig())
    samples = args.days * 86_400
    edges = 0
    start = time.perf_counter()
    for d in range(args.days):
        for ev in core.advance(blocks[d % 7]):
            edges += len(ev) if hasattr(ev, "closed") else 0
    core_s = time.perf_counter() - start
    snap = core.snapshot()

    ref = np.random.default_rng(1).random(samples)
    start = time.perf_counter()
    np.cumsum(ref)
    cumsum_s = time.perf_counter() - start

    rate = samples / core_s
    print(
        f"core: {samples:,} samples (dual element, 1 s) in {core_s:.2f} s"
        f" = {rate / 1e6:.2f} M samples/s"
    )
    print(
        f"      {snap.energy_delivered_wh:,} Wh, {edges:,} pulse edges,"
        f" {snap.pulses_10wh:,} 10 Wh pulses"
    )
    print(
        f"numpy.cumsum over {samples:,} float64: {cumsum_s:.3f} s"
        f" ({samples / cumsum_s / 1e6:.0f} M/s)"
    )
    print(
        f"core time / cumsum time = {core_s / cumsum_s:.1f}x; target >= 5 M samples/s: "
        f"{'met' if rate >= 5e6 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
