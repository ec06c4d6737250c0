"""Fleets on the RTU line: a meter's own faults fire there too."""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
from collections.abc import Iterator

import pytest
from pymodbus.framer.rtu import FramerRTU

from tests.conftest import find_free_port
from twin.fleet import parse_fleet
from twin.modbus import SerialSettings
from twin.modbus_client import ExceptionReply, MeterClient
from twin.runtime import Twin, TwinConfig


def _rtu(frame: bytes) -> bytes:
    return frame + FramerRTU.compute_CRC(frame).to_bytes(2, "big")


async def _reply(master: int, timeout_s: float = 1.0) -> bytes:
    loop = asyncio.get_running_loop()
    data, deadline = b"", loop.time() + timeout_s
    while loop.time() < deadline:
        try:
            data += os.read(master, 512)
        except BlockingIOError:
            await asyncio.sleep(0.02)
            if data:
                with contextlib.suppress(BlockingIOError):
                    data += os.read(master, 512)
                return data
    return data


@pytest.fixture
def pty() -> Iterator[tuple[int, str]]:
    master, slave = os.openpty()
    os.set_blocking(master, False)
    yield master, os.ttyname(slave)
    os.close(master)
    os.close(slave)


def _read(unit: int) -> bytes:
    return _rtu(struct.pack(">BBHH", unit, 3, 0, 4))


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
        assert await _reply(master) == _rtu(bytes((2, 0x83, 6)))  # the faulted meter
        os.write(master, _read(1))
        assert (await _reply(master))[:3] == bytes((1, 3, 8))  # its neighbour answers
        async with MeterClient(port=port, unit=2) as client:
            with pytest.raises(ExceptionReply) as exc:
                await client.read_registers(0, 4)
            assert exc.value.code == 6
