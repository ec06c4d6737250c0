"""Demand: sliding, block and thermal methods; maximum demand over the runtime window."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from twin.core import (
    DemandClosed,
    DemandCloses,
    DemandConfig,
    DemandMethod,
    MeterConfig,
    MeterCore,
    NewDemandSubinterval,
    Reconfigure,
    ResetMaxDemand,
    SampleBlock,
    expand_closes,
)

# 6 kW on a dual-element meter: 120 V x 25 A on each element.
SIX_KW_AMPS = 25.0


def run_step(method: DemandMethod) -> list[DemandClosed]:
    core = MeterCore(MeterConfig(demand=DemandConfig(method=method)))
    core.advance(SampleBlock.build(1800, 1.0, voltage_v=120.0, current_a=0.0))
    events = core.advance(SampleBlock.build(1800, 1.0, voltage_v=120.0, current_a=SIX_KW_AMPS))
    return [e for e in expand_closes(events) if isinstance(e, DemandClosed)]


def test_sliding_window_6kw_step_gives_2_4_6() -> None:
    closes = run_step(DemandMethod.SLIDING)
    assert [round(c.demand_kw, 9) for c in closes[:4]] == [2.0, 4.0, 6.0, 6.0]
    assert [c.time_s for c in closes[:3]] == [2100.0, 2400.0, 2700.0]


def test_block_method_6kw_at_block_close() -> None:
    closes = run_step(DemandMethod.BLOCK)
    assert [round(c.demand_kw, 9) for c in closes[:3]] == [0.0, 0.0, 6.0]
    assert closes[2].time_s == 2700.0


def test_thermal_reaches_90_percent_in_one_interval() -> None:
    closes = run_step(DemandMethod.THERMAL)
    assert closes[2].demand_kw == pytest.approx(5.4, rel=1e-9)  # 90 % of 6 kW after 15 min
    assert closes[5].demand_kw == pytest.approx(5.94, rel=1e-9)  # 99 % after two intervals


def test_max_demand_updates_once_per_24h_after_the_first_day() -> None:
    core = MeterCore(MeterConfig())
    hour = 3600

    def run(hours: float, amps: float) -> None:
        core.advance(
            SampleBlock.build(round(hours * hour / 60), 60.0, voltage_v=120.0, current_a=amps)
        )

    run(2, 10.0)  # 2.4 kW during the first day: shown at once
    assert core.snapshot().demand_max_kw == pytest.approx(2.4)
    run(22, 5.0)  # rest of day 1 lower
    run(2, 20.0)  # day 2 peak 4.8 kW: not shown before the day ends
    snap = core.snapshot()
    assert snap.demand_max_kw == pytest.approx(2.4)
    run(22, 5.0)
    snap = core.snapshot()
    assert snap.demand_max_kw == pytest.approx(4.8)  # the previous window's largest
    assert snap.demand_max_at_s == 24 * hour + 15 * 60  # first full window after the step
    run(24, 5.0)  # a quiet day: the shown maximum drops to that day's largest
    assert core.snapshot().demand_max_kw == pytest.approx(1.2)


def test_reset_max_and_new_subinterval_commands() -> None:
    core = MeterCore(MeterConfig())
    core.advance(SampleBlock.build(3600, 1.0, voltage_v=120.0, current_a=SIX_KW_AMPS))
    assert core.snapshot().demand_max_kw == pytest.approx(6.0)
    core.advance(SampleBlock.build(900, 1.0, voltage_v=120.0, current_a=10.0))  # 2.4 kW
    core.apply(ResetMaxDemand())
    snap = core.snapshot()
    assert snap.demand_max_kw == pytest.approx(2.4)  # reset to the present demand
    assert snap.demand_max_at_s == 4500
    core.advance(SampleBlock.build(100, 1.0, voltage_v=120.0, current_a=SIX_KW_AMPS))
    assert core.snapshot().demand_subinterval_elapsed_s == 100
    core.apply(NewDemandSubinterval())
    assert core.snapshot().demand_subinterval_elapsed_s == 0
    events = core.advance(SampleBlock.build(300, 1.0, voltage_v=120.0, current_a=SIX_KW_AMPS))
    closes = [e for e in expand_closes(events) if isinstance(e, DemandClosed)]
    assert len(closes) == 1 and closes[0].time_s == pytest.approx(4600.0 + 300.0)


def test_demand_valid_after_first_window_and_reconfigure() -> None:
    core = MeterCore(MeterConfig())
    core.advance(SampleBlock.build(899, 1.0, voltage_v=120.0, current_a=10.0))
    assert core.snapshot().demand_valid == 0
    core.advance(SampleBlock.build(1, 1.0, voltage_v=120.0, current_a=10.0))
    assert core.snapshot().demand_valid == 1
    core.apply(Reconfigure(demand_interval_min=30, demand_subintervals=6))
    snap = core.snapshot()
    assert (snap.demand_interval_min, snap.demand_subintervals) == (30, 6)
    assert snap.demand_valid == 0
    with pytest.raises(ValueError, match="demand_subintervals"):
        core.apply(Reconfigure(demand_subintervals=7))
    assert core.snapshot().demand_subintervals == 6


def test_power_up_restarts_the_runtime_window() -> None:
    core = MeterCore(MeterConfig())
    core.advance(SampleBlock.build(3600, 1.0, voltage_v=120.0, current_a=SIX_KW_AMPS))
    core.advance(SampleBlock.build(60, 1.0, voltage_v=0.0))
    core.advance(SampleBlock.build(1, 1.0, voltage_v=120.0))
    snap = core.snapshot()
    assert snap.demand_max_kw == 0.0 and snap.demand_valid == 0 and snap.uptime_s == 1
    assert math.isclose(float(np.float64(snap.energy_delivered_uj) / 3.6e9), 6000.0, rel_tol=1e-12)


def test_restart_from_nv_state_continues_demand_exactly() -> None:
    def block(n: int, amps: float) -> SampleBlock:
        return SampleBlock.build(n, 1.0, voltage_v=120.0, current_a=amps)

    whole = MeterCore(MeterConfig())
    first = MeterCore(MeterConfig())
    for core in (whole, first):
        core.advance(block(1000, 10.0))
        core.apply(NewDemandSubinterval())  # an off-grid sub-interval survives too
        core.advance(block(130, 20.0))
    restarted = MeterCore(MeterConfig(), first.nv_state())
    closes = []
    for core in (whole, restarted):
        events = core.advance(block(1000, 30.0))
        closes.append(
            [
                (round(e.demand_kw, 12), e.subinterval_kw)
                for e in expand_closes(events)
                if isinstance(e, DemandClosed)
            ]
        )
    assert closes[0] == closes[1] and len(closes[0]) == 3
    assert whole.nv_state() == restarted.nv_state()
    snap_a, snap_b = whole.snapshot(), restarted.snapshot()
    assert (snap_a.demand_kw, snap_a.demand_valid, snap_a.demand_subinterval_elapsed_s) == (
        snap_b.demand_kw,
        snap_b.demand_valid,
        snap_b.demand_subinterval_elapsed_s,
    )


def test_reset_after_the_first_window_keeps_present_demand_shown() -> None:
    core = MeterCore(MeterConfig())
    core.advance(SampleBlock.build(25 * 60, 60.0, voltage_v=120.0, current_a=SIX_KW_AMPS))
    core.apply(ResetMaxDemand())
    core.advance(SampleBlock.build(3600, 1.0, voltage_v=120.0, current_a=SIX_KW_AMPS))
    assert core.snapshot().demand_max_kw == pytest.approx(6.0)


def test_reconfigure_keeps_the_running_window_maximum() -> None:
    def run(core: MeterCore, hours: float, amps: float) -> None:
        core.advance(SampleBlock.build(round(hours * 60), 60.0, voltage_v=120.0, current_a=amps))

    plain, written = MeterCore(MeterConfig()), MeterCore(MeterConfig())
    for core in (plain, written):
        run(core, 24, 2.0)  # first window: 0.48 kW
        run(core, 1, SIX_KW_AMPS)  # 6 kW peak in the second window
        run(core, 9, 2.0)
    written.apply(Reconfigure(demand_method=0, demand_subintervals=5))
    for core in (plain, written):
        run(core, 15, 2.0)
    assert written.snapshot().demand_max_kw == plain.snapshot().demand_max_kw
    assert plain.snapshot().demand_max_kw == pytest.approx(6.0)


def test_nv_state_round_trip_goes_through_demand_state() -> None:
    core = MeterCore(MeterConfig(demand=DemandConfig(20, 4, DemandMethod.THERMAL, 12)))
    core.advance(SampleBlock.build(4000, 1.0, voltage_v=120.0, current_a=SIX_KW_AMPS))
    core.apply(ResetMaxDemand())
    core.advance(SampleBlock.build(77, 1.0, voltage_v=120.0, current_a=3.0))
    nv = core.nv_state()
    assert nv.demand_config == (20, 4, 2, 12)
    # Restored from nv, with a different configured demand: the meter keeps what it ran.
    again = MeterCore(MeterConfig(), nv)
    assert again.nv_state() == nv
    snap = again.snapshot()
    assert (snap.demand_interval_min, snap.demand_subintervals, snap.demand_method) == (
        20,
        4,
        DemandMethod.THERMAL,
    )
    assert snap.demand_max_kw == core.snapshot().demand_max_kw > 0


def _constant(step_s: int, hours: int, amps: float) -> MeterCore:
    core = MeterCore(MeterConfig())
    core.advance(SampleBlock.build(hours * 3600 // step_s, float(step_s), current_a=amps))
    return core


@pytest.mark.parametrize("step_s", [1, 7, 600, 3600])
def test_12kw_constant_load_gives_12kw_demand_at_any_step(step_s: int) -> None:
    # Issue 10: 48 kW at 1 h steps and 16 kW at 10 min before samples were split.
    hours = 7  # 7 h divides into 7 s steps too
    core = _constant(step_s, hours, 50.0)  # 2 x 120 V x 50 A = 12 kW
    snap = core.snapshot()
    assert snap.demand_kw == 12.0 and snap.demand_max_kw == 12.0
    assert snap.demand_max_at_s == 15 * 60  # the first full window, at every step
    assert snap.energy_delivered_uj == 12_000 * hours * 3_600_000_000  # never short


def test_steps_give_identical_demand_events() -> None:
    one = [(e.time_s, e.demand_kw, e.demand_max_kw) for e in _demand_events(1)]
    assert len(one) == 48  # 4 h of 5-min sub-intervals
    for step in (5, 60, 600, 3600):
        events = _demand_events(step)
        assert [(e.time_s, e.demand_kw, e.demand_max_kw) for e in events] == one


def _demand_events(step_s: int) -> list[DemandClosed]:
    core = MeterCore(MeterConfig())
    out: list[DemandClosed] = []
    n = 3600 // step_s
    for amps in (10.0, 50.0, 0.0, 35.0):  # 1 h each
        events = core.advance(SampleBlock.build(n, float(step_s), current_a=amps))
        out += [e for e in expand_closes(events) if isinstance(e, DemandClosed)]
    return out


def test_max_window_0_holds_the_maximum_at_any_age() -> None:
    def run(core: MeterCore, hours: int, amps: float) -> None:
        core.advance(SampleBlock.build(hours * 60, 60.0, current_a=amps))

    from_start = MeterCore(MeterConfig(demand=DemandConfig(max_window_h=0)))
    written = MeterCore(MeterConfig())
    for core in (from_start, written):
        run(core, 30, 5.0)
    written.apply(Reconfigure(demand_max_window_h=0))  # after the first 24 h
    for core in (from_start, written):
        run(core, 2, 40.0)  # 9.6 kW peak at 30-32 h
        run(core, 60, 5.0)
        snap = core.snapshot()
        assert snap.demand_max_kw == pytest.approx(9.6)
        assert 30 * 3600 < snap.demand_max_at_s <= 32 * 3600
        core.apply(ResetMaxDemand())
        assert core.snapshot().demand_max_kw == pytest.approx(1.2)


def test_a_run_closes_as_one_columnar_event_and_expands_in_place() -> None:
    """A day at 1 s closes 288 five-minute sub-intervals: one DemandCloses, whose
    records are the closes one by one, between the events around it."""
    core = MeterCore(MeterConfig())
    block = SampleBlock.build(86_400, 1.0, voltage_v=120.0, current_a=SIX_KW_AMPS)
    events = core.advance(block)
    (closes,) = [e for e in events if isinstance(e, DemandCloses)]
    assert len(closes) == 288
    assert closes.time_s.tolist() == [300.0 * (i + 1) for i in range(288)]
    assert closes.subinterval_kw.tolist() == pytest.approx([6.0] * 288)
    assert closes.demand_kw[:3].tolist() == pytest.approx([2.0, 4.0, 6.0])  # 3 x 5 min sliding
    assert closes.demand_max_kw[-1] == pytest.approx(6.0)
    records = closes.each()
    arrays = (closes.time_s, closes.subinterval_kw, closes.demand_kw, closes.demand_max_kw)
    columns = [c.tolist() for c in arrays]
    assert [(r.time_s, r.subinterval_kw, r.demand_kw, r.demand_max_kw) for r in records] == list(
        zip(*columns, strict=True)
    )
    assert records == [DemandClosed(*fields) for fields in zip(*columns, strict=True)]
    with pytest.raises(dataclasses.FrozenInstanceError):
        records[0].demand_kw = 0.0  # type: ignore[misc]
    assert len(set(records)) == 288  # hashable, as frozen records are
    expanded = expand_closes(events)
    at = events.index(closes)
    assert expanded[:at] == events[:at]
    assert expanded[at : at + 288] == records
    assert expanded[at + 288 :] == events[at + 1 :]
    assert not any(isinstance(e, DemandCloses) for e in expanded)
