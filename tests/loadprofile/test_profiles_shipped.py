"""Acceptance: every shipped profile validates, and the core registers what the sampler says."""

from __future__ import annotations

import pytest

from tests.helpers import implied_energy
from twin.core import (
    DEFAULT_CALIBRATION_ERROR_PCT,
    SUPPLY_MIN_V,
    AccuracyConfig,
    MeterConfig,
    MeterCore,
    MeterModel,
    RegistrationMode,
    SupplyConfig,
)
from twin.drive import drive
from twin.loadprofile import load_profile, shipped_names, shipped_profiles

DAY_S = 86_400.0


def test_at_least_twelve_shipped_profiles_validate() -> None:
    profiles = shipped_profiles()
    assert len(profiles) >= 12
    assert {p.name for p in profiles} == set(shipped_names())
    for p in profiles:
        assert p.description, f"{p.name} has no description"
        assert p.duration_s > 0


@pytest.mark.parametrize("name", shipped_names())
def test_core_registers_the_sampler_integral(name: str) -> None:
    profile = load_profile(name)
    sampler = profile.sampler()
    window_s = min(profile.duration_s, DAY_S)
    # A step that keeps the test fast but still resolves short events of the profile.
    dt_s = 10.0 if window_s >= 6 * 3600 else 1.0
    n = round(window_s / dt_s)
    core = MeterCore(
        MeterConfig(
            model=MeterModel.parse("MMD-200A"),
            registration_mode=RegistrationMode.SUM_THEN_CLAMP,
            accuracy=AccuracyConfig(seed=None),
            # The sampler's integral powers the meter at 102 V exactly: no hysteresis.
            supply=SupplyConfig(power_down_v=SUPPLY_MIN_V, hold_up_s=0.0),
        ),
        emit_edges=False,
    )
    for _ in drive(core, sampler, 0.0, dt_s, n):
        pass
    registered_wh = core.snapshot().energy_delivered_uj / 3.6e9
    expected_wh = implied_energy(sampler, dt_s, 0.0, window_s).total_wh
    if name == "meter-faults":  # a calibration error from 90 min on: +2 % registration
        after_wh = implied_energy(sampler, dt_s, 5400.0, window_s - 5400.0).total_wh
        expected_wh += after_wh * DEFAULT_CALIBRATION_ERROR_PCT / 100.0
    if expected_wh == 0:
        assert registered_wh == 0
    else:
        assert registered_wh == pytest.approx(expected_wh, rel=1e-4)
