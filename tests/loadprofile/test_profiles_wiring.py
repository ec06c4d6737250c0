"""Wiring in profiles: the service and CT placement reach the real core as phasors.

Expected powers are computed here from complex phasors (``tests.helpers``), or
quoted from the issue, never from the core's own wiring code.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import element_power_w, implied_energy
from twin.core import Indicator, MeterConfig, MeterCore, Service, Snapshot
from twin.drive import drive, register
from twin.loadprofile import SERVICES, Profile, Wiring, load_profile


def profile(tmp_path: Path, body: str, name: str = "w") -> Profile:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"schema: 1\nname: {name}\n{body}")
    return load_profile(path)


def run(p: Profile, seconds: int, t0_s: float = 0.0) -> Snapshot:
    """The snapshot of a fresh meter after ``seconds`` 1-s samples of the profile."""
    core = MeterCore(MeterConfig())
    if t0_s:
        for _ in drive(core, p.sampler(), 0.0, 1.0, round(t0_s)):
            pass
    for _ in drive(core, p.sampler(), t0_s, 1.0, seconds):
        pass
    return core.snapshot()


SWAPPED = """segments:
  - {kind: constant, duration: 1h, L1: {current: 20}, L2: {current: 5}}
"""


@pytest.mark.parametrize(
    "wiring",
    [
        "wiring: {CT1: {line: L2}, CT2: {line: L1}}\n",
        "events:\n  - {at: 0, kind: ct_wrong_phase, line: both, duration: 1h}\n",
    ],
    ids=["wiring-key", "event"],
)
def test_swapped_cts_give_the_physics_not_a_sign_flip(tmp_path: Path, wiring: str) -> None:
    # Issue 10's acceptance figure: 20 A on L1, 5 A on L2, 120 V, PF 1, CTs swapped.
    p = profile(tmp_path, SWAPPED + wiring)
    snap = run(p, 60)
    assert (snap.power_l1_w, snap.power_l2_w) == (-600.0, -2400.0)
    assert (snap.current_l1_a, snap.current_l2_a) == (5.0, 20.0)
    assert snap.energy_delivered_uj == 0  # sum_then_clamp registers nothing
    stats = register(p.sampler(), 0.0, 1.0, 3600)
    assert (stats.l1_wh, stats.l2_wh, stats.delivered_wh) == (-600.0, -2400.0, 0.0)


def test_straight_wiring_is_the_default_and_costs_nothing(tmp_path: Path) -> None:
    p = profile(tmp_path, SWAPPED)
    assert p.wiring == Wiring() and p.wiring.straight
    assert p.service is Service.SPLIT_PHASE_120_240
    block = p.sampler().block(0.0, 1.0, 100)
    assert block.ct_line is None and block.ct_reversed is None
    assert block.line_angle_deg == (0.0, 180.0)


def test_service_names_are_the_cores_services() -> None:
    assert set(SERVICES.values()) == set(Service)
    assert SERVICES["split-phase-120-240"] is Service.SPLIT_PHASE_120_240
    assert SERVICES["wye-120-208"] is Service.WYE_120_208


def test_wye_service_reads_208_v_line_to_line(tmp_path: Path) -> None:
    p = profile(tmp_path, "service: wye-120-208\n" + SWAPPED)
    assert p.sampler().block(0.0, 1.0, 1).line_angle_deg == (0.0, 120.0)
    assert run(p, 10).voltage_l1_l2_v == pytest.approx(120.0 * math.sqrt(3))  # 207.8 V
    assert run(profile(tmp_path, SWAPPED, "sp"), 10).voltage_l1_l2_v == 240.0


@pytest.mark.parametrize("lead", [False, True])
def test_reversed_ct_flips_p_and_q_and_lead_lag(tmp_path: Path, lead: bool) -> None:
    flag = str(lead).lower()
    body = f"""segments:
  - {{kind: constant, duration: 1h, L1: {{current: 30, pf: 0.8, leading: {flag}}},
     L2: {{current: 30, pf: 0.8, leading: {flag}}}}}
wiring: {{CT2: {{reversed: true}}}}
"""
    snap = run(profile(tmp_path, body), 10)
    assert snap.power_l1_w == pytest.approx(120 * 30 * 0.8)
    assert snap.power_l2_w == pytest.approx(-120 * 30 * 0.8)
    assert snap.power_factor_l2 == pytest.approx(0.8)
    lead_l1 = bool(snap.indicators & 1 << Indicator.L1_LEADING)
    lead_l2 = bool(snap.indicators & 1 << Indicator.L2_LEADING)
    assert lead_l1 is lead and lead_l2 is not lead


def test_ct_events_are_relative_to_the_profiles_wiring(tmp_path: Path) -> None:
    # CT2 is mounted backwards from the start; the ct_reversed event is the fix.
    body = (
        SWAPPED
        + """wiring: {CT2: {reversed: true}}
events:
  - {at: 30min, kind: ct_reversed, line: L2, duration: 30min}
  - {at: 10min, kind: ct_wrong_phase, line: L1, duration: 10min}
"""
    )
    p = profile(tmp_path, body)
    block = p.sampler().block(0.0, 60.0, 60)
    assert block.ct_reversed is not None and block.ct_line is not None
    assert block.ct_reversed[1].tolist() == [True] * 30 + [False] * 30
    assert block.ct_line[0].tolist() == [0] * 10 + [1] * 10 + [0] * 40
    assert run(p, 10).power_l2_w == -600.0
    assert run(p, 10, t0_s=900).power_l1_w == -600.0  # element 1 on L2, 180 degrees off
    assert run(p, 10, t0_s=2400).power_l2_w == 600.0


def test_wrong_phase_on_a_wye_is_120_degrees_off(tmp_path: Path) -> None:
    p = load_profile("wye-120-208")
    assert p.service is Service.WYE_120_208
    before, during = run(p, 10, t0_s=3000), run(p, 10, t0_s=3600)
    # Element 1 sees L2's 15 A (PF 0.95 lagging) against its own voltage, 120 degrees off.
    delta = math.radians(0.0 - (120.0 - math.degrees(math.acos(0.95))))
    assert during.power_l1_w == pytest.approx(120 * 15 * math.cos(delta))
    assert during.power_l1_w == pytest.approx(-368.25, abs=0.01)
    assert bool(during.indicators & 1 << Indicator.L1_LEADING)  # Q < 0 on element 1
    assert before.power_l1_w == pytest.approx(120 * 20 * 0.97)
    assert during.power_l2_w == before.power_l2_w == pytest.approx(120 * 15 * 0.95)


@pytest.mark.parametrize("name", ["ct-wrong-phase", "ct-reversed", "wye-120-208"])
def test_shipped_wiring_profiles_register_the_phasor_integral(name: str) -> None:
    sampler = load_profile(name).sampler()
    n = round(sampler.duration_s)
    stats = register(sampler, 0.0, 1.0, n)
    oracle = implied_energy(sampler, 1.0)
    assert stats.l1_wh == pytest.approx(oracle.l1_wh, abs=1e-6)
    assert stats.l2_wh == pytest.approx(oracle.l2_wh, abs=1e-6)
    assert stats.delivered_wh == pytest.approx(oracle.total_wh, abs=1e-6)


def test_shipped_ct_wrong_phase_differs_from_a_sign_flip() -> None:
    block = load_profile("ct-wrong-phase").sampler().block(0.0, 1.0, 1)
    physics = element_power_w(block)[:, 0]
    sign_flip = -(block.voltage_v * block.current_a * block.cos_phi)[:, 0]
    assert physics.tolist() == pytest.approx([-648.0, -2736.0])
    assert not np.allclose(physics, sign_flip)
