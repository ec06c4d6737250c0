"""Driving a meter core from a profile sampler: THE one loop shared by every caller.

The live runtime (a few samples per tick), batch simulation (a day per block) and
the tests all call :func:`drive`. It advances the core over ``n`` samples starting
at profile time ``t0_s``, in blocks of at most ``max_block`` samples. Command events
of the profile (error inject/clear, demand reset, clear pulse counts) are applied
with ``core.apply`` between samples: a command at time ``tc`` is applied before
the first sample starting at or after ``tc``. Each block's events (the command
events included, in time order) are yielded once the block is done.

Sample times are integer microseconds (``t0 + i*dt``), like the sampler's, so the
split into blocks never changes what the core sees.
"""

from __future__ import annotations

from collections.abc import Iterator

from twin.core import Event, MeterCore
from twin.loadprofile.sampler import Sampler


def drive(
    core: MeterCore,
    sampler: Sampler,
    t0_s: float,
    dt_s: float,
    n: int,
    max_block: int = 86_400,
) -> Iterator[list[Event]]:
    """Advance ``core`` over ``n`` samples of ``sampler`` from ``t0_s``; yield events per block."""
    if max_block < 1:
        raise ValueError(f"max_block: {max_block} invalid; expected >= 1")
    t0_us = round(t0_s * 1e6)
    dt_us = round(dt_s * 1e6)
    if dt_us < 1:
        raise ValueError(f"dt_s: {dt_s!r} invalid; expected at least 1e-06 s")
    done = 0
    while done < n:
        m = min(max_block, n - done)
        start_us = t0_us + done * dt_us
        events: list[Event] = []
        j = 0
        for tc_s, command in sampler.commands_between(start_us / 1e6, (start_us + m * dt_us) / 1e6):
            # First sample starting at or after the command's time.
            k = min(m, -(-(round(tc_s * 1e6) - start_us) // dt_us))
            if k > j:
                events += core.advance(sampler.block((start_us + j * dt_us) / 1e6, dt_s, k - j))
                j = k
            events += core.apply(command)
        if j < m:
            events += core.advance(sampler.block((start_us + j * dt_us) / 1e6, dt_s, m - j))
        done += m
        yield events
