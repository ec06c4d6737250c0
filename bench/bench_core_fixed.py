"""The core's fixed cost per block: bench_core's day in small blocks.

A day block costs its numpy passes plus a fixed, Python-level cost per call
(dispatch, the "anything due?" tests, events). Cutting the same day into blocks of
``--samples`` (default 1,000) makes that fixed cost most of the time, so its changes
show; the day-block figure is printed beside it. CPU time of this process, the
median of ``--rounds`` runs of ``--days`` days each.

    .venv/bin/python bench/bench_core_fixed.py [--samples 1000] [--days 20] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench_core import day_inputs
from cumsum_ref import load

from twin.core import MeterConfig, MeterCore, SampleBlock

DAY = 86_400


def pieces(day: SampleBlock, samples: int) -> list[SampleBlock]:
    """The day cut into blocks of ``samples`` (the last one shorter)."""
    return [
        SampleBlock.build(
            min(samples, DAY - a),
            1.0,
            voltage_v=day.voltage_v[:, a : a + samples],
            current_a=day.current_a[:, a : a + samples],
            cos_phi=[0.97, 0.92],
        )
        for a in range(0, DAY, samples)
    ]


def us_per_block(blocks: list[SampleBlock], days: int) -> float:
    core = MeterCore(MeterConfig())
    core.advance(blocks[0])  # untimed: the core's buffers allocated and faulted in
    start = time.process_time()
    for _ in range(days):
        for block in blocks:
            core.advance(block)
    return (time.process_time() - start) / (days * len(blocks)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"start: {load()}")
    day = day_inputs(0)
    small, whole = pieces(day, args.samples), [day]
    fixed = [us_per_block(small, args.days) for _ in range(args.rounds)]
    days = [us_per_block(whole, args.days) for _ in range(args.rounds)]
    print(
        f"{args.samples:,}-sample blocks: median {statistics.median(fixed):.1f} us per block "
        f"({min(fixed):.1f}-{max(fixed):.1f}); day blocks: median "
        f"{statistics.median(days):.0f} us per day ({min(days):.0f}-{max(days):.0f}); CPU time"
    )
    print(f"end: {load()}")


if __name__ == "__main__":
    main()
