"""Wiring as phasors: CTs on the wrong phase or reversed, split phase and 120/208 V wye.

Expected values come from complex phasors computed here (P + jQ = V * conj(I)),
independently of the core.
"""

from __future__ import annotations

import cmath
import math

import numpy as np
import pytest

from twin.core import (
    Indicator,
    MeterConfig,
    MeterCore,
    SampleBlock,
    Service,
    inputs_from_angle,
)


def phasor_pq(
    v: tuple[float, float],
    amps: tuple[float, float],
    lag_deg: tuple[float, float],
    angles: tuple[float, float],
    ct_line: tuple[int, int],
    reversed_: tuple[bool, bool],
) -> list[complex]:
    """Per element P + jQ: its line's voltage times the conjugate of the current its CT sees."""
    out = []
    for k in (0, 1):
        c = ct_line[k]
        volt = cmath.rect(v[k], math.radians(angles[k]))
        cur = cmath.rect(amps[c], math.radians(angles[c] - lag_deg[c]))
        if reversed_[k]:
            cur = -cur
        out.append(volt * cur.conjugate())
    return out


def measure(
    amps: tuple[float, float],
    lag_deg: tuple[float, float] = (0.0, 0.0),
    service: Service = Service.SPLIT_PHASE_120_240,
    ct_line: tuple[int, int] = (0, 1),
    reversed_: tuple[bool, bool] = (False, False),
) -> MeterCore:
    cos_phi, leading = inputs_from_angle(np.array(lag_deg))
    core = MeterCore(MeterConfig())
    core.advance(
        SampleBlock.build(
            3600,
            1.0,
            voltage_v=120.0,
            current_a=np.array(amps),
            cos_phi=cos_phi,
            leading=leading,
            line_angle_deg=service.line_angle_deg,
            ct_line=np.array(ct_line),
            ct_reversed=np.array(reversed_),
        )
    )
    return core


def test_swapped_cts_on_split_phase_read_the_other_line_negated() -> None:
    # Issue 10: 20 A on L1 and 5 A on L2 at 120 V, PF 1, CTs swapped.
    snap = measure((20.0, 5.0), ct_line=(1, 0)).snapshot()
    assert (snap.power_l1_w, snap.power_l2_w) == (-600.0, -2400.0)
    assert (snap.current_l1_a, snap.current_l2_a) == (5.0, 20.0)
    assert snap.status_bits & 0b11 == 0b11  # reverse L1 and L2
    assert snap.energy_delivered_uj == 0  # sum_then_clamp: nothing registered
    expected = phasor_pq((120, 120), (20, 5), (0, 0), (0, 180), (1, 0), (False, False))
    assert [snap.power_l1_w, snap.power_l2_w] == pytest.approx([z.real for z in expected])


@pytest.mark.parametrize("lag", [30.0, -30.0])
def test_reversed_ct_flips_real_and_reactive_power_and_lead_lag(lag: float) -> None:
    straight = measure((30.0, 30.0), (lag, lag)).snapshot()
    rev = measure((30.0, 30.0), (lag, lag), reversed_=(False, True)).snapshot()
    assert rev.power_l2_w == pytest.approx(-straight.power_l2_w)
    assert rev.power_factor_l2 == pytest.approx(straight.power_factor_l2)
    lead_l1 = bool(rev.indicators & 1 << Indicator.L1_LEADING)
    lead_l2 = bool(rev.indicators & 1 << Indicator.L2_LEADING)
    assert lead_l1 is (lag < 0) and lead_l2 is (lag > 0)  # Q flipped on L2 only
    pq = phasor_pq((120, 120), (30, 30), (lag, lag), (0, 180), (0, 1), (False, True))
    assert rev.power_l2_w == pytest.approx(pq[1].real) and (pq[1].imag < 0) is lead_l2


def test_wye_120_208_line_to_line_voltage_and_wrong_phase() -> None:
    wye = Service.WYE_120_208
    snap = measure((10.0, 10.0), service=wye).snapshot()
    assert snap.voltage_l1_l2_v == pytest.approx(120.0 * math.sqrt(3))  # 207.8 V
    assert measure((10.0, 10.0)).snapshot().voltage_l1_l2_v == 240.0
    for lag in (0.0, 25.0, -25.0):
        snap = measure((20.0, 5.0), (lag, lag), wye, ct_line=(1, 0)).snapshot()
        pq = phasor_pq((120, 120), (20, 5), (lag, lag), wye.line_angle_deg, (1, 0), (False,) * 2)
        assert snap.power_l1_w == pytest.approx(pq[0].real)
        assert snap.power_l2_w == pytest.approx(pq[1].real)
        assert snap.power_factor_l1 == pytest.approx(abs(pq[0].real) / abs(pq[0]))
        assert bool(snap.indicators & 1 << Indicator.L1_LEADING) is (pq[0].imag < 0)
        # Energy: the positive part of the sum over the hour (here always negative).
        total_w = pq[0].real + pq[1].real
        assert snap.energy_delivered_uj == pytest.approx(max(total_w, 0.0) * 3.6e9, abs=3600)


def test_one_ct_on_the_wrong_line_with_both_loads_equal_is_a_reversal() -> None:
    # Both CTs on L1's conductor, split phase: element 2 sees L1's current, negated.
    snap = measure((12.0, 7.0), ct_line=(0, 0)).snapshot()
    assert (snap.power_l1_w, snap.power_l2_w) == (1440.0, -1440.0)


def test_wiring_may_change_within_a_block() -> None:
    lines = np.zeros((2, 10), np.int64)
    lines[1] = 1
    lines[:, 5:] = [[1], [0]]  # swapped for the second half
    core = MeterCore(MeterConfig(registration_mode=1))  # per-element clamp
    core.advance(
        SampleBlock.build(10, 360.0, voltage_v=120.0, current_a=[20.0, 5.0], ct_line=lines)
    )
    # First half: 2400 + 600 W for 30 min; second half nothing positive.
    assert core.snapshot().energy_delivered_wh == 1500
