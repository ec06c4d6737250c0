"""Meter core acceptance tests (issue 2): registration, outputs, power, wiring faults."""

from __future__ import annotations

import numpy as np
import pytest

from twin.core import (
    ClearedCounts,
    ClearEnergy,
    ClearError,
    ClearPulseCounts,
    CountsCleared,
    ErrorCleared,
    ErrorCode,
    ErrorRaised,
    Indicator,
    InjectError,
    LcdScreen,
    MeterConfig,
    MeterCore,
    MeterErrorKind,
    MeterModel,
    PowerLost,
    PowerRestored,
    PulseEdges,
    PulseOutput,
    Registration,
    RegistrationMode,
    SampleBlock,
    StatusBit,
    StepTooCoarse,
    inputs_from_angle,
)


def meter(model: str = "MMD-200A", **kw: object) -> MeterCore:
    return MeterCore(MeterConfig(model=MeterModel.parse(model), **kw))  # type: ignore[arg-type]


def edges_of(events: list[object], output: str) -> PulseEdges:
    found = [e for e in events if isinstance(e, PulseEdges) and e.output == output]
    assert len(found) == 1, f"expected one PulseEdges for output {output}"
    return found[0]


def test_load_led_on_90s_off_90s_at_200w() -> None:
    core = meter("MMS-200A")
    events = core.advance(SampleBlock.build(3600, 1.0, voltage_v=120.0, current_a=200.0 / 120.0))
    led = edges_of(events, "10")  # the load LED mirrors the 10 Wh output
    gaps = np.diff(led.time_s)
    assert len(led) == 40  # 200 Wh in an hour, an edge every 5 Wh
    assert np.allclose(gaps, 90.0, atol=1e-6)
    assert led.closed[0] and not led.closed[1]
    # And the LED indicator of the snapshot follows it: on during 90 s, then off.
    core2 = meter("MMS-200A")
    states = []
    for _ in range(6):
        core2.advance(SampleBlock.build(30, 1.0, voltage_v=120.0, current_a=200.0 / 120.0))
        states.append(bool(core2.snapshot().indicators & 1 << Indicator.LOAD_LED))
    assert states == [False, False, True, True, True, False]


@pytest.mark.parametrize("kh", [10, 100, 1000])
def test_closures_times_kh_match_energy(kh: int) -> None:
    core = meter()
    core.advance(SampleBlock.build(7 * 3600, 1.0, voltage_v=121.3, current_a=[47.7, 12.9]))
    snap = core.snapshot()
    closures = getattr(snap, f"pulses_{kh}wh")
    assert abs(closures * kh - snap.energy_delivered_uj / 3.6e9) <= kh


def test_full_load_pf1_and_pf05_lag_and_lead() -> None:
    core = meter()
    core.advance(SampleBlock.build(3600, 1.0, voltage_v=120.0, current_a=30.0))
    snap = core.snapshot()
    assert snap.energy_l1_wh == 3600 and snap.energy_l2_wh == 3600
    assert snap.energy_delivered_wh == 7200
    for leading in (False, True):
        cos_phi, lead = inputs_from_angle(-60.0 if leading else 60.0)
        assert bool(lead) is leading
        core = meter()
        core.advance(
            SampleBlock.build(
                3600, 1.0, voltage_v=120.0, current_a=30.0, cos_phi=cos_phi, leading=lead
            )
        )
        snap = core.snapshot()
        assert snap.energy_l1_wh == 1800 and snap.energy_l2_wh == 1800
        assert bool(snap.indicators & 1 << Indicator.L1_LEADING) is leading
        assert snap.power_factor_l1 == pytest.approx(0.5)


@pytest.mark.parametrize("volts", [132.0, 138.0])
def test_no_creep_below_starting_current(volts: float) -> None:
    core = meter()
    start = core.config.model.starting_current_a
    events = core.advance(SampleBlock.build(86_400, 1.0, voltage_v=volts, current_a=0.9 * start))
    snap = core.snapshot()
    assert snap.energy_delivered_uj == 0 and snap.pulses_10wh == 0
    assert not any(isinstance(e, PulseEdges) for e in events)
    assert not snap.indicators & 1 << Indicator.LOAD_LED  # steady
    # Just above the starting current it does register.
    core.advance(SampleBlock.build(3600, 1.0, voltage_v=volts, current_a=1.1 * start))
    assert core.snapshot().energy_delivered_uj > 0


def _reversed_l2(mode: RegistrationMode, amps_l2: float = 30.0) -> MeterCore:
    core = meter(registration_mode=mode)
    core.advance(
        SampleBlock.build(
            3600, 1.0, voltage_v=120.0, current_a=[30.0, amps_l2], cos_phi=[1.0, -1.0]
        )
    )
    return core


def test_reversed_ct_on_l2_indications_and_sum_then_clamp() -> None:
    snap = _reversed_l2(RegistrationMode.SUM_THEN_CLAMP).snapshot()
    assert snap.indicators & 1 << Indicator.REVERSE_ARROW
    assert (
        snap.indicators & 1 << Indicator.L2_BLINK and not snap.indicators & 1 << Indicator.L1_BLINK
    )
    assert snap.status_bits & 1 << StatusBit.REVERSE_L2
    assert not snap.status_bits & 1 << StatusBit.REVERSE_L1
    assert snap.error_code == ErrorCode.REVERSED_CT == 5
    assert snap.energy_delivered_wh == 0 and snap.energy_received_wh == 0
    assert snap.power_l2_w == pytest.approx(-3600.0)


def test_reversed_ct_other_registration_modes() -> None:
    per_element = _reversed_l2(RegistrationMode.PER_ELEMENT_CLAMP).snapshot()
    assert per_element.energy_delivered_wh == 3600
    bidi = _reversed_l2(RegistrationMode.BIDIRECTIONAL, amps_l2=40.0).snapshot()
    assert bidi.energy_delivered_wh == 0 and bidi.energy_received_wh == 1200


def test_outage_no_registration_lcd_off_then_boot_and_power_up_count() -> None:
    core = meter()
    core.advance(SampleBlock.build(600, 1.0, voltage_v=120.0, current_a=10.0))
    before = core.snapshot()
    assert before.power_up_count == 1 and before.lcd_screen != LcdScreen.OFF
    events = core.advance(SampleBlock.build(600, 1.0, voltage_v=0.0, current_a=10.0))
    off = core.snapshot()
    assert any(isinstance(e, PowerLost) for e in events)
    assert off.lcd_screen == LcdScreen.OFF and not off.indicators & 1 << Indicator.LCD_ON
    assert off.status_bits & 1 << StatusBit.UNPOWERED
    assert off.energy_delivered_uj == before.energy_delivered_uj
    assert off.output_states == 0
    events = core.advance(SampleBlock.build(1, 1.0, voltage_v=120.0, current_a=0.0))
    back = core.snapshot()
    restored = [e for e in events if isinstance(e, PowerRestored)]
    assert restored and restored[0].time_s == pytest.approx(1200.0)
    assert back.lcd_screen == LcdScreen.BOOT and back.status_bits & 1 << StatusBit.BOOTING
    assert back.power_up_count == 2 and back.uptime_s == 1
    assert back.energy_delivered_uj == before.energy_delivered_uj
    core.advance(SampleBlock.build(10, 1.0, voltage_v=120.0))
    assert core.snapshot().lcd_screen in (LcdScreen.TOTAL_KWH, LcdScreen.MAX_DEMAND_KW)


def test_one_live_line_powers_the_meter_and_flags_the_missing_one() -> None:
    core = meter()
    core.advance(SampleBlock.build(10, 1.0, voltage_v=[120.0, 0.0], current_a=10.0))
    snap = core.snapshot()
    assert snap.powered and snap.status_bits & 1 << StatusBit.VOLTAGE_MISSING_L2
    assert snap.error_code == ErrorCode.VOLTAGE_MISSING
    assert (
        snap.indicators & 1 << Indicator.L1_SYMBOL
        and not snap.indicators & 1 << Indicator.L2_SYMBOL
    )


def test_error_priority_and_events_with_times() -> None:
    core = meter()
    v = np.full((2, 100), 120.0)
    v[0, 40:60] = 145.0  # over-voltage on L1 for 20 s
    amps = np.full((2, 100), 10.0)
    amps[1, 50:70] = 250.0  # over-current on L2, overlapping
    events = core.advance(SampleBlock.build(100, 1.0, voltage_v=v, current_a=amps))
    raised = [(e.time_s, e.code) for e in events if isinstance(e, ErrorRaised)]
    cleared = [(e.time_s, e.code) for e in events if isinstance(e, ErrorCleared)]
    assert raised == [(40.0, 4), (50.0, 6)]
    assert cleared == [(60.0, 4), (70.0, 6)]
    core.apply(InjectError(MeterErrorKind.CALIBRATION))
    core.advance(SampleBlock.build(1, 1.0, voltage_v=145.0))
    assert core.snapshot().error_code == ErrorCode.CALIBRATION  # outranks over-voltage
    core.apply(InjectError(MeterErrorKind.MEMORY))
    assert core.snapshot().error_code == ErrorCode.MEMORY
    core.apply(ClearError(MeterErrorKind.MEMORY))
    core.apply(ClearError(MeterErrorKind.CALIBRATION))
    assert core.snapshot().error_code == ErrorCode.OVER_VOLTAGE


@pytest.mark.parametrize(
    ("kw", "bit"),
    [
        ({"cos_phi": 0.3}, StatusBit.PF_BELOW_RANGE),
        ({"frequency_hz": 40.0}, StatusBit.FREQUENCY_OUT_OF_RANGE),
        ({"temperature_c": 80.0}, StatusBit.TEMPERATURE_OUT_OF_RANGE),
        ({"voltage_v": 90.0}, StatusBit.UNDER_VOLTAGE),
    ],
)
def test_condition_bits(kw: dict[str, float], bit: StatusBit) -> None:
    core = meter()
    args: dict[str, float] = {"voltage_v": 120.0, "current_a": 10.0, **kw}
    if bit is StatusBit.UNDER_VOLTAGE:
        args["voltage_v"] = 120.0
        core.advance(SampleBlock.build(1, 1.0, voltage_v=[120.0, 90.0], current_a=10.0))
    else:
        core.advance(SampleBlock.build(1, 1.0, **args))  # type: ignore[arg-type]
    assert core.snapshot().status_bits & 1 << bit


def test_clear_pulse_counts_and_energy() -> None:
    core = meter()
    core.advance(SampleBlock.build(3600, 1.0, voltage_v=120.0, current_a=30.0))
    assert core.apply(ClearPulseCounts())[0] == CountsCleared(3600.0, ClearedCounts.PULSES)
    snap = core.snapshot()
    assert snap.pulses_10wh == snap.pulses_100wh == snap.pulses_1000wh == 0
    assert snap.energy_delivered_wh == 7200 and snap.counter_counts == 7
    core.advance(SampleBlock.build(360, 1.0, voltage_v=120.0, current_a=30.0))  # 720 Wh more
    assert core.snapshot().pulses_10wh == 72
    (cleared,) = core.apply(ClearEnergy())
    assert isinstance(cleared, CountsCleared) and cleared.what is ClearedCounts.ENERGY
    snap = core.snapshot()
    assert snap.energy_delivered_uj == 0 and snap.pulses_10wh == 0 and snap.counter_counts == 0


def test_single_element_reports_l2_not_available() -> None:
    core = meter("MMS-100A")
    core.advance(SampleBlock.build(10, 1.0, voltage_v=120.0, current_a=[10.0, 50.0]))
    snap = core.snapshot()
    assert snap.elements == 1 and np.isnan(snap.voltage_l2_v) and np.isnan(snap.power_factor_l2)
    assert snap.power_w == pytest.approx(1200.0)
    assert snap.energy_l2_uj == 0


def test_nv_state_restores_exactly_without_power_cycle() -> None:
    core = meter()
    core.advance(SampleBlock.build(5000, 1.0, voltage_v=120.0, current_a=33.3))
    nv = core.nv_state()
    again = MeterCore(core.config, nv)
    a, b = core.snapshot(), again.snapshot()
    for name in ("energy_delivered_uj", "pulses_10wh", "counter_counts", "power_up_count"):
        assert getattr(a, name) == getattr(b, name)
    again.advance(SampleBlock.build(10, 1.0, voltage_v=120.0, current_a=33.3))
    assert again.snapshot().power_up_count == a.power_up_count  # a restart is not a power cycle
    assert type(nv).from_dict(nv.to_dict()) == nv


def test_accuracy_curve_within_class_and_calibration_error() -> None:
    from twin.core import AccuracyConfig

    for seed in range(20):
        for amps, pf, limit in (
            (2.0, 1.0, 0.5),
            (30.0, 1.0, 0.5),
            (200.0, 1.0, 0.5),
            (30.0, 0.5, 0.75),
        ):
            core = meter(accuracy=AccuracyConfig(seed=seed))
            core.advance(SampleBlock.build(3600, 1.0, voltage_v=120.0, current_a=amps, cos_phi=pf))
            true_uj = 2 * 120.0 * amps * pf * 3.6e9
            err_pct = (core.snapshot().energy_delivered_uj / true_uj - 1) * 100
            assert abs(err_pct) <= limit
    core = meter(accuracy=AccuracyConfig(calibration_error_pct=3.0))
    core.advance(SampleBlock.build(3600, 1.0, voltage_v=120.0, current_a=30.0))
    assert core.snapshot().energy_delivered_wh == pytest.approx(7200 * 1.03, abs=1)


def test_errors_cleared_by_a_power_loss_carry_the_loss_time() -> None:
    core = meter()
    core.advance(SampleBlock.build(100, 1.0, voltage_v=120.0, current_a=10.0, cos_phi=[1.0, -1.0]))
    events = core.advance(SampleBlock.build(10, 1.0, voltage_v=0.0))
    cleared = [e for e in events if isinstance(e, ErrorCleared)]
    assert [(e.time_s, e.code) for e in cleared] == [(100.0, ErrorCode.REVERSED_CT)]


def test_registration_series_sums_to_the_registers() -> None:
    core = MeterCore(
        MeterConfig(registration_mode=RegistrationMode.BIDIRECTIONAL), emit_series=True
    )
    volts = np.where(np.arange(600) % 200 < 150, 120.0, 0.0)  # an outage every 200 s
    amps = np.vstack([np.linspace(1.0, 60.0, 600), np.full(600, 20.0)])
    events = core.advance(
        SampleBlock.build(600, 1.0, voltage_v=volts, current_a=amps, cos_phi=[1.0, -1.0])
    )
    (reg,) = [e for e in events if isinstance(e, Registration)]
    snap = core.snapshot()
    assert int(reg.delivered_uj.sum()) == snap.energy_delivered_uj
    assert int(reg.received_uj.sum()) == snap.energy_received_uj > 0
    assert int(reg.l1_uj.sum()) == snap.energy_l1_uj
    assert not reg.power_w[:, volts == 0].any() and reg.power_w.shape == (2, 600)


def test_error_injection_accepts_values_and_refuses_unknown_kinds() -> None:
    core = meter()
    core.advance(SampleBlock.build(10, 1.0, voltage_v=120.0))
    core.apply(InjectError("memory"))  # type: ignore[arg-type]
    assert core.snapshot().error_code == ErrorCode.MEMORY
    before = core.nv_state()
    with pytest.raises(ValueError, match="kind"):
        core.apply(InjectError("bogus"))  # type: ignore[arg-type]
    assert core.nv_state() == before
    core.advance(SampleBlock.build(10, 1.0, voltage_v=120.0))  # still a working meter
    core.apply(ClearError("memory"))  # type: ignore[arg-type]
    assert core.snapshot().error_code == 0


def test_unpowered_readings_are_not_available_while_energies_hold() -> None:
    core = meter()
    core.advance(SampleBlock.build(600, 1.0, voltage_v=120.0, current_a=22.5))
    live = core.snapshot()
    assert live.power_w == 5400.0
    core.advance(SampleBlock.build(600, 1.0, voltage_v=0.0, current_a=22.5))
    off = core.snapshot()
    for name in (
        "power_w",
        "power_l1_w",
        "voltage_l1_v",
        "voltage_l1_l2_v",
        "current_l1_a",
        "power_factor_l1",
        "frequency_hz",
        "temperature_c",
    ):
        assert np.isnan(getattr(off, name)), name
    assert off.energy_delivered_uj == live.energy_delivered_uj == 5400 * 600 * 10**6
    assert off.pulses_10wh == live.pulses_10wh and off.demand_max_kw == live.demand_max_kw
    assert np.isnan(MeterCore().snapshot().voltage_l1_v)  # a new meter has measured nothing


@pytest.mark.parametrize(("size", "factor"), [(None, 1.02), (3.0, 1.03), (-1.5, 0.985)])
def test_calibration_error_registers_wrong_while_active(size: float | None, factor: float) -> None:
    core = meter()
    core.advance(SampleBlock.build(3600, 1.0, voltage_v=120.0, current_a=25.0))  # 6 kWh
    core.apply(InjectError(MeterErrorKind.CALIBRATION, size))
    assert core.snapshot().error_code == ErrorCode.CALIBRATION
    core.advance(SampleBlock.build(3600, 1.0, voltage_v=120.0, current_a=25.0))
    assert core.snapshot().power_w == pytest.approx(6000.0 * factor)
    restored = MeterCore(core.config, core.nv_state())  # survives a restart
    core.apply(ClearError(MeterErrorKind.CALIBRATION))
    core.advance(SampleBlock.build(3600, 1.0, voltage_v=120.0, current_a=25.0))
    assert core.snapshot().energy_delivered_uj == round((12_000 + 6000 * factor) * 3.6e9)
    restored.advance(SampleBlock.build(1, 1.0, voltage_v=120.0, current_a=25.0))
    assert restored.snapshot().power_w == pytest.approx(6000.0 * factor)
    with pytest.raises(ValueError, match="error_pct"):
        InjectError(MeterErrorKind.MEMORY, 2.0)
    with pytest.raises(ValueError, match="error_pct"):
        InjectError(MeterErrorKind.CALIBRATION, 80.0)


@pytest.mark.parametrize(
    ("hz", "raised"),
    [(60.0, False), (50.0, False), (61.0, False), (49.2, False), (57.0, True), (62.0, True),
     (55.0, True), (48.0, True), (45.0, True)],
)  # fmt: skip
def test_frequency_error_follows_the_50_60_hz_rating(hz: float, raised: bool) -> None:
    core = meter()
    core.advance(SampleBlock.build(10, 1.0, voltage_v=120.0, frequency_hz=hz))
    snap = core.snapshot()
    assert bool(snap.status_bits & 1 << StatusBit.FREQUENCY_OUT_OF_RANGE) is raised
    assert (snap.error_code == ErrorCode.FREQUENCY) is raised


def test_a_step_coarser_than_an_output_is_reported_once() -> None:
    core = meter()
    events = core.advance(SampleBlock.build(60, 1.0, voltage_v=120.0, current_a=30.0))
    assert not any(isinstance(e, StepTooCoarse) for e in events)  # 2 Wh per sample
    events = core.advance(SampleBlock.build(4, 60.0, voltage_v=120.0, current_a=30.0))
    notices = [e for e in events if isinstance(e, StepTooCoarse)]
    # 120 Wh per sample: two or more edges of the 10 Wh and 100 Wh outputs.
    assert [n.output for n in notices] == [PulseOutput.KH_10, PulseOutput.KH_100]
    assert notices[0].time_s == 60.0 and notices[0].dt_s == 60.0
    events = core.advance(SampleBlock.build(4, 60.0, voltage_v=120.0, current_a=30.0))
    assert not any(isinstance(e, StepTooCoarse) for e in events)
