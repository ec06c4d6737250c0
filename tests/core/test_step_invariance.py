"""Any step that divides the profile gives what the 1-second run gives (issue 10).

Random piecewise-constant profiles whose segments last whole multiples of the step
are run at 1 s and at the step. Demand, maximum demand, energies, pulse counts and
error events must be identical, pulse edge times within one step. The expected
delivered energy is computed here from the segments (phasors and the supply's
hysteresis written out independently of the core).
"""

from __future__ import annotations

import cmath
import math
from dataclasses import dataclass

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.core import (
    DemandClosed,
    ErrorCleared,
    ErrorRaised,
    Event,
    MeterConfig,
    MeterCore,
    PulseEdges,
    SampleBlock,
    expand_closes,
)


@dataclass(frozen=True)
class Segment:
    steps: int
    volts: tuple[float, float]
    amps: tuple[float, float]
    cos_phi: tuple[float, float]
    ct_line: tuple[int, int]
    reversed_: tuple[bool, bool]
    frequency_hz: float


segments = st.builds(
    Segment,
    steps=st.integers(1, 4),
    volts=st.tuples(*[st.sampled_from([0.0, 90.0, 100.0, 120.0, 125.0, 140.0])] * 2),
    amps=st.tuples(*[st.sampled_from([0.0, 4.0, 20.0, 50.0, 240.0])] * 2),
    cos_phi=st.tuples(*[st.sampled_from([1.0, 0.5, 0.0, -1.0, -0.5])] * 2),
    ct_line=st.sampled_from([(0, 1), (0, 1), (1, 0), (0, 0)]),
    reversed_=st.sampled_from([(False, False), (False, False), (True, False), (False, True)]),
    frequency_hz=st.sampled_from([60.0, 60.0, 57.0, 50.0]),
)


def unit_s(step_s: int) -> int:
    """Segments last whole multiples of this: the step, or its multiple up to 5 min."""
    return step_s * max(1, 300 // step_s)


def run(profile: list[Segment], unit: int, step_s: int) -> tuple[MeterCore, list[Event]]:
    """The profile, segments ``steps * unit`` seconds long, at ``step_s`` samples."""
    core = MeterCore(MeterConfig())
    events: list[Event] = []
    for seg in profile:
        block = SampleBlock.build(
            seg.steps * unit // step_s,
            float(step_s),
            voltage_v=np.array(seg.volts),
            current_a=np.array(seg.amps),
            cos_phi=np.array(seg.cos_phi),
            ct_line=np.array(seg.ct_line),
            ct_reversed=np.array(seg.reversed_),
            frequency_hz=seg.frequency_hz,
        )
        events += core.advance(block)
    return core, events


def expected_delivered_uj(profile: list[Segment], seg_s: int) -> float:
    """Sum-then-clamp energy of the profile, from phasors and the supply's hysteresis."""
    powered = False
    total = 0.0
    for seg in profile:
        supply = max(seg.volts)
        if supply >= 102.0:
            powered = True
        elif supply < 96.0:
            powered = False  # every segment lasts longer than the 100 ms hold-up
        if not powered:
            continue
        watts = 0.0
        for k in (0, 1):
            c = seg.ct_line[k]
            if seg.amps[c] < 0.045:  # starting current of a 200 A meter
                continue
            v = cmath.rect(seg.volts[k], math.radians((0.0, 180.0)[k]))
            i = cmath.rect(seg.amps[c], math.radians((0.0, 180.0)[c]) - math.acos(seg.cos_phi[c]))
            watts += (v * (-i if seg.reversed_[k] else i).conjugate()).real
        total += max(watts, 0.0) * seg.steps * seg_s * 1e6
    return total


def _summary(core: MeterCore, events: list[Event]) -> dict[str, object]:
    snap = core.snapshot()
    return {
        "energies": (
            snap.energy_delivered_uj,
            snap.energy_received_uj,
            snap.energy_l1_uj,
            snap.energy_l2_uj,
        ),
        "pulses": (snap.pulses_10wh, snap.pulses_100wh, snap.pulses_1000wh, snap.counter_counts),
        "demand": (snap.demand_kw, snap.demand_max_kw, snap.demand_max_at_s, snap.demand_valid),
        "power": (snap.powered, snap.power_up_count, snap.error_code),
        "closes": [
            (e.time_s, e.subinterval_kw, e.demand_kw, e.demand_max_kw)
            for e in expand_closes(events)
            if isinstance(e, DemandClosed)
        ],
        "errors": sorted(
            (e.time_s, type(e).__name__, e.code)
            for e in events
            if isinstance(e, ErrorRaised | ErrorCleared)
        ),
    }


def _edges(events: list[Event]) -> dict[str, list[tuple[float, bool]]]:
    out: dict[str, list[tuple[float, bool]]] = {}
    for e in events:
        if isinstance(e, PulseEdges):
            out.setdefault(e.output, []).extend(
                zip(e.time_s.tolist(), e.closed.tolist(), strict=True)
            )
    return out


@settings(max_examples=40, deadline=None)
@given(
    profile=st.lists(segments, min_size=1, max_size=8),
    step_s=st.sampled_from([2, 5, 7, 60, 300, 600, 3600]),
)
def test_any_dividing_step_matches_the_one_second_run(profile: list[Segment], step_s: int) -> None:
    unit = unit_s(step_s)
    fine, fine_events = run(profile, unit, 1)
    coarse, coarse_events = run(profile, unit, step_s)
    assert _summary(coarse, coarse_events) == _summary(fine, fine_events)
    expected = expected_delivered_uj(profile, unit)
    assert math.isclose(fine.snapshot().energy_delivered_uj, expected, rel_tol=1e-9, abs_tol=1e3)
    edges_fine, edges_coarse = _edges(fine_events), _edges(coarse_events)
    assert edges_fine.keys() == edges_coarse.keys()
    for output, fine_list in edges_fine.items():
        coarse_list = edges_coarse[output]
        assert [c for _, c in coarse_list] == [c for _, c in fine_list]
        gaps = np.abs(np.array([t for t, _ in coarse_list]) - [t for t, _ in fine_list])
        assert gaps.size == 0 or gaps.max() <= step_s
