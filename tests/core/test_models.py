"""Model catalog, meter configuration and the demand-setting rules."""

from __future__ import annotations

import pytest

from twin.core import (
    AccuracyConfig,
    DemandConfig,
    DemandMethod,
    MeterConfig,
    MeterModel,
    RegistrationMode,
    SampleBlock,
    validate_demand_settings,
)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: SampleBlock.build(0, 1.0), "n"),
        (lambda: SampleBlock.build(5, 0.0), "dt_s"),
        (lambda: SampleBlock.build(5, -1.0), "dt_s"),
        (lambda: SampleBlock.build(5, float("nan")), "dt_s"),
        (lambda: MeterModel.parse("MMX-200A"), "model"),
        (lambda: MeterModel.parse("MMD-300A"), "model"),
        (lambda: MeterModel.parse("MMD-0.1A:0"), "CT primary"),
        (lambda: MeterModel.parse("MMD-200A:400"), "primary rated"),
        (lambda: MeterConfig(boot_s=-1), "boot_s"),
        (lambda: MeterConfig(serial_number=""), "serial_number"),
        (lambda: AccuracyConfig(seed=-1), "seed"),
        (lambda: AccuracyConfig(calibration_error_pct=float("nan")), "calibration_error_pct"),
    ],
)
def test_bad_parameters(call: object, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        call()  # type: ignore[operator]


def test_catalog_parses() -> None:
    m = MeterModel.parse("MMU-0.2A:400/100")
    assert (m.elements, m.ct_primary_a, m.ct_secondary_ma, m.counter_wh_per_count) == (
        2,
        400,
        200,
        100,
    )
    assert not m.has_12vdc_output and m.max_current_a == pytest.approx(440.0)
    assert MeterModel.parse("MMS-100A").elements == 1


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"interval_min": 0}, "demand_interval_min 0; expected 1..60"),
        ({"interval_min": 61}, "demand_interval_min 61; expected 1..60"),
        ({"interval_min": 15, "subintervals": 16}, "demand_subintervals 16; expected 1..15"),
        ({"interval_min": 15, "subintervals": 7}, "demand_subintervals 7 does not divide 15 min"),
        ({"method": 3}, "demand_method 3; expected 0..2"),
        ({"max_window_h": 169}, "demand_max_window_h 169; expected 0 or 1..168"),
        ({"registration_mode": 3}, "registration_mode 3; expected 0..2"),
        ({"interval_min": -1}, "demand_interval_min -1; expected 1..60"),
        ({"interval_min": True}, "demand_interval_min True; expected an integer 1..60"),
        ({"max_window_h": 2.5}, "demand_max_window_h 2.5; expected an integer 0 or 1..168"),
    ],
)
def test_demand_settings_refused_with_the_setting_and_range(
    settings: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError) as info:
        validate_demand_settings(**settings)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_demand_settings_accepted_and_config_uses_the_same_rules() -> None:
    validate_demand_settings(60, 15, DemandMethod.THERMAL, 0, RegistrationMode.BIDIRECTIONAL)
    validate_demand_settings(subintervals=7)  # no interval given: range only
    validate_demand_settings()
    with pytest.raises(ValueError, match="demand_subintervals 4 does not divide 15 min"):
        DemandConfig(15, 4)
    assert DemandConfig(30, 6, 2, 0).as_tuple() == (30, 6, 2, 0)
    assert DemandConfig(method=1).method is DemandMethod.BLOCK  # type: ignore[arg-type]


def test_sample_block_broadcasts_and_names_shape_errors() -> None:
    block = SampleBlock.build(4, 0.5, voltage_v=[120.0, 118.0], current_a=3.0)
    assert block.voltage_v.shape == (2, 4) and block.dt_us == 500_000
    assert block.voltage_v[1, 3] == 118.0 and block.n == 4
    with pytest.raises(ValueError, match=r"current_a: shape \(3,\)"):
        SampleBlock.build(4, 1.0, current_a=[1.0, 2.0, 3.0])
