"""Core speed: one dual-element meter through one year at 1 s resolution.

Targets: >= 5 M samples/s (issue 2) and <= 2.5x numpy.cumsum over the same number
of float64 (issue 16), timed in the same run, since this machine is shared and
noisy: core and cumsum alternate for ``--rounds`` rounds, each round's ratio is
printed (wall and CPU time) and the target is judged on the best of each.

    .venv/bin/python bench/bench_core.py [--days 365] [--rounds 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from twin.core import MeterConfig, MeterCore, PulseEdges, SampleBlock


def day_inputs(day: int) -> SampleBlock:
    """A varying residential-like day: current follows a daily curve plus a ripple."""
    t = np.arange(86_400, dtype=np.float64)
    base = 8.0 + 6.0 * np.sin(2 * np.pi * (t / 86_400 - 0.3)) ** 2
    ripple = 2.0 * np.sin(2 * np.pi * t / 900.0 + day)
    amps = np.vstack([base + ripple, base * 0.7 + 1.0])
    volts = np.vstack([120.0 + np.sin(t / 5000.0), 119.0 + np.cos(t / 7000.0)])
    return SampleBlock.build(86_400, 1.0, voltage_v=volts, current_a=amps, cos_phi=[0.97, 0.92])


def run_core(blocks: list[SampleBlock], days: int) -> tuple[float, float, MeterCore, int]:
    """(wall s, CPU s, the core, pulse edges) of one run over ``days``."""
    core = MeterCore(MeterConfig())
    edges = 0
    wall, cpu = time.perf_counter(), time.process_time()
    for d in range(days):
        for ev in core.advance(blocks[d % 7]):
            edges += len(ev) if isinstance(ev, PulseEdges) else 0
    return time.perf_counter() - wall, time.process_time() - cpu, core, edges


def run_cumsum(samples: int) -> tuple[float, float]:
    """(wall s, CPU s) of numpy.cumsum over ``samples`` float64."""
    ref = np.random.default_rng(1).random(samples)
    wall, cpu = time.perf_counter(), time.process_time()
    np.cumsum(ref)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved core/cumsum rounds")
    args = parser.parse_args()
    blocks = [day_inputs(d) for d in range(7)]  # inputs prepared outside the timing
    samples = args.days * 86_400
    core_runs, ref_runs = [], []
    for r in range(args.rounds):
        core_wall, core_cpu, core, edges = run_core(blocks, args.days)
        ref_wall, ref_cpu = run_cumsum(samples)
        core_runs.append((core_wall, core_cpu))
        ref_runs.append((ref_wall, ref_cpu))
        print(
            f"round {r + 1}: core {core_wall:.2f} s wall / {core_cpu:.2f} s CPU; cumsum "
            f"{ref_wall:.3f} s / {ref_cpu:.3f} s; ratio {core_wall / ref_wall:.2f}x wall, "
            f"{core_cpu / ref_cpu:.2f}x CPU"
        )
    snap = core.snapshot()
    core_s = min(w for w, _ in core_runs)
    cumsum_s = min(w for w, _ in ref_runs)
    core_cpu_s = min(c for _, c in core_runs)
    cumsum_cpu_s = min(c for _, c in ref_runs)
    rate = samples / core_s
    print(
        f"core: {samples:,} samples (dual element, 1 s) in {core_s:.2f} s (best of "
        f"{args.rounds}) = {rate / 1e6:.2f} M samples/s"
    )
    print(
        f"      {snap.energy_delivered_wh:,} Wh, {edges:,} pulse edges,"
        f" {snap.pulses_10wh:,} 10 Wh pulses"
    )
    print(
        f"numpy.cumsum over {samples:,} float64: {cumsum_s:.3f} s"
        f" ({samples / cumsum_s / 1e6:.0f} M/s)"
    )
    ratio = core_s / cumsum_s
    print(
        f"core time / cumsum time = {ratio:.2f}x wall (best of each), "
        f"{core_cpu_s / cumsum_cpu_s:.2f}x CPU; target <= 2.5x: "
        f"{'met' if ratio <= 2.5 else 'NOT met'}; >= 5 M samples/s: "
        f"{'met' if rate >= 5e6 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
