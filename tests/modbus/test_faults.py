"""Protocol fault injection: each kind observed by a real client (pymodbus or a raw
socket), then cleared; spec parsing; counts, durations, probabilities, seeds; the
run-time API and `--fault` on the command line."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pymodbus.exceptions import ModbusIOException

from tests.helpers import TwinProcess, rtu_frame, rtu_reply
from twin.errors import ConfigError
from twin.modbus import FaultInjector, FaultSpec, SerialSettings, parse_fault
from twin.modbus.client import ExceptionReply, MeterClient
from twin.runtime.config import TwinConfig
from twin.runtime.twin import Twin

CONST = """\
schema: 1
name: const
segments:
  - kind: constant
    duration: 1000h
    L1: {voltage: 120, current: 10, pf: 1.0}
    L2: {voltage: 120, current: 10, pf: 1.0}
"""


@pytest.fixture
async def twin(tmp_path: Path) -> AsyncIterator[Twin]:
    path = tmp_path / "const.yaml"
    path.write_text(CONST)
    async with Twin(TwinConfig(profile=str(path), port=0, speed=None, meters=2)) as t:
        t.step(3600)
        yield t


def _request(tid: int, unit: int = 1, address: int = 0, count: int = 4) -> bytes:
    return struct.pack(">HHHBBHH", tid, 0, 6, unit, 3, address, count)


class Raw:
    """A raw Modbus TCP socket: what exactly came back, and when."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=2)

    async def ask(self, frame: bytes, timeout_s: float = 1.0) -> bytes:
        """Send a frame; collect whatever arrives until the peer pauses or closes."""
        loop = asyncio.get_running_loop()
        self.sock.setblocking(False)
        await loop.sock_sendall(self.sock, frame)
        data = b""
        try:
            data = await asyncio.wait_for(loop.sock_recv(self.sock, 512), timeout_s)
            while data:  # the rest of a frame split in two segments, if any
                more = await asyncio.wait_for(loop.sock_recv(self.sock, 512), 0.05)
                if not more:
                    break
                data += more
        except TimeoutError:
            pass
        except ConnectionError:
            return b"<reset>"
        return data

    def close(self) -> None:
        self.sock.close()


async def _answer_order(port: int) -> list[int]:
    """Pipeline a read to unit 1 then unit 2 on one connection: the units in reply order."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(_request(1, unit=1) + _request(2, unit=2))
    replies = [await asyncio.wait_for(reader.readexactly(17), 2) for _ in range(2)]
    writer.close()
    assert all(r[7:9] == bytes((3, 8)) for r in replies)
    return [r[6] for r in replies]


async def test_delay_with_jitter_then_cleared(twin: Twin) -> None:
    fault = twin.hooks.add_fault("delay:ms=300,jitter=50,unit=1")
    assert await _answer_order(twin.port) == [2, 1]  # unit 1's answer is held back
    assert twin.hooks.remove_fault(fault)
    assert await _answer_order(twin.port) == [1, 2]  # cleared: answered in order
    async with MeterClient(port=twin.port, timeout_s=2) as c:
        assert await c.read_uint(0, 4) == 2400


def test_delay_is_ms_plus_uniform_jitter() -> None:
    injector = FaultInjector(seed=3)
    injector.add(parse_fault("delay:ms=300,jitter=50"))
    delays = []
    for _ in range(200):
        action = injector(1, bytes((3, 0, 0, 0, 4)), 1, 5020)
        assert action is not None
        delays.append(action.delay_s)
    assert all(0.25 <= d <= 0.35 for d in delays)
    assert min(delays) < 0.27 and max(delays) > 0.33  # spread over the whole range


async def test_silent_times_out_then_answers_when_cleared(twin: Twin) -> None:
    twin.hooks.add_fault("silent:unit=2")
    async with (
        MeterClient(port=twin.port, unit=2, timeout_s=0.3) as c2,
        MeterClient(port=twin.port, unit=1) as c1,
    ):
        with pytest.raises(ModbusIOException):
            await c2.read_registers(0, 4)
        assert await c1.read_uint(0, 4) == 2400  # unit 1 is not affected
        twin.hooks.clear_faults()
    async with MeterClient(port=twin.port, unit=2) as c2:
        assert await c2.read_uint(0, 4) == 2400


async def test_exception_for_function_and_address_range(twin: Twin) -> None:
    twin.hooks.add_fault("exception:code=6,fc=3,addr=0-10")
    async with MeterClient(port=twin.port) as c:
        with pytest.raises(ExceptionReply) as exc:
            await c.read_registers(0, 4)
        assert (exc.value.function_code, exc.value.code) == (3, 6)
        assert len(await c.read_registers(11, 2)) == 2  # outside the range
        assert await c.read_registers(0, 4, fc=4) == [0, 0, 0, 2400]  # another function
        twin.hooks.clear_faults()
        assert await c.read_uint(0, 4) == 2400


async def test_drop_after_n_requests_per_connection(twin: Twin) -> None:
    fault = twin.hooks.add_fault("drop:after=2")
    a, b = Raw(twin.port), Raw(twin.port)
    try:
        assert len(await a.ask(_request(1))) == 17
        assert len(await a.ask(_request(2))) == 17
        assert len(await b.ask(_request(1))) == 17  # counted per connection
        assert await a.ask(_request(3)) in (b"", b"<reset>")  # closed instead of answered
        twin.hooks.remove_fault(fault)
        assert len(await b.ask(_request(2))) == 17
        assert len(await b.ask(_request(3))) == 17  # cleared: the third one is answered
    finally:
        a.close()
        b.close()
    twin.hooks.add_fault("drop")  # after=0: every request closes the connection
    async with MeterClient(port=twin.port, timeout_s=0.5) as c:
        with pytest.raises(ModbusIOException):
            await c.read_registers(0, 4)


async def test_garbage_is_not_a_frame_then_cleared(twin: Twin) -> None:
    twin.hooks.add_fault("garbage:count=1")
    raw = Raw(twin.port)
    try:
        good = _request(7)[:2]
        reply = await raw.ask(_request(7))
        assert reply and not (reply[:2] == good and reply[2:4] == b"\0\0")  # not our answer
        reply = await raw.ask(_request(8))  # count=1: the fault is spent
        assert reply[:2] == b"\x00\x08" and reply[7:9] == b"\x03\x08"
    finally:
        raw.close()
    twin.hooks.add_fault("garbage")
    async with MeterClient(port=twin.port, timeout_s=0.3) as c:
        with pytest.raises(ModbusIOException):
            await c.read_registers(0, 4)
    assert twin.hooks.faults.active  # not spent: no count
    twin.hooks.clear_faults()
    assert not twin.hooks.faults.active


async def test_truncated_answer_then_cleared(twin: Twin) -> None:
    twin.hooks.add_fault("truncate:fc=3")
    raw = Raw(twin.port)
    try:
        reply = await raw.ask(_request(1), timeout_s=0.5)
        assert reply == (await _good_reply(twin))[: len(reply)] and len(reply) == 17 // 2
    finally:
        raw.close()
    async with MeterClient(port=twin.port, timeout_s=0.3) as c:
        with pytest.raises(ModbusIOException):
            await c.read_registers(0, 4)
    twin.hooks.clear_faults()
    async with MeterClient(port=twin.port) as c:
        assert await c.read_uint(0, 4) == 2400


async def _good_reply(twin: Twin) -> bytes:
    saved = twin.hooks.faults.active
    twin.hooks.clear_faults()
    raw = Raw(twin.port)
    try:
        return await raw.ask(_request(1))
    finally:
        raw.close()
        for spec in saved.values():
            twin.hooks.add_fault(spec)


async def test_duration_and_port_scoping(twin: Twin) -> None:
    twin.hooks.add_fault("exception:code=4,for=300ms", port=twin.port)
    twin.hooks.add_fault("exception:code=5", port=twin.port + 1)  # another port: never matches
    async with MeterClient(port=twin.port) as c:
        with pytest.raises(ExceptionReply) as exc:
            await c.read_registers(0, 4)
        assert exc.value.code == 4
        await asyncio.sleep(0.35)
        assert await c.read_uint(0, 4) == 2400  # expired; the other port's fault is inert


async def test_probability_is_reproducible_per_seed(tmp_path: Path) -> None:
    path = tmp_path / "const.yaml"
    path.write_text(CONST)

    async def pattern(seed: int) -> list[bool]:
        cfg = TwinConfig(
            profile=str(path),
            port=0,
            speed=None,
            fault_seed=seed,
            faults=(parse_fault("exception:p=0.5"),),
        )
        out = []
        async with Twin(cfg) as t, MeterClient(port=t.port) as c:
            for _ in range(40):
                try:
                    await c.read_registers(0, 2)
                    out.append(False)
                except ExceptionReply:
                    out.append(True)
        return out

    first, again, other = await pattern(11), await pattern(11), await pattern(12)
    assert first == again and first != other
    assert 8 <= sum(first) <= 32  # about half


def test_injector_counts_durations_and_filters() -> None:
    now = [0.0]
    inj = FaultInjector(seed=1, clock=lambda: now[0])
    inj.add(parse_fault("silent:count=2,unit=3,fc=4"))
    assert inj(1, bytes((4, 0, 0, 0, 1)), 1, 502) is None  # unit 1: not matched
    assert inj(3, bytes((3, 0, 0, 0, 1)), 1, 502) is None  # fc 3: not matched
    assert inj(3, bytes((4, 0, 0, 0, 1)), 1, 502) is not None
    assert inj(3, bytes((4, 0, 0, 0, 1)), 1, 502) is not None
    assert inj(3, bytes((4, 0, 0, 0, 1)), 1, 502) is None and not inj.active  # spent
    fid = inj.add(parse_fault("delay:ms=100,jitter=40,for=2s"))
    delays = {inj(1, b"\x03\x00\x00\x00\x01", 1, 502).delay_s for _ in range(50)}  # type: ignore[union-attr]
    assert len(delays) > 40 and all(0.06 <= d <= 0.14 for d in delays)
    now[0] = 2.0
    assert inj(1, b"\x03\x00\x00\x00\x01", 1, 502) is None and fid not in inj.active


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("explode", "kind 'explode' unknown"),
        ("delay", "delay needs ms=N"),
        ("delay:ms=-1", "ms='-1' out of range"),
        ("exception:code=2.5", "code='2.5' is not a whole number"),
        ("silent:p=2", "p='2' out of range; expected 0..1"),
        ("silent:for=soon", "for='soon' is not a positive duration"),
        ("silent:fc=3-x", "fc='3-x' is not a number, range or set"),
        ("silent:addr=9-3", "addr='9-3' out of range"),
        ("silent:unit", "'unit' is not key=value"),
    ],
)
def test_bad_specs_name_the_problem(spec: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_fault(spec)
    assert message in str(exc.value) and spec in str(exc.value)


def test_spec_parsing() -> None:
    spec = parse_fault("exception:code=6,fc=3+4,addr=100-199,unit=1-3+7,p=0.25,count=9,for=2min")
    assert spec == FaultSpec(
        kind="exception",
        code=6,
        function_codes=frozenset({3, 4}),
        address_range=(100, 199),
        units=frozenset({1, 2, 3, 7}),
        probability=0.25,
        count=9,
        duration_s=120.0,
    )


def test_fault_on_the_command_line(start_twin: object) -> None:
    tp: TwinProcess = start_twin("--fault", "exception:code=4,fc=3", "--fault-seed", "1")  # type: ignore[operator]

    async def check() -> None:
        async with MeterClient(port=tp.port) as c:
            with pytest.raises(ExceptionReply) as exc:
                await c.read_registers(0, 4)
            assert exc.value.code == 4
            assert len(await c.read_registers(0, 4, fc=4)) == 4

    asyncio.run(check())
    assert tp.stop()[0] == 0


async def test_faults_and_power_loss_silence_over_rtu(tmp_path: Path, pty: tuple[int, str]) -> None:
    profile = tmp_path / "outage.yaml"
    profile.write_text(CONST + "events:\n  - {at: 60s, kind: outage, duration: 60s}\n")
    master, device = pty
    cfg = TwinConfig(
        profile=str(profile),
        port=None,
        speed=None,
        meters=2,
        on_power_loss="silent",
        serial=SerialSettings(device, 115200),
    )
    async with Twin(cfg) as t:
        t.step(30)
        ask = rtu_frame(struct.pack(">BBHH", 2, 3, 0, 4))
        os.write(master, ask)
        assert (await rtu_reply(master, 1.0))[:3] == bytes((2, 3, 8))
        fid = t.hooks.add_fault("exception:code=6,unit=2")
        os.write(master, ask)
        assert await rtu_reply(master, 1.0) == rtu_frame(bytes((2, 0x83, 6)))
        t.hooks.remove_fault(fid)
        t.step(60)  # dark, and silent on power loss
        os.write(master, ask)
        assert await rtu_reply(master, 0.3) == b""
