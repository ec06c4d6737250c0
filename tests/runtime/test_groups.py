"""Meters stepped in groups (rows of one bank, one core call) read as if each stepped
alone; an unpowered meter keeps its image; commands and overrides split a group."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin.control import ElementLoad, SetLoad
from twin.core import ClearEnergy, InjectError, MeterCore, MeterErrorKind, ResetMaxDemand
from twin.drive import drive
from twin.loadprofile import Sampler
from twin.runtime.committing import GATHER_ROWS, gather
from twin.runtime.config import TwinConfig
from twin.runtime.groups import MeterGroup, fleet_totals, step_units
from twin.runtime.meters import LiveMeter, nv_items
from twin.runtime.twin import Twin

OUTAGE = """\
schema: 1
name: outage
segments:
  - kind: constant
    duration: 1000h
    L1: {voltage: 120, current: 30, pf: 0.9}
    L2: {voltage: 120, current: 12, pf: 1.0}
events:
  - {at: 100s, kind: outage, duration: 60s}
  - {at: 400s, kind: memory_error, duration: 300s}
  - {at: 500s, kind: demand_reset}
"""


@pytest.fixture
def outage(tmp_path: Path) -> str:
    path = tmp_path / "outage.yaml"
    path.write_text(OUTAGE)
    return str(path)


def _alone(meter: LiveMeter) -> tuple[MeterCore, Sampler]:
    return MeterCore(meter.config), Sampler(meter.profile.spec, 0)  # a noiseless profile


async def test_a_group_reads_as_its_meters_stepped_alone(outage: str) -> None:
    cfg = TwinConfig(profile=outage, port=0, speed=None, meters=6, serial_number="GR00000001")
    async with Twin(cfg) as twin:
        units = step_units(twin.meters)
        assert len(units) == 1 and isinstance(units[0], MeterGroup)
        alone = [_alone(m) for m in twin.meters]
        commands = {
            90: [(1, InjectError(MeterErrorKind.CALIBRATION, 3.0)), (2, ClearEnergy())],
            300: [(3, ResetMaxDemand())],
        }
        t_s = 0
        for seconds in (30, 60, 45, 165, 300, 600):
            twin.step(seconds)
            for core, sampler in alone:
                for _ in drive(core, sampler, float(t_s), 1.0, seconds):
                    pass
            t_s += seconds
            for i, command in commands.get(t_s, []):
                twin.meters[i].apply(command)
                alone[i][0].apply(command)
            for meter, (core, _) in zip(twin.meters, alone, strict=True):
                assert repr(meter.snapshot) == repr(core.snapshot()), f"{meter.serial} {t_s}"
                assert meter.nv_state() == core.nv_state()
            # a checkpoint reads every row at once: the same states
            assert nv_items(twin.meters) == [
                (m.serial, c.nv_state()) for m, (c, _) in zip(twin.meters, alone, strict=True)
            ]
        assert twin.meters[0].snapshot.energy_delivered_wh > 0
        energies = [m.snapshot.energy_delivered_wh for m in twin.meters]
        assert energies[1] != energies[0] == energies[3]  # the calibration error and the clear


async def test_an_unpowered_meter_keeps_its_image_a_running_one_moves(outage: str) -> None:
    cfg = TwinConfig(profile=outage, port=0, speed=None, meters=3)
    async with Twin(cfg) as twin:
        meter = twin.meters[0]
        twin.step(10)
        running = meter.image
        twin.step(1)
        assert meter.image is not running  # uptime moved: a new image
        assert meter.image.read_registers(64, 2) != running.read_registers(64, 2)
        twin.step(100)  # into the outage (100..160 s)
        assert not meter.snapshot.powered
        dark = meter.image
        twin.step(20)
        assert meter.image is dark  # nothing moved: the same image, not rebuilt


async def test_an_override_steps_its_meter_alone_then_it_rejoins(outage: str) -> None:
    cfg = TwinConfig(profile=outage, port=0, speed=None, meters=4)
    async with Twin(cfg) as twin:
        twin.step(20)
        twin.meters[2].set_load(SetLoad(ElementLoad(120.0, 50.0), None, for_s=30.0))
        units = step_units(twin.meters)
        assert twin.meters[2] in units and len(units) == 2
        twin.step(60)  # the override ends after 30 s: back on the shared profile
        assert len(step_units(twin.meters)) == 1
        energies = [m.snapshot.energy_delivered_uj for m in twin.meters]
        assert energies[2] > energies[0] == energies[1] == energies[3]


async def test_fleet_totals_are_the_sums_of_the_snapshots(outage: str) -> None:
    cfg = TwinConfig(profile=outage, port=0, speed=None, meters=5)
    async with Twin(cfg) as twin:
        for seconds in (50, 70, 600):  # running, in the outage, running again
            twin.step(seconds)
            twin.meters[1].apply(ClearEnergy())
            snaps = [m.snapshot for m in twin.meters]
            totals = fleet_totals(twin.meters)
            assert totals.unpowered == sum(not s.powered for s in snaps)
            assert totals.energy_wh == sum(s.energy_delivered_wh for s in snaps)
            powers = [s.power_w for s in snaps if s.powered]
            assert totals.power_w == pytest.approx(sum(powers), rel=1e-12)


async def test_a_deferred_meter_shows_only_published_steps_read_or_not(outage: str) -> None:
    """A deferred group's meter shows its registers as of its last publish, even when
    nobody read it between that publish and the next (held) step."""
    cfg = TwinConfig(profile=outage, port=0, speed=None, meters=3, serial_number="GR00000001")
    async with Twin(cfg) as twin:
        for m in twin.meters:
            m.deferred = True
        twin.step(30)
        assert all(m.snapshot.uptime_s == 0 for m in twin.meters)  # held
        held = twin.meters[1].image.read_registers(0, 40)
        for m in twin.meters:
            m.publish()  # nobody reads between this publish and the next step
        twin.step(30)
        assert [m.snapshot.uptime_s for m in twin.meters] == [30, 30, 30]
        shown = twin.meters[1].image.read_registers(0, 40)
        assert shown != held
        twin.meters[2].publish()
        assert twin.meters[2].snapshot.uptime_s == 60
        assert twin.meters[1].image.read_registers(0, 40) == shown  # still the first step


async def test_gather_reads_every_meters_state_from_the_bank(outage: str) -> None:
    cfg = TwinConfig(profile=outage, port=0, speed=None, meters=205, serial_number="GR00000001")
    async with Twin(cfg) as twin:
        twin.step(90)
        twin.meters[7].apply(ClearEnergy())
        items = await gather(twin.meters[3:])  # more than GATHER_ROWS, not from row 0
        assert len(items) == 202 > GATHER_ROWS
        assert items == [(m.serial, m.core.nv_state()) for m in twin.meters[3:]]
