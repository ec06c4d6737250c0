"""Fleets: many meters behind one process, each its own serial, seed, energy and record;
fleet files with several ports and mixed models; unknown unit ids; power loss on the
wire; bad fleet files rejected with one line naming the file and key path."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from pymodbus.exceptions import ModbusIOException

from tests.helpers import REPO, TwinProcess, find_free_port
from twin.errors import ConfigError
from twin.modbus.client import ExceptionReply, MeterClient, decode_string, decode_uint
from twin.runtime.config import TwinConfig
from twin.runtime.fleet import counted_serial, load_fleet, parse_fleet, uniform_fleet
from twin.runtime.twin import Twin

NOISY = """\
schema: 1
name: noisy-const
seed: 3
segments:
  - kind: constant
    duration: 1000h
    L1: {voltage: 120, current: 10, pf: 1.0}
    L2: {voltage: 120, current: 5, pf: 1.0}
noise:
  - {quantity: current, amplitude: 20%, period: 1s}
"""

OUTAGE = """\
schema: 1
name: outage
segments:
  - kind: constant
    duration: 1000h
    L1: {voltage: 120, current: 10, pf: 1.0}
    L2: {voltage: 120, current: 10, pf: 1.0}
events:
  - {at: 60s, kind: outage, duration: 60s}
"""


@pytest.fixture
def noisy(tmp_path: Path) -> str:
    path = tmp_path / "noisy.yaml"
    path.write_text(NOISY)
    return str(path)


@pytest.fixture
def outage(tmp_path: Path) -> str:
    path = tmp_path / "outage.yaml"
    path.write_text(OUTAGE)
    return str(path)


async def test_hundred_meters_on_one_port_each_answer_their_own(noisy: str) -> None:
    cfg = TwinConfig(profile=noisy, port=0, speed=None, meters=100, serial_number="FL00000001")
    async with Twin(cfg) as twin, MeterClient(port=twin.port) as c:
        twin.step(600)
        # the fleet shares one memo budget (65,536 answers), not 4,096 per meter
        assert twin.meters[0].endpoint.cache_max == 655
        energies, powers = {}, {}
        for unit in range(1, 101):
            c.unit = unit
            snap = twin.meter(unit).snapshot
            assert decode_string(await c.read_registers(108, 16)) == f"FL{unit:08d}"
            assert snap.serial_number == f"FL{unit:08d}"
            energies[unit] = await c.read_uint(0, 4)
            assert energies[unit] == snap.energy_delivered_wh > 0
            powers[unit] = await c.read_float32(20)
            assert powers[unit] == pytest.approx(snap.power_w, rel=1e-6)
        # each its own seed: the noise differs, so the meters read differently
        assert len(set(powers.values())) > 90 and len(set(energies.values())) > 3
        c.unit = 101
        with pytest.raises(ExceptionReply) as exc:
            await c.read_registers(0, 4)
        assert exc.value.code == 0x0B  # gateway target device failed to respond


async def test_meters_sharing_a_noiseless_profile_share_one_sampler(outage: str) -> None:
    cfg = TwinConfig(profile=outage, port=0, speed=None, meters=5)
    async with Twin(cfg) as twin:
        assert len({id(m.sampler) for m in twin.meters}) == 1
        twin.step(30)
        assert {m.snapshot.energy_delivered_wh for m in twin.meters} == {20}


async def test_unknown_unit_silent_when_configured(outage: str) -> None:
    cfg = TwinConfig(profile=outage, port=0, speed=None, meters=2, unknown_unit="silent")
    async with Twin(cfg) as twin, MeterClient(port=twin.port, unit=3, timeout_s=0.3) as c:
        with pytest.raises(ModbusIOException):
            await c.read_registers(0, 4)
        c.unit = 2
        assert len(await c.read_registers(0, 4)) == 4


async def test_power_loss_answer_or_silent_per_meter(tmp_path: Path, outage: str) -> None:
    fleet_file = tmp_path / "fleet.yaml"
    fleet_file.write_text(
        f"fleet: 1\ndefaults: {{profile: {outage}}}\nmeters:\n"
        "  - {unit: 1, port: 1502}\n"
        "  - {unit: 2, port: 1502, on_power_loss: silent}\n"
    )
    fleet = load_fleet(fleet_file)
    # the configured port is replaced by an ephemeral one for the test
    fleet = type(fleet)(tuple(type(m)(**{**_fields(m), "port": 0}) for m in fleet.meters))
    async with Twin(TwinConfig(port=0, speed=None, fleet=fleet)) as twin:
        answer = MeterClient(port=twin.port, unit=1, timeout_s=0.3)
        silent = MeterClient(port=twin.port, unit=2, timeout_s=0.3)
        async with answer, silent:
            twin.step(30)
            assert (await silent.read_bits(2, 13, 1)) == [False]  # powered: both answer
            twin.step(60)  # in the outage
            assert not twin.meter(1).snapshot.powered
            frozen = await answer.read_uint(0, 4)
            assert frozen == twin.meter(1).snapshot.energy_delivered_wh == 40
            assert (await answer.read_bits(2, 13, 1)) == [True]  # status bit 13: no power
            with pytest.raises(ModbusIOException):
                await silent.read_registers(0, 4)
            twin.step(60)  # power is back
        async with MeterClient(port=twin.port, unit=2, timeout_s=1.0) as again:
            assert await again.read_uint(66, 2) == 2  # second power-up, answering again


def _fields(m: object) -> dict[str, object]:
    return {k: getattr(m, k) for k in m.__slots__}  # type: ignore[attr-defined]


async def test_fleet_restart_restores_every_meter_by_serial(outage: str, tmp_path: Path) -> None:
    cfg = TwinConfig(
        profile=outage, port=0, speed=None, meters=3, state_dir=tmp_path / "s", serial_number="X-7"
    )
    async with Twin(cfg) as twin:
        twin.step(45)
    async with Twin(cfg) as twin:
        assert [m.serial for m in twin.meters] == ["X-7", "X-8", "X-9"]
        assert all(m.restored and m.snapshot.energy_delivered_wh == 30 for m in twin.meters)


def _fleet_file(path: Path, ports: list[int]) -> Path:
    path.write_text(
        "fleet: 1\n"
        "defaults: {profile: default}\n"
        "meters:\n"
        f"  - {{unit: 1, port: {ports[0]}, model: MMD-200A}}\n"
        f"  - {{unit: 2, port: {ports[0]}, model: MMS-100A, serial: BENCH-2}}\n"
        f"  - {{unit: 7, port: {ports[1]}, model: MMU-0.1A:400, word_order: little}}\n"
        f"  - {{unit: 1, port: {ports[2]}, model: MMD-100A/1000}}\n"
    )
    return path


async def test_fleet_file_with_three_ports_serves_as_declared(
    tmp_path: Path, start_twin: object
) -> None:
    ports = [find_free_port() for _ in range(3)]
    path = _fleet_file(tmp_path / "fleet.yaml", ports)
    tp: TwinProcess = start_twin("--fleet", str(path), "--speed", "60")  # type: ignore[operator]
    assert "4 meters" in tp.first_line
    expected = [
        (ports[0], 1, b"MMD-200A", f"MM{ports[0]:05d}001", 2),
        (ports[0], 2, b"MMS-100A", "BENCH-2", 1),
        (ports[1], 7, b"MMU-0.1A:400", f"MM{ports[1]:05d}007", 2),
        (ports[2], 1, b"MMD-100A/1000", f"MM{ports[2]:05d}001", 2),
    ]
    await asyncio.sleep(0.5)
    for port, unit, model, serial, elements in expected:
        async with MeterClient(port=port, unit=unit) as c:
            ident = await c.device_identification()
            assert ident[5] == model
            assert decode_string(await c.read_registers(108, 16)) == serial
            assert await c.read_registers(102, 1) == [elements]
    async with MeterClient(port=ports[1], unit=7) as c:
        words = await c.read_registers(0, 4)
        assert decode_uint(words, "little") == decode_uint(words[::-1])  # words swapped
        c.unit = 1  # not declared on this port
        with pytest.raises(ExceptionReply) as exc:
            await c.read_registers(0, 4)
        assert exc.value.code == 0x0B
    code, _, err = tp.stop()
    assert code == 0, err


BAD_FLEETS = [
    ("[1, 2]", "expected a mapping with 'fleet: 1'"),
    ("fleet: 2\nmeters: [{unit: 1, port: 5020}]", "fleet: 2 unsupported; expected fleet: 1"),
    ("fleet: 1\nmeters: []", "meters: expected a non-empty list"),
    ("fleet: 1\nmetres: []", "metres: unknown key"),
    (
        "fleet: 1\nmeters: [{unit: 0, port: 5020}]",
        "meters[0].unit: 0 out of range; expected 1..247",
    ),
    ("fleet: 1\nmeters: [{unit: 1}]", "meters[0].port: missing"),
    ("fleet: 1\nmeters: [{unit: 1, port: x}]", "meters[0].port: 'x' is not an integer"),
    ("fleet: 1\nmeters: [{unit: 1, port: 5020, colour: red}]", "meters[0].colour: unknown key"),
    ("fleet: 1\nmeters: [{unit: 1, port: 5020, model: MMX-9}]", "meters[0].model:"),
    (
        "fleet: 1\nmeters: [{unit: 1, port: 5020}, {unit: 1, port: 5020}]",
        "meters[1]: unit 1 on port 5020 already used by meters[0]",
    ),
    (
        "fleet: 1\nmeters: [{unit: 1, port: 5020, serial: A}, {unit: 2, port: 5020, serial: A}]",
        "meters[1].serial: 'A' already used by meters[0]",
    ),
    (
        "fleet: 1\nmeters: [{unit: 1, port: 5020, word_order: middle}]",
        "meters[0].word_order: 'middle' invalid; expected one of big, little",
    ),
    (
        "fleet: 1\nmeters: [{unit: 1, port: 5020, faults: ['exception:code=300']}]",
        "meters[0].faults[0] 'exception:code=300': code='300' out of range; expected 1..255",
    ),
    (
        "fleet: 1\nmeters: [{unit: 1, port: 5020, faults: [{kind: drop, after: -1}]}]",
        "meters[0].faults[0]: after=-1 out of range",
    ),
    ("fleet: 1\ndefaults: {unit: 3}\nmeters: [{port: 1}]", "defaults.unit: not a default"),
    ("fleet: 1\nunknown_unit: loud\nmeters: [{unit: 1, port: 1}]", "unknown_unit: 'loud' invalid"),
    ("fleet: 1\nmeters: [{unit: 1, port: 1\n", "not valid YAML"),
]


@pytest.mark.parametrize(("text", "message"), BAD_FLEETS)
def test_bad_fleet_files_name_the_key_path(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_fleet(path)
    assert message in str(exc.value) and str(path) in str(exc.value)


def test_bad_fleet_and_fault_options_exit_1_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("fleet: 1\nmeters: [{unit: 1, port: 5020, model: MMX-9}]\n")
    cases = [
        (["--fleet", str(bad)], f"{bad}: meters[0].model:"),
        (["--fleet", str(tmp_path / "none.yaml")], "cannot read fleet file"),
        (["--fleet", str(bad), "--meters", "3"], "--fleet and --meters exclude each other"),
        (["--meters", "300"], "--meters 300: out of range; expected 1..247"),
        (["--fault", "delay:ms=abc"], "--fault 'delay:ms=abc': ms='abc' is not a number"),
        (["--fault", "drop:after=2,colour=red"], "unknown key 'colour'"),
        (["--fault", "silent:unit=300"], "unit='300' out of range; expected 0..255"),
        (["--max-connections", "0"], "--max-connections 0: expected 1..100000"),
        (["--idle-timeout", "-1"], "--idle-timeout -1.0: expected seconds > 0"),
    ]
    for args, message in cases:
        proc = subprocess.run(
            [sys.executable, "-m", "twin", "run", "--no-state", *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == 1, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, proc.stderr)


def test_fleet_parsing_defaults_and_serials() -> None:
    fleet = parse_fleet(
        {
            "fleet": 1,
            "defaults": {"model": "MMS-200A", "on_power_loss": "silent"},
            "meters": [
                {"unit": 1, "port": 5020, "seed": 9},
                {"unit": 2, "port": 5020, "model": "MMD-100A", "faults": ["silent:p=0.5"]},
            ],
        },
        "inline",
        base={"profile": "residential-day", "model": "MMU-100A"},
    )
    first, second = fleet.meters
    assert first.model.name == "MMS-200A" and second.model.name == "MMD-100A"
    assert first.profile == "residential-day" and first.on_power_loss == "silent"
    assert first.seed == 9 and second.seed is None
    assert first.serial == "MM05020001" and fleet.ports == [5020]
    # a meter's own faults touch only that meter (on its TCP port and the RTU line, 0)
    assert second.faults[0].units == frozenset({2}) and second.faults[0].ports == {5020, 0}
    assert counted_serial("MM00000099", 1) == "MM00000100"
    assert counted_serial("BENCH", 2) == "BENCH-3"
    assert [m.unit for m in uniform_fleet(3, port=1, first_unit=5).meters] == [5, 6, 7]
    with pytest.raises(ConfigError, match="unit ids would pass 247"):
        uniform_fleet(10, port=1, first_unit=240)


async def test_meters_start_at_unit_as_help_and_readme_say(outage: str) -> None:
    help_text = " ".join(
        subprocess.run(
            [sys.executable, "-m", "twin", "run", "--help"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.split()
    )
    assert "serve N meters on unit ids --unit..--unit+N-1 of one port" in help_text
    assert "N meters on unit ids `--unit`..`--unit`+N-1" in (REPO / "README.md").read_text()
    cfg = TwinConfig(profile=outage, port=0, speed=None, meters=3, unit=5)
    async with Twin(cfg) as twin, MeterClient(port=twin.port, unit=7) as c:
        assert [m.spec.unit for m in twin.meters] == [5, 6, 7]
        assert decode_string(await c.read_registers(108, 16)) == "MM00000003"
