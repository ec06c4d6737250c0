"""Daily curves sampled a day at a time (the batch's blocks, whose day shapes are kept)
give exactly what shorter and midnight-straddling blocks give."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from twin.loadprofile import load_profile

FIELDS = ("voltage_v", "current_a", "cos_phi", "leading", "frequency_hz", "temperature_c")
DAY_S = 86_400.0

EXPORT_YEAR = """schema: 1
name: export-year
segments:
  - kind: daily
    duration: 365d
    quantity: power
    start_weekday: thursday
    start_month: june
    weekend_factor: 1.5
    L1: {voltage: 120, pf: 0.9}
    L2: {voltage: 118, pf: 1, leading: true}
    hourly:
      L1: [-300, -250, 0, 220, 230, 300, 600, 900, 800, -500, 400, 400,
           450, 400, 400, 450, 600, 900, 1200, 1300, 1100, 900, 600, 400]
      L2: [200, 180, 170, 170, 180, 250, 700, 1100, 700, 400, 350, 350,
           400, 350, 350, 400, 700, 1400, 1800, 1600, 1200, 800, 500, 300]
    monthly: [1.25, 1.2, 1.05, 0.9, 0.85, 0, 1.2, 1.25, 1.0, 0.9, 1.05, 1.2]
noise:
  - {quantity: L2.power, amplitude: 5%, period: 90s}
  - {quantity: voltage, amplitude: 1, period: 1s}
"""


def arrays(block: object) -> dict[str, np.ndarray]:
    n = block.n  # type: ignore[attr-defined]
    per_line = {"voltage_v", "current_a", "cos_phi", "leading"}
    return {
        f: np.broadcast_to(getattr(block, f), (2, n) if f in per_line else (n,)) for f in FIELDS
    }


def concatenated(blocks: list[object]) -> dict[str, np.ndarray]:
    parts = [arrays(b) for b in blocks]
    return {f: np.concatenate([p[f] for p in parts], axis=-1) for f in FIELDS}


def assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    for f in FIELDS:
        np.testing.assert_array_equal(a[f], b[f], err_msg=f)


@pytest.mark.parametrize("source", ["residential-year", "pv-backfeed", "export-year"])
@pytest.mark.parametrize("day", [0, 5, 6, 151, 363])
def test_a_day_block_equals_its_hours_and_the_cached_shape_is_reused(
    tmp_path: Path, source: str, day: int
) -> None:
    if source == "export-year":
        (tmp_path / "export-year.yaml").write_text(EXPORT_YEAR)
        source = str(tmp_path / "export-year.yaml")
    sampler = load_profile(source).sampler(seed=5)
    span = min(DAY_S, sampler.duration_s)
    n = int(span)
    # The same weekday a week later: same day shape (from the cache), another season.
    for t0 in (day * DAY_S, (day + 7) * DAY_S):
        t0 %= sampler.duration_s
        first = arrays(sampler.block(t0, 1.0, n))
        again = arrays(sampler.block(t0, 1.0, n))
        hours = concatenated([sampler.block(t0 + h, 1.0, 3600) for h in range(0, n, 3600)])
        assert_same(first, again)
        assert_same(first, hours)
    # Two days in one block cross midnight: sampled per sample, not from day shapes.
    t0 = (day * DAY_S) % sampler.duration_s
    if t0 + 2 * span <= sampler.duration_s:
        both = arrays(sampler.block(t0, 1.0, 2 * n))
        assert_same(both, concatenated([sampler.block(t0 + k * span, 1.0, n) for k in (0, 1)]))


@pytest.mark.parametrize("dt", [1.0, 0.5, 7.0])
def test_blocks_across_midnight_equal_day_blocks(dt: float) -> None:
    sampler = load_profile("residential-year").sampler(seed=2)
    per_day = int(DAY_S / dt) if DAY_S % dt == 0 else None
    if per_day is None:  # samples do not line up with midnight: compare with short blocks
        n = 30_000
        whole = arrays(sampler.block(40 * DAY_S, dt, n))
        parts = concatenated(
            [sampler.block(40 * DAY_S + k * dt, dt, 1000) for k in range(0, n, 1000)]
        )
        assert_same(whole, parts)
        return
    two_days = arrays(sampler.block(40 * DAY_S, dt, 2 * per_day))  # crosses midnight
    days = concatenated([sampler.block(d * DAY_S, dt, per_day) for d in (40, 41)])
    assert_same(two_days, days)
