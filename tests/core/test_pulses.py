"""Pulse edges against a scan of every multiple of the half period, written apart from the core.

The core finds the samples holding crossings from one integer division per sample,
or by a binary search per crossing when they are few (seeds 6-9: a light load);
here each multiple of the half period is looked for sample by sample, and its time
interpolated within the sample in plain Python integers and floats.
"""

from __future__ import annotations

import numpy as np
import pytest

from twin.core import AccuracyConfig, MeterConfig, SampleBlock
from twin.core.accuracy import ErrorCurve
from twin.core.pulses import SEARCH_SAMPLES_PER_CROSSING, edges, half_period_uj
from twin.core.registration import element_power


def scanned(
    energy0_uj: int, delivered: list[int], half_uj: int, time0_us: int, dt_us: int
) -> tuple[list[float], list[bool], int]:
    """Times, new states and the first sample holding two crossings (-1: none)."""
    times, closed, crowded = [], [], -1
    before = 0  # energy of the run before the current sample
    for i, d in enumerate(delivered):
        j = (energy0_uj + before) // half_uj + 1  # the next multiple to cross
        found = 0
        while j * half_uj <= energy0_uj + before + d:
            frac = (j * half_uj - energy0_uj - before) / d
            times.append((time0_us + i * dt_us + frac * dt_us) / 1e6)
            closed.append(j % 2 == 1)
            found += 1
            j += 1
        if found > 1 and crowded < 0:
            crowded = i
        before += d
    return times, closed, crowded


@pytest.mark.parametrize("seed", range(10))
def test_edges_match_a_scan_of_every_multiple(seed: int) -> None:
    rng = np.random.default_rng(seed)
    light = seed >= 6  # a crossing in hundreds of samples
    n = int(rng.integers(10_000, 20_000) if light else rng.integers(1, 3000))
    small = rng.integers(0, 300_000_000 if light else 3_000_000_000, n)  # under a Wh each
    if seed % 2:  # some samples hold several 5 Wh crossings
        small[rng.integers(0, n, 1 + n // (2000 if light else 50))] = rng.integers(0, 80 * 10**9)
    if seed == 4:
        small[: n // 2] = 0  # nothing delivered for a while
    delivered = small.astype(np.int64)
    energy0_uj = int(rng.integers(0, 10**15))
    time0_us, dt_us = int(rng.integers(0, 10**12)), int(rng.choice([10_000, 1_000_000, 60_000_000]))
    halves = [half_period_uj(kh) for kh in (10, 100, 1000)] + [half_period_uj(100)]
    cum = np.cumsum(delivered)
    found = edges(energy0_uj, delivered, cum, halves, time0_us, dt_us)
    for half, (times, closed, crowded) in zip(halves, found, strict=True):
        want = scanned(energy0_uj, delivered.tolist(), half, time0_us, dt_us)
        assert (times.tolist(), closed.tolist(), crowded) == want
    assert sum(len(t) for t, _, _ in found) > 0 or int(cum[-1]) < halves[0]
    if light:  # few crossings: the search's case
        assert 0 < len(found[0][0]) * SEARCH_SAMPLES_PER_CROSSING < n


def test_power_is_negative_only_where_cos_delta_is() -> None:
    """What status relies on to skip the power-sign pass: every factor after
    V x I x cos(delta) is positive, at the extremes of the accuracy curve and of an
    injected calibration error."""
    n = 4000
    rng = np.random.default_rng(5)
    block = SampleBlock.build(
        n,
        1.0,
        voltage_v=rng.uniform(0.0, 150.0, (2, n)),
        current_a=rng.uniform(0.0, 260.0, (2, n)),
        cos_phi=rng.uniform(-1.0, 1.0, (2, n)),
    )
    model = MeterConfig().model
    for seed in range(20):
        for calibration_pct in (-50.0, 50.0):
            curve = ErrorCurve.from_config(
                AccuracyConfig(seed=seed, calibration_error_pct=calibration_pct), model
            )
            p, _, pf = element_power(block, model, curve, calibration_pct)
            assert not ((p < 0.0) & (pf >= 0.0)).any()
            assert ((p < 0.0) == ((pf < 0.0) & (p != 0.0))).all()
