"""Property tests of the core: monotonic energy, split invariance, pulse bound, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import events_by_kind
from twin.core import (
    Event,
    MeterConfig,
    MeterCore,
    SampleBlock,
)

SAMPLES = 60


@st.composite
def blocks(draw: st.DrawFn) -> SampleBlock:
    n = draw(st.integers(1, SAMPLES))
    floats = st.floats
    volts = draw(st.lists(floats(0.0, 150.0), min_size=2 * n, max_size=2 * n))
    amps = draw(st.lists(floats(0.0, 260.0), min_size=2 * n, max_size=2 * n))
    cos = draw(st.lists(floats(-1.0, 1.0), min_size=2 * n, max_size=2 * n))
    dt = draw(st.sampled_from([0.01, 0.05, 0.1, 0.5, 1.0, 7.0, 60.0]))
    lines = draw(st.lists(st.integers(0, 1), min_size=2 * n, max_size=2 * n))
    rev = draw(st.lists(st.booleans(), min_size=2 * n, max_size=2 * n))
    lead = draw(st.lists(st.booleans(), min_size=2 * n, max_size=2 * n))
    angles = draw(st.sampled_from([(0.0, 180.0), (0.0, 120.0), (0.0, -120.0)]))
    return SampleBlock.build(
        n,
        dt,
        voltage_v=np.reshape(volts, (2, n)),
        current_a=np.reshape(amps, (2, n)),
        cos_phi=np.reshape(cos, (2, n)),
        leading=np.reshape(lead, (2, n)),
        line_angle_deg=angles,
        ct_line=np.reshape(lines, (2, n)),
        ct_reversed=np.reshape(rev, (2, n)),
    )


def _slice(block: SampleBlock, a: int, b: int) -> SampleBlock:
    return SampleBlock.build(
        b - a,
        block.dt_s,
        voltage_v=block.voltage_v[:, a:b],
        current_a=block.current_a[:, a:b],
        cos_phi=block.cos_phi[:, a:b],
        leading=block.leading[:, a:b],
        frequency_hz=block.frequency_hz[a:b],
        temperature_c=block.temperature_c[a:b],
        line_angle_deg=block.line_angle_deg,
        ct_line=(0, 1) if block.ct_line is None else block.ct_line[:, a:b],
        ct_reversed=False if block.ct_reversed is None else block.ct_reversed[:, a:b],
    )


@settings(max_examples=60, deadline=None)
@given(block=blocks(), mode=st.sampled_from([0, 1, 2]))
def test_one_block_equals_sample_by_sample(block: SampleBlock, mode: int) -> None:
    cfg = MeterConfig(registration_mode=mode)  # type: ignore[arg-type]
    whole, split = MeterCore(cfg), MeterCore(cfg)
    ev_whole = whole.advance(block)
    ev_split: list[Event] = []
    for i in range(block.n):
        ev_split.extend(split.advance(_slice(block, i, i + 1)))
    assert whole.snapshot() == split.snapshot() or _same_with_nan(whole, split)
    assert whole.nv_state() == split.nv_state()
    assert events_by_kind(ev_whole) == events_by_kind(ev_split)


def _same_with_nan(a: MeterCore, b: MeterCore) -> bool:
    da, db = a.snapshot().to_dict(), b.snapshot().to_dict()
    return all(
        x == y or (isinstance(x, float) and np.isnan(x) and np.isnan(y))
        for x, y in zip(da.values(), db.values(), strict=True)
    )


@st.composite
def seeded_blocks(draw: st.DrawFn) -> SampleBlock:
    """Long blocks from a drawn seed: keeps hypothesis's input small, the block large."""
    n = draw(st.integers(1, 2000))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    volts = rng.choice([0.0, 101.9, 102.0, 120.0, 138.0, 150.0], size=(2, n))
    amps = rng.choice([0.0, 0.02, 1.0, 30.0, 250.0], size=(2, n)) * rng.uniform(0.5, 1.5, (2, n))
    cos = rng.uniform(-1.0, 1.0, (2, n))
    dt = draw(st.sampled_from([0.1, 1.0, 60.0]))
    return SampleBlock.build(n, dt, voltage_v=volts, current_a=amps, cos_phi=cos)


@settings(max_examples=40, deadline=None)
@given(seq=st.lists(seeded_blocks(), min_size=1, max_size=5))
def test_delivered_never_decreases_and_pulses_within_kh(seq: list[SampleBlock]) -> None:
    core = MeterCore(MeterConfig())
    last = 0
    for block in seq:
        core.advance(block)
        snap = core.snapshot()
        assert snap.energy_delivered_uj >= last
        last = snap.energy_delivered_uj
        energy_wh = snap.energy_delivered_uj / 3.6e9
        for kh in (10, 100, 1000):
            assert abs(getattr(snap, f"pulses_{kh}wh") * kh - energy_wh) <= kh


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"voltage_v": float("nan")}, "voltage_v"),
        ({"current_a": -1.0}, "current_a"),
        ({"current_a": float("inf")}, "current_a"),
        ({"cos_phi": 1.5}, "cos_phi"),
        ({"frequency_hz": 500.0}, "frequency_hz"),
        ({"temperature_c": float("-inf")}, "temperature_c"),
        ({"voltage_v": np.ones(5)}, "voltage_v"),
    ],
)
def test_bad_inputs_name_the_field_and_change_nothing(
    kwargs: dict[str, object], field: str
) -> None:
    core = MeterCore(MeterConfig())
    core.advance(SampleBlock.build(10, 1.0, voltage_v=120.0, current_a=5.0))
    before = core.nv_state()
    with pytest.raises(ValueError, match=field):
        core.advance(SampleBlock.build(3, 1.0, **kwargs))  # type: ignore[arg-type]
    assert core.nv_state() == before
