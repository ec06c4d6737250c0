"""Profile choices for the meter: registration mode, demand, calibration error, model warning."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin.cli import main
from twin.core import (
    DEFAULT_CALIBRATION_ERROR_PCT,
    ClearError,
    DemandConfig,
    DemandMethod,
    InjectError,
    MeterConfig,
    MeterCore,
    MeterErrorKind,
    MeterModel,
    Reconfigure,
    RegistrationMode,
)
from twin.drive import drive, register
from twin.loadprofile import MeterSettings, Profile, load_profile, shipped_names

CONSTANT = """segments:
  - {kind: constant, duration: 2h, L1: {current: 20}, L2: {power: -1200}}
"""


def profile(tmp_path: Path, body: str, name: str = "s") -> Profile:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"schema: 1\nname: {name}\n{body}")
    return load_profile(path)


def test_settings_are_optional_and_default_to_none(tmp_path: Path) -> None:
    p = profile(tmp_path, CONSTANT)
    assert p.meter_settings == MeterSettings()
    assert p.meter_settings.given() == {}
    assert p.meter_settings.reconfigure() is None
    config = MeterConfig()
    assert p.meter_settings.apply(config) == config


def test_settings_parse_to_the_cores_enums_and_apply(tmp_path: Path) -> None:
    body = (
        CONSTANT
        + """registration_mode: bidirectional
demand_method: block
demand_interval_min: 30
demand_subintervals: 6
demand_max_window_h: 0
"""
    )
    s = profile(tmp_path, body).meter_settings
    assert s == MeterSettings(RegistrationMode.BIDIRECTIONAL, DemandMethod.BLOCK, 30, 6, 0)
    assert s.given() == {
        "registration_mode": "bidirectional",
        "demand_method": "block",
        "demand_interval_min": 30,
        "demand_subintervals": 6,
        "demand_max_window_h": 0,
    }
    config = s.apply(MeterConfig())
    assert config.registration_mode is RegistrationMode.BIDIRECTIONAL
    assert config.demand == DemandConfig(30, 6, DemandMethod.BLOCK, 0)
    assert s.reconfigure() == Reconfigure(30, 6, 1, 0, 2)
    # A running meter takes the same choices through the core command.
    core = MeterCore(MeterConfig())
    core.apply(s.reconfigure())  # type: ignore[arg-type]
    snap = core.snapshot()
    assert (snap.registration_mode, snap.demand_method) == (2, 1)
    assert (snap.demand_interval_min, snap.demand_subintervals, snap.demand_max_window_h) == (
        30,
        6,
        0,
    )


def test_settings_left_out_keep_the_front_ends_values(tmp_path: Path) -> None:
    s = profile(tmp_path, CONSTANT + "demand_method: thermal\n").meter_settings
    base = MeterConfig(registration_mode=RegistrationMode.PER_ELEMENT_CLAMP)
    config = s.apply(base)
    assert config.registration_mode is RegistrationMode.PER_ELEMENT_CLAMP
    assert config.demand == DemandConfig(method=DemandMethod.THERMAL)


def test_a_combination_the_core_refuses_is_refused_on_apply(tmp_path: Path) -> None:
    s = profile(tmp_path, CONSTANT + "demand_subintervals: 5\n").meter_settings  # 15 / 5 ok
    with pytest.raises(ValueError, match="demand_subintervals 5 does not divide 12 min"):
        s.apply(MeterConfig(demand=DemandConfig(interval_min=12, subintervals=3)))


# L2 exports 1200 W for 2 h; L1 imports 2400 W in the first hour only.
EXPORTING = """segments:
  - {kind: constant, duration: 1h, L1: {current: 20}, L2: {power: -1200}}
  - {kind: constant, duration: 1h, L1: {current: 0}, L2: {power: -1200}}
"""


def test_register_honours_the_profiles_registration_mode(tmp_path: Path) -> None:
    plain = profile(tmp_path, EXPORTING, "plain")
    stats = register(plain.sampler(), 0.0, 60.0, 120)
    assert stats.registration_mode is RegistrationMode.SUM_THEN_CLAMP
    assert stats.delivered_wh == pytest.approx(1200.0)
    p = profile(tmp_path, EXPORTING + "registration_mode: per_element_clamp\n", "pec")
    stats = register(p.sampler(), 0.0, 60.0, 120, settings=p.meter_settings)
    assert stats.registration_mode is RegistrationMode.PER_ELEMENT_CLAMP
    assert stats.delivered_wh == pytest.approx(2400.0)
    p = profile(tmp_path, EXPORTING + "registration_mode: bidirectional\n", "bi")
    stats = register(p.sampler(), 0.0, 60.0, 120, settings=p.meter_settings)
    assert (stats.delivered_wh, stats.received_wh) == pytest.approx((1200.0, 1200.0))


def test_profiles_show_prints_the_wiring_and_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bi.yaml"
    body = EXPORTING + "registration_mode: bidirectional\nservice: wye-120-208\n"
    path.write_text(f"schema: 1\nname: bi\n{body}")
    assert main(["profiles", "show", str(path), "--step", "1min"]) == 0
    out = capsys.readouterr().out
    assert "wiring:      wye-120-208\n" in out
    assert "settings:    registration_mode=bidirectional\n" in out
    assert "registered:  1.200000 kWh (bidirectional, step 60 s)" in out
    assert "received:    1.200000 kWh" in out


# ------------------------------------------------------------ calibration error


def test_calibration_error_carries_its_size_to_the_core(tmp_path: Path) -> None:
    body = (
        CONSTANT
        + """events:
  - {at: 30min, kind: calibration_error, percent: -5, duration: 1h}
  - {at: 100min, kind: calibration_error}
"""
    )
    p = profile(tmp_path, body)
    assert p.sampler().commands_between(0.0, 7200.0) == [
        (1800.0, InjectError(MeterErrorKind.CALIBRATION, -5.0)),
        (5400.0, ClearError(MeterErrorKind.CALIBRATION)),
        (6000.0, InjectError(MeterErrorKind.CALIBRATION)),
    ]
    assert p.events[0].describe() == "30min calibration_error -5% for 1h"
    # 1200 W net (L1 2400 W, L2 exports 1200 W): 30 min exact, 1 h at -5 %,
    # 10 min exact, 20 min at the core's default size.
    core = MeterCore(MeterConfig())
    for _ in drive(core, p.sampler(), 0.0, 1.0, 7200):
        pass
    expected_wh = 1200 * (0.5 + 0.95 + 1 / 6 + (1 + DEFAULT_CALIBRATION_ERROR_PCT / 100) / 3)
    assert core.snapshot().energy_delivered_uj / 3.6e9 == pytest.approx(expected_wh, rel=1e-9)


# ----------------------------------------------------------- single element


def test_loads_l2_is_a_static_bound(tmp_path: Path) -> None:
    assert profile(tmp_path, CONSTANT, "a").loads_l2()
    only_l1 = "segments:\n  - {kind: constant, duration: 1h, L1: {current: 20}}\n"
    assert not profile(tmp_path, only_l1, "b").loads_l2()
    surge = only_l1 + "events:\n  - {at: 10, kind: surge, line: L2, current: 5, duration: 1}\n"
    assert profile(tmp_path, surge, "c").loads_l2()
    factor = only_l1 + "events:\n  - {at: 10, kind: surge, line: L2, factor: 5, duration: 1}\n"
    assert not profile(tmp_path, factor, "d").loads_l2()  # 5 x 0 A is still 0 A
    noisy = only_l1 + "noise:\n  - {quantity: L2.current, amplitude: 0.5}\n"
    assert profile(tmp_path, noisy, "e").loads_l2()
    relative = only_l1 + "noise:\n  - {quantity: current, amplitude: 5%}\n"
    assert not profile(tmp_path, relative, "f").loads_l2()


def test_every_shipped_profile_that_samples_l2_current_says_it_loads_l2() -> None:
    for name in shipped_names():
        p = load_profile(name)
        sampler = p.sampler()
        step = 60.0 if p.duration_s > 86_400 else 1.0
        n = min(round(p.duration_s / step), 86_400)
        sampled = float(sampler.block(0.0, step, n).current_a[1].max()) > 0
        assert not sampled or p.loads_l2(), name


def test_model_warning_only_for_single_element_on_l2(tmp_path: Path) -> None:
    p = profile(tmp_path, CONSTANT)
    mms = MeterModel.parse("MMS-200A")
    warning = p.model_warning(mms)
    assert warning is not None and "MMS-200A" in warning and "L2" in warning
    assert p.model_warning(MeterModel.parse("MMD-200A")) is None
    only_l1 = "segments:\n  - {kind: constant, duration: 1h, L1: {current: 20}}\n"
    assert profile(tmp_path, only_l1, "l1").model_warning(mms) is None


def test_profiles_show_model_warns_once_and_registers_l1_only(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["profiles", "show", "full-load-then-faults", "--model", "MMS-200A"]) == 0
    out, err = capsys.readouterr()
    assert err.count("warning:") == 1 and "single-element" in err
    assert "meter:       MMS-200A (ideal)" in out
    assert "energy L2:   0.000000 kWh" in out
    assert main(["profiles", "show", "full-load-then-faults"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and "meter:       MMD-200A (ideal)" in out


def test_profiles_show_bad_model_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles", "show", "default", "--model", "MMX-9A"]) == 1
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert out == "" and len(lines) == 1 and "--model: unknown model name 'MMX-9A'" in lines[0]
