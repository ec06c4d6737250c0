"""Supply: hold-up through short dips, hysteresis between power-down and power-up."""

from __future__ import annotations

import numpy as np
import pytest

from twin.core import (
    ErrorRaised,
    MeterConfig,
    MeterCore,
    PowerLost,
    PowerRestored,
    SampleBlock,
    StatusBit,
    SupplyConfig,
)


def _run(volts: np.ndarray, dt_s: float, config: MeterConfig | None = None) -> list[object]:
    core = MeterCore(config or MeterConfig())
    core.advance(SampleBlock.build(100, 0.01, voltage_v=120.0, current_a=10.0))  # powered
    events: list[object] = []
    events += core.advance(
        SampleBlock.build(len(volts), dt_s, voltage_v=volts[None, :], current_a=10.0)
    )
    return events


def _dip(ms: int, dt_ms: int = 10) -> np.ndarray:
    v = np.full(200, 120.0)
    v[50 : 50 + ms // dt_ms] = 0.0
    return v


def test_a_50ms_dip_rides_through_and_a_1s_dip_powers_down() -> None:
    assert not any(isinstance(e, PowerLost) for e in _run(_dip(50), 0.01))
    assert not any(isinstance(e, PowerLost) for e in _run(_dip(100), 0.01))  # = hold-up
    v = np.full(300, 120.0)
    v[50:150] = 0.0  # 1 s at 10 ms samples
    events = _run(v, 0.01)
    (lost,) = [e for e in events if isinstance(e, PowerLost)]
    (back,) = [e for e in events if isinstance(e, PowerRestored)]
    # Down once the hold-up is over (0.5 s into the block + 100 ms), up when it returns.
    assert lost.time_s == pytest.approx(1.0 + 0.5 + 0.1)
    assert back.time_s == pytest.approx(1.0 + 1.5)
    # A one-second sample of nothing is longer than the hold-up too.
    events = _run(np.array([120.0, 0.0, 120.0]), 1.0)
    assert [type(e) for e in events if isinstance(e, PowerLost | PowerRestored)] == [
        PowerLost,
        PowerRestored,
    ]


def test_the_dip_timer_carries_across_blocks() -> None:
    core = MeterCore()
    core.advance(SampleBlock.build(10, 0.01, voltage_v=120.0))
    events: list[object] = []
    for _ in range(15):  # 15 blocks of one 10 ms sample at 0 V: 150 ms in all
        events += core.advance(SampleBlock.build(1, 0.01, voltage_v=0.0))
    (lost,) = [e for e in events if isinstance(e, PowerLost)]
    assert lost.time_s == pytest.approx(0.1 + 0.1)


def test_alternating_101_9_and_102_1_volts_does_not_chatter() -> None:
    volts = np.where(np.arange(3600) % 2 == 0, 102.1, 101.9)
    core = MeterCore()
    events = core.advance(SampleBlock.build(3600, 1.0, voltage_v=volts, current_a=10.0))
    assert sum(isinstance(e, PowerRestored) for e in events) == 1
    assert not any(isinstance(e, PowerLost) for e in events)
    snap = core.snapshot()
    assert snap.power_up_count == 1 and snap.powered
    # The meter ran the whole hour: 2 elements x 10 A at the sample voltages.
    expected_uj = sum(2 * v * 10.0 for v in volts.tolist()) * 1e6
    assert snap.energy_delivered_uj == pytest.approx(expected_uj, abs=3600)


def test_hysteresis_band_and_under_voltage_warning() -> None:
    core = MeterCore()
    # 100 V from cold: between power-down (96 V) and power-up (102 V): stays off.
    core.advance(SampleBlock.build(10, 1.0, voltage_v=100.0, current_a=10.0))
    assert not core.snapshot().powered
    core.advance(SampleBlock.build(10, 1.0, voltage_v=102.0, current_a=10.0))
    assert core.snapshot().powered
    events = core.advance(SampleBlock.build(10, 1.0, voltage_v=97.0, current_a=10.0))
    snap = core.snapshot()
    assert snap.powered and snap.status_bits & 1 << StatusBit.UNDER_VOLTAGE
    assert [e.code for e in events if isinstance(e, ErrorRaised)] == [3]
    assert snap.voltage_l1_v == 97.0
    core.advance(SampleBlock.build(10, 1.0, voltage_v=95.0, current_a=10.0))
    assert not core.snapshot().powered


def test_hold_up_and_thresholds_come_from_the_configuration() -> None:
    config = MeterConfig(supply=SupplyConfig(power_down_v=90.0, hold_up_s=2.0))
    assert not any(isinstance(e, PowerLost) for e in _run(_dip(1500), 0.01, config))
    assert not any(isinstance(e, PowerLost) for e in _run(_dip(2000, 1000), 1.0, config))
    assert any(isinstance(e, PowerLost) for e in _run(_dip(3000, 1000), 1.0, config))
    core = MeterCore(config)
    core.advance(SampleBlock.build(5, 1.0, voltage_v=120.0))
    core.advance(SampleBlock.build(5, 1.0, voltage_v=92.0))
    assert core.snapshot().powered  # above this meter's 90 V power-down
    with pytest.raises(ValueError, match="power_down_v"):
        SupplyConfig(power_down_v=110.0)
    with pytest.raises(ValueError, match="hold_up_s"):
        SupplyConfig(hold_up_s=-1.0)


def test_block_keeps_the_range_its_validation_found() -> None:
    volts = np.array([[120.0, 130.5, 99.0], [118.0, 121.0, 125.0]])
    block = SampleBlock.build(3, 1.0, voltage_v=volts, current_a=[7.5, 2.0])
    assert block.voltage_range_v == (99.0, 130.5)
    assert block.current_range_a == (2.0, 7.5)


@pytest.mark.parametrize("l2_v", [0.0, 95.0, 120.0])
def test_one_line_above_power_up_keeps_a_long_block_powered(l2_v: float) -> None:
    """The block's lowest voltage proves power only when it is above power-up; a line
    below it leaves the supply to the per-line lowest (the other line powers the meter)."""
    n = 4096
    volts = np.vstack([np.full(n, 120.0), np.full(n, l2_v)])
    core = MeterCore(MeterConfig())
    core.advance(SampleBlock.build(n, 1.0, voltage_v=volts, current_a=10.0))
    snap = core.snapshot()
    assert snap.powered and snap.power_up_count == 1
    assert snap.uptime_s == pytest.approx(n)
