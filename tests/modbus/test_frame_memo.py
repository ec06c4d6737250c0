"""The TCP port's memo of framed answers: a poller's repeated read answered without
parsing must be exactly what the full path answers, counted the same, and must give
way to every change (image, silence, trace, interceptor) the moment it happens."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator

import pytest

from twin.core import MeterConfig, MeterCore, SampleBlock
from twin.modbus import Dispatcher, Intercept, MeterEndpoint
from twin.modbus.endpoint import FRAMES_MAX
from twin.modbus.tcp import ModbusTcpServer
from twin.registers import Identity, RegisterImage, device_identification

READ_POWER = struct.pack(">BHH", 3, 20, 2)  # block A: total active power, float
QUIET_S = 0.1  # long enough for an answer on loopback that is not coming


def _image(current_a: float = 10.0) -> RegisterImage:
    core = MeterCore(MeterConfig())
    core.advance(SampleBlock.build(600, 1.0, voltage_v=120.0, current_a=current_a))
    return RegisterImage.build(core.snapshot(), Identity.from_config(core.config))


def _req(tid: int, unit: int, pdu: bytes) -> bytes:
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu


def _endpoint() -> MeterEndpoint:
    return MeterEndpoint(_image(), device_identification(Identity.from_config(MeterConfig())))


@pytest.fixture
async def server() -> AsyncIterator[ModbusTcpServer]:
    srv = ModbusTcpServer({1: _endpoint(), 2: _endpoint()}, "127.0.0.1", 0)
    await srv.start()
    yield srv
    await srv.close()


class Poller:
    """One request at a time, as a polling master sends them (the memo's case)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.tid = reader, writer, 0

    async def ask(self, unit: int, pdu: bytes) -> bytes:
        self.tid += 1
        self.writer.write(_req(self.tid, unit, pdu))
        head = await asyncio.wait_for(self.reader.readexactly(7), 2)
        tid, proto, length, answered_unit = struct.unpack(">HHHB", head)
        assert (tid, proto, answered_unit) == (self.tid, 0, unit)
        return await self.reader.readexactly(length - 1)

    async def silence(self, unit: int, pdu: bytes) -> bool:
        self.tid += 1
        self.writer.write(_req(self.tid, unit, pdu))
        try:
            await asyncio.wait_for(self.reader.readexactly(1), QUIET_S)
        except TimeoutError:
            return True
        return False


@pytest.fixture
async def poller(server: ModbusTcpServer) -> AsyncIterator[Poller]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    yield Poller(reader, writer)
    writer.close()


async def test_repeated_read_is_memoised_and_counted(
    server: ModbusTcpServer, poller: Poller
) -> None:
    first = await poller.ask(1, READ_POWER)
    assert server.dispatcher.frames  # the answer is memoised ...
    again = [await poller.ask(1, READ_POWER) for _ in range(5)]
    assert again == [first] * 5  # ... answered the same, with each request's own tid
    assert server.dispatcher.requests[3] == 6 and server.dispatcher.exceptions[3] == 0
    bad = struct.pack(">BHH", 3, 0, 0)  # count 0: exception 03, never memoised
    assert [await poller.ask(1, bad) for _ in range(2)] == [b"\x83\x03"] * 2
    assert server.dispatcher.requests[3] == 8 and server.dispatcher.exceptions[3] == 2
    assert len(server.dispatcher.frames) == 1


async def test_image_change_and_silence_forget_the_memo(
    server: ModbusTcpServer, poller: Poller
) -> None:
    ep = server.dispatcher.units[1]
    before = struct.unpack(">f", (await poller.ask(1, READ_POWER))[2:])[0]
    ep.set_image(_image(current_a=20.0))
    after = struct.unpack(">f", (await poller.ask(1, READ_POWER))[2:])[0]
    assert after == pytest.approx(2 * before)
    ep.silent = True  # dark on power loss: not even a memoised answer goes out
    assert await poller.silence(1, READ_POWER)
    ep.silent = False
    assert struct.unpack(">f", (await poller.ask(1, READ_POWER))[2:])[0] == after
    await poller.ask(2, READ_POWER)  # the other meter's entries are its own
    ep.set_image(_image(current_a=30.0))
    assert len(server.dispatcher.frames) == 1


async def test_trace_and_interceptor_see_reads_answered_before(
    server: ModbusTcpServer, poller: Poller
) -> None:
    answer = await poller.ask(1, READ_POWER)
    seen: list[str] = []
    server.trace = lambda direction, unit, frame, at: seen.append(direction)
    assert await poller.ask(1, READ_POWER) == answer
    assert seen == ["rx", "tx"]
    server.trace = None
    await poller.ask(1, READ_POWER)  # memoised again while nothing watches
    server.dispatcher.interceptor = lambda unit, pdu, conn: Intercept(exception_code=4)
    assert await poller.ask(1, READ_POWER) == b"\x83\x04"
    server.dispatcher.interceptor = None
    assert await poller.ask(1, READ_POWER) == answer


def test_memo_is_bounded_and_holds_only_normal_reads() -> None:
    ep = _endpoint()
    dispatcher = Dispatcher({1: ep})
    reads = [struct.pack(">BHH", fc, a, n) for fc in (3, 4) for a in range(280) for n in (1, 2, 3)]
    assert len(reads) > FRAMES_MAX
    for pdu in reads:
        dispatcher.memoise(1, ep.respond(pdu), pdu, b"framed")
    assert 0 < len(dispatcher.frames) <= FRAMES_MAX
    dispatcher.frames.clear()
    for unit, response in (
        (1, b"\x83\x02"),
        (1, b"\x06\x00\xc8\x52\xdc"),
        (9, b"\x03\x02\x00\x01"),
    ):
        dispatcher.memoise(unit, response, b"k", b"framed")  # exception, write, no meter
    assert not dispatcher.frames
