"""Differential tests of the bank: rows advanced together = each meter advanced alone.

Random fleets (models, demand and registration settings, boot times, accuracy
curves, restored states) step the same random blocks (dips that power meters down,
loads that make pulse edges, sometimes several per sample), with random commands
applied to some meters between blocks. Every meter's events, snapshots and
non-volatile state must be the same whether its row is advanced with the others in
one call or as a lone core.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from twin.core import (
    AccuracyConfig,
    ClearEnergy,
    ClearError,
    ClearPulseCounts,
    Command,
    DemandConfig,
    DemandMethod,
    Event,
    InjectError,
    MeterBank,
    MeterConfig,
    MeterCore,
    MeterErrorKind,
    MeterModel,
    NewDemandSubinterval,
    NvState,
    Reconfigure,
    RegistrationMode,
    ResetMaxDemand,
    SampleBlock,
    advance_rows,
)

MODELS = ("MMD-200A", "MMS-100A", "MMD-100A/1000", "MMU-0.1A:50")
DEMANDS = (
    DemandConfig(),
    DemandConfig(1, 1, DemandMethod.SLIDING, 1),
    DemandConfig(2, 2, DemandMethod.BLOCK, 1),
    DemandConfig(1, 1, DemandMethod.THERMAL, 0),
)


def normal(event: Event) -> tuple[Any, ...]:
    """An event as comparable values (arrays as lists)."""
    values = []
    for f in dataclasses.fields(event):
        v = getattr(event, f.name)
        values.append(v.tolist() if isinstance(v, np.ndarray) else v)
    return (type(event).__name__, *values)


def random_config(rng: np.random.Generator, i: int) -> MeterConfig:
    # few distinct settings, so rows share partitions and also differ
    return MeterConfig(
        model=MeterModel.parse(MODELS[int(rng.integers(0, 2 if i % 3 else len(MODELS)))]),
        serial_number=f"SN{i:04d}",
        registration_mode=RegistrationMode(int(rng.integers(0, 2))),
        demand=DEMANDS[int(rng.integers(0, len(DEMANDS)))],
        accuracy=AccuracyConfig(seed=None if rng.random() < 0.8 else int(rng.integers(1, 9))),
        boot_s=float(rng.choice([0.0, 2.0, 5.0])),
    )


def random_block(rng: np.random.Generator) -> SampleBlock:
    n = int(rng.integers(1, 40))
    dt = float(rng.choice([0.05, 1.0, 7.0, 60.0]))
    volts = np.full((2, n), 120.0)
    if rng.random() < 0.3:  # a dip or an outage somewhere in the block
        a = int(rng.integers(0, n))
        volts[:, a : a + int(rng.integers(1, 6))] = float(rng.choice([0.0, 90.0, 100.0]))
    amps = rng.choice([0.0, 2.0, 40.0, 210.0], size=(2, n)) * rng.random((2, n))
    if rng.random() < 0.1:
        amps[:] = 0.0
    cos = rng.choice([1.0, 0.5, -0.8], size=(2, n))
    return SampleBlock.build(n, dt, voltage_v=volts, current_a=amps, cos_phi=cos)


def random_command(rng: np.random.Generator) -> Command:
    kind = int(rng.integers(0, 9))
    error = MeterErrorKind(str(rng.choice([k.value for k in MeterErrorKind])))
    commands: list[Command] = [
        ResetMaxDemand(),
        NewDemandSubinterval(),
        ClearPulseCounts(),
        ClearEnergy(),
        InjectError(error),
        ClearError(error),
        InjectError(MeterErrorKind.CALIBRATION, 2.0),
        Reconfigure(registration_mode=int(rng.integers(0, 3))),
        Reconfigure(demand_interval_min=2, demand_subintervals=1, demand_max_window_h=1),
    ]
    return commands[kind]


def restored_state(rng: np.random.Generator, config: MeterConfig) -> NvState | None:
    if rng.random() < 0.5:
        return None
    core = MeterCore(config)
    for _ in range(int(rng.integers(1, 6))):
        core.advance(random_block(rng))
    return core.nv_state()


@pytest.mark.parametrize("seed", range(12))
def test_rows_advanced_together_match_each_meter_alone(seed: int) -> None:
    rng = np.random.default_rng(seed)
    size = int(rng.integers(2, 14))
    configs = [random_config(rng, i) for i in range(size)]
    states = [restored_state(rng, c) for c in configs]
    alone = [MeterCore(c, nv) for c, nv in zip(configs, states, strict=True)]
    bank = MeterBank()
    together = [MeterCore.in_bank(bank, c, nv) for c, nv in zip(configs, states, strict=True)]
    rows = np.array([core.row for core in together], np.int64)
    for step in range(40):
        block = random_block(rng)
        events = advance_rows(bank, rows, block)
        for i, core in enumerate(alone):
            expected = [normal(e) for e in core.advance(block)]
            got = [normal(e) for e in events.get(together[i].row, [])]
            assert got == expected, f"seed {seed} step {step} meter {i}"
            assert repr(together[i].snapshot()) == repr(core.snapshot())
        for i in rng.choice(size, size=int(rng.integers(0, 3)), replace=False).tolist():
            command = random_command(rng)
            got = [normal(e) for e in together[i].apply(command)]
            assert got == [normal(e) for e in alone[i].apply(command)]
    for a, t in zip(alone, together, strict=True):
        assert t.nv_state() == a.nv_state()
        assert repr(t.snapshot()) == repr(a.snapshot())


def test_rows_that_share_a_block_can_be_advanced_in_any_grouping() -> None:
    """A subset of rows stepped while the others wait, then all together again."""
    rng = np.random.default_rng(99)
    configs = [random_config(rng, i) for i in range(6)]
    bank = MeterBank()
    together = [MeterCore.in_bank(bank, c) for c in configs]
    alone = [MeterCore(c) for c in configs]
    first = np.array([together[0].row, together[3].row], np.int64)
    block = random_block(rng)
    advance_rows(bank, first, block)
    for i in (0, 3):
        alone[i].advance(block)
    for _ in range(10):
        block = random_block(rng)
        advance_rows(bank, np.array([c.row for c in together], np.int64), block)
        for core in alone:
            core.advance(block)
    for a, t in zip(alone, together, strict=True):
        assert t.nv_state() == a.nv_state()


def test_energy_stays_exact_past_int64() -> None:
    """Registers near 2**63 µJ go on as exact integers, in a bank as alone."""
    big = 2**63 - 10**12
    nv = NvState(energy_delivered_uj=big, energy_l1_uj=2**64, power_up_count=1, powered=True)
    bank = MeterBank()
    rows = [MeterCore.in_bank(bank, MeterConfig(), nv), MeterCore.in_bank(bank, MeterConfig())]
    alone = MeterCore(MeterConfig(), nv)
    block = SampleBlock.build(3600, 1.0, voltage_v=120.0, current_a=100.0)
    advance_rows(bank, np.array([c.row for c in rows], np.int64), block)
    alone.advance(block)
    # 2 x 12 kW for an hour at PF 1 is 24 kWh: 8.64e13 µJ, exactly
    assert rows[0].nv_state().energy_delivered_uj == big + 24_000 * 3_600_000_000
    assert rows[0].nv_state().energy_l1_uj == 2**64 + 12_000 * 3_600_000_000
    assert rows[0].nv_state() == alone.nv_state()
    assert rows[1].nv_state().energy_delivered_uj == 24_000 * 3_600_000_000
