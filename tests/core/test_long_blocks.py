"""Long blocks take the core's vectorised paths; the same samples in short blocks do not.

A day-long block is measured with reused buffers, rounded to microjoules by vector
passes, its status bits proved uniform from extremes, its pulse edges found on one
nested grid and its sliding demand closed as arrays. Fed the same samples in blocks
of 200, the core takes the per-sample paths instead (rint and a cast, per-sample
status tests, one close per call). Both must give identical events, snapshots and
non-volatile state, and the delivered energy must match an integration written
independently of the core (tests.helpers).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import block_pieces, element_power_w, events_by_kind
from twin.core import (
    DemandConfig,
    DemandMethod,
    Event,
    MeterConfig,
    MeterCore,
    PulseEdges,
    RegistrationMode,
    SampleBlock,
)

N = 20_000
SHORT = 200


def day(seed: int, export: bool) -> SampleBlock:
    rng = np.random.default_rng(seed)
    t = np.arange(N, dtype=np.float64)
    amps = np.vstack(
        [
            20.0 + 15.0 * np.sin(t / 700.0) ** 2 + rng.uniform(0.0, 2.0, N),
            8.0 + 5.0 * np.cos(t / 1300.0) ** 2,
        ]
    )
    volts = np.vstack([120.0 + np.sin(t / 5000.0), 119.0 + np.cos(t / 7000.0)])
    volts[:, 9_000:9_003] = 0.0  # a dip past the hold-up: two powered runs
    temperature = np.full(N, 25.0)
    temperature[15_000:15_100] = 75.0  # an error raised and cleared mid-block
    cos_phi = [0.97, -0.92 if export else 0.92]
    return SampleBlock.build(
        N, 1.0, voltage_v=volts, current_a=amps, cos_phi=cos_phi, temperature_c=temperature
    )


@pytest.mark.parametrize(
    ("export", "mode", "window_h"),
    [
        (False, RegistrationMode.SUM_THEN_CLAMP, 1),
        (False, RegistrationMode.SUM_THEN_CLAMP, 0),
        (True, RegistrationMode.BIDIRECTIONAL, 1),
        (True, RegistrationMode.PER_ELEMENT_CLAMP, 24),
    ],
)
def test_a_long_block_equals_short_ones(
    export: bool, mode: RegistrationMode, window_h: int
) -> None:
    demand = DemandConfig(15, 3, DemandMethod.SLIDING, window_h)
    config = MeterConfig(registration_mode=mode, demand=demand)
    block = day(7, export)
    whole, split = MeterCore(config), MeterCore(config)
    ev_whole = whole.advance(block) + whole.advance(block)  # buffers reused
    ev_split: list[Event] = []
    for _ in range(2):
        for piece in block_pieces(block, SHORT):
            ev_split.extend(split.advance(piece))
    assert sum(isinstance(e, PulseEdges) for e in ev_whole) > 0
    assert events_by_kind(ev_whole) == events_by_kind(ev_split)
    assert repr(whole.snapshot()) == repr(split.snapshot())
    assert whole.nv_state() == split.nv_state()


def test_delivered_energy_matches_an_independent_integration() -> None:
    block = day(3, export=False)
    core = MeterCore(MeterConfig())
    core.advance(block)
    p = element_power_w(block)
    powered = np.ones(N, bool)
    powered[9_000:9_003] = False
    expected_uj = float(np.maximum(p[0] + p[1], 0.0)[powered].sum()) * 1e6
    # Each element's energy is rounded to a microjoule per sample: at most 1 µJ apart.
    assert abs(core.snapshot().energy_delivered_uj - expected_uj) <= N + 1e-6 * expected_uj
