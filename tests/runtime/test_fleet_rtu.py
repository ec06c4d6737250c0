"""Fleets on the RTU line: a meter's own faults fire there too; `--no-tcp --fleet`
serves the fleet on the line only; a fleet's ports come from its file, never --port."""

from __future__ import annotations

import dataclasses
import os
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, find_free_port, rtu_frame, rtu_reply
from twin.cli import build_parser
from twin.cli.run import config_from_args
from twin.errors import ConfigError
from twin.modbus.client import ExceptionReply, MeterClient
from twin.modbus.serial import SerialSettings
from twin.runtime.config import TwinConfig
from twin.runtime.fleet import load_fleet, parse_fleet, without_tcp
from twin.runtime.twin import Twin


def _read(unit: int) -> bytes:
    return rtu_frame(struct.pack(">BBHH", unit, 3, 0, 4))


async def test_a_meters_own_fault_fires_over_rtu_as_over_tcp(pty: tuple[int, str]) -> None:
    master, device = pty
    port = find_free_port()
    fleet = parse_fleet(
        {
            "fleet": 1,
            "meters": [
                {"unit": 1, "port": port},
                {"unit": 2, "port": port, "faults": ["exception:code=6,fc=3"]},
            ],
        },
        "inline",
    )
    cfg = TwinConfig(fleet=fleet, speed=None, serial=SerialSettings(device, 115200))
    async with Twin(cfg) as twin:
        twin.step(60)
        os.write(master, _read(2))
        assert await rtu_reply(master) == rtu_frame(bytes((2, 0x83, 6)))  # the faulted meter
        os.write(master, _read(1))
        assert (await rtu_reply(master))[:3] == bytes((1, 3, 8))  # its neighbour answers
        async with MeterClient(port=port, unit=2) as client:
            with pytest.raises(ExceptionReply) as exc:
                await client.read_registers(0, 4)
            assert exc.value.code == 6


def _fleet_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(text)
    return path


def _args(*argv: str) -> TwinConfig:
    return config_from_args(build_parser().parse_args(["run", "--no-state", *argv]))


async def test_no_tcp_fleet_serves_the_line_only(tmp_path: Path, pty: tuple[int, str]) -> None:
    master, device = pty
    port = find_free_port()
    path = _fleet_file(
        tmp_path,
        "fleet: 1\nmeters:\n"
        f"  - {{unit: 1, port: {port}, faults: ['exception:code=5']}}\n"
        "  - {unit: 2, model: MMS-100A}\n",  # no port: fine on the line only
    )
    cfg = _args("--no-tcp", "--fleet", str(path), "--serial", device, "--baud", "115200")
    assert [m.port for m in cfg.resolved.meters] == [None, None]
    assert cfg.resolved.meters[0].serial == f"MM{port:05d}001"  # the serial it has over TCP
    async with Twin(dataclasses.replace(cfg, speed=None)) as twin:  # a manual clock
        assert twin.servers == {} and twin.tcp is None and twin.rtu is not None
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        twin.step(60)
        os.write(master, _read(2))
        assert (await rtu_reply(master))[:3] == bytes((2, 3, 8))
        os.write(master, _read(1))
        assert await rtu_reply(master) == rtu_frame(bytes((1, 0x83, 5)))  # its fault, on the line


def test_fleet_ports_come_from_the_file(tmp_path: Path) -> None:
    no_port = _fleet_file(tmp_path, "fleet: 1\nmeters: [{unit: 1}]\n")
    with pytest.raises(ConfigError, match=r"meters\[0\]\.port: missing"):
        _args("--fleet", str(no_port))
    with pytest.raises(ConfigError, match="--fleet and --port exclude each other"):
        _args("--fleet", str(no_port), "--port", "5020")
    in_defaults = _fleet_file(tmp_path, "fleet: 1\ndefaults: {port: 5099}\nmeters: [{unit: 1}]\n")
    assert _args("--fleet", str(in_defaults)).resolved.ports == [5099]


def test_rtu_only_fleets_need_a_line_and_unique_unit_ids(tmp_path: Path) -> None:
    two_ports = _fleet_file(
        tmp_path, "fleet: 1\nmeters: [{unit: 1, port: 5020}, {unit: 1, port: 5021}]\n"
    )
    with pytest.raises(ConfigError, match=r"meters\[1\]: unit 1 already used by meters\[0\]"):
        load_fleet(two_ports, tcp=False)
    with pytest.raises(ConfigError, match="unit 1 already used"):
        without_tcp(load_fleet(two_ports))
    distinct = _fleet_file(tmp_path, "fleet: 1\nmeters: [{unit: 1}, {unit: 2}]\n")
    proc = subprocess.run(
        [sys.executable, "-m", "twin", "run", "--no-state", "--no-tcp", "--fleet", str(distinct)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "minimeter run: error: --no-tcp with a fleet: nothing to serve; give a --serial device"
    ]
