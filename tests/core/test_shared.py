"""Meters sharing their measurements of one block register exactly what each would alone."""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.core import (
    AccuracyConfig,
    ClearEnergy,
    Event,
    InjectError,
    MeterConfig,
    MeterCore,
    MeterErrorKind,
    MeterModel,
    RegistrationMode,
    SampleBlock,
    SharedMeasurements,
)


def canonical(events: list[Event]) -> list[tuple[str, list[tuple[str, object]]]]:
    out = []
    for ev in events:
        fields = []
        for f in dataclasses.fields(ev):  # type: ignore[arg-type]
            value = getattr(ev, f.name)
            fields.append((f.name, value.tolist() if isinstance(value, np.ndarray) else value))
        out.append((type(ev).__name__, fields))
    return out


CONFIGS = [
    MeterConfig(),
    MeterConfig(),  # twins of the first: share everything
    MeterConfig(registration_mode=RegistrationMode.BIDIRECTIONAL),
    MeterConfig(model=MeterModel.parse("MMS-100A")),
    MeterConfig(accuracy=AccuracyConfig(seed=3)),
]

blocks = st.builds(
    lambda n, volts, amps, pf, dt: SampleBlock.build(
        n, dt, voltage_v=volts, current_a=amps, cos_phi=pf
    ),
    st.integers(1, 400),
    st.tuples(*[st.sampled_from([0.0, 99.0, 120.0, 135.0])] * 2),
    st.tuples(*[st.sampled_from([0.0, 3.0, 30.0, 250.0])] * 2),
    st.tuples(*[st.sampled_from([1.0, 0.4, -0.9])] * 2),
    st.sampled_from([0.05, 1.0, 60.0]),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(blocks, min_size=1, max_size=6), st.integers(0, 4))
def test_shared_measurements_change_nothing(seq: list[SampleBlock], poke: int) -> None:
    shared = SharedMeasurements()
    alone = [MeterCore(c) for c in CONFIGS]
    together = [MeterCore(c, shared=shared) for c in CONFIGS]
    # Meters whose state differs: one has run before, one carries an injected error.
    for cores in (alone, together):
        cores[1].advance(SampleBlock.build(7, 1.0, current_a=20.0))
        cores[poke].apply(InjectError(kind=MeterErrorKind.CALIBRATION))
        cores[0].apply(ClearEnergy())
    for block in seq:
        for a, b in zip(alone, together, strict=True):
            assert canonical(b.advance(block)) == canonical(a.advance(block))
    for a, b in zip(alone, together, strict=True):
        assert repr(b.snapshot()) == repr(a.snapshot())
        assert b.nv_state() == a.nv_state()


def test_the_supply_state_carries_over_for_every_sharing_meter() -> None:
    """Power-up, hysteresis and a dip past the hold-up, two identical meters sharing."""
    steps = [(120.0, 3, 1.0), (99.0, 2, 1.0), (0.0, 1, 0.05), (0.0, 3, 0.05), (99.0, 2, 1.0)]
    seq = [SampleBlock.build(n, dt, voltage_v=v, current_a=10.0) for v, n, dt in steps]
    shared = SharedMeasurements()
    alone = [MeterCore(), MeterCore()]
    together = [MeterCore(shared=shared), MeterCore(shared=shared)]
    for block in seq:
        for a, b in zip(alone, together, strict=True):
            assert canonical(b.advance(block)) == canonical(a.advance(block))
    assert [c.snapshot().powered for c in together] == [False, False]
    assert [c.snapshot().power_up_count for c in together] == [1, 1]
