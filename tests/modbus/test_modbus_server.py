"""The TCP server's framing, hooks and limits, with raw frames on a real socket."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator

import pytest

from tests.helpers import rtu_frame, rtu_reply
from twin.core import MeterConfig, MeterCore, SampleBlock
from twin.modbus import (
    Intercept,
    MeterEndpoint,
    SerialSettings,
    UnknownUnit,
    encode_device_id,
)
from twin.modbus.rtu import ModbusRtuServer, rtu_request_size
from twin.modbus.tcp import ModbusTcpServer
from twin.registers import Identity, ModbusException, RegisterImage, device_identification


def _image(current_a: float = 10.0) -> RegisterImage:
    core = MeterCore(MeterConfig())
    core.advance(SampleBlock.build(600, 1.0, voltage_v=120.0, current_a=current_a))
    return RegisterImage.build(core.snapshot(), Identity.from_config(core.config))


def _ident() -> dict[int, bytes]:
    return device_identification(Identity.from_config(MeterConfig()))


def _req(tid: int, unit: int, pdu: bytes) -> bytes:
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu


async def _reply(reader: asyncio.StreamReader) -> tuple[int, int, bytes]:
    head = await asyncio.wait_for(reader.readexactly(7), 2)
    tid, proto, length, unit = struct.unpack(">HHHB", head)
    assert proto == 0
    return tid, unit, await reader.readexactly(length - 1)


@pytest.fixture
async def server() -> AsyncIterator[ModbusTcpServer]:
    srv = ModbusTcpServer({1: MeterEndpoint(_image(), _ident())}, "127.0.0.1", 0)
    await srv.start()
    yield srv
    await srv.close()


async def _connect(srv: ModbusTcpServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", srv.port)


async def test_fc03_answers_the_image_bytes(server: ModbusTcpServer) -> None:
    reader, writer = await _connect(server)
    writer.write(_req(7, 1, struct.pack(">BHH", 3, 0, 40)))
    tid, unit, pdu = await _reply(reader)
    assert (tid, unit, pdu[0], pdu[1]) == (7, 1, 3, 80)
    assert pdu[2:] == server.dispatcher.units[1].image.read_registers(0, 40)
    writer.close()


async def test_pipelined_and_split_frames(server: ModbusTcpServer) -> None:
    reader, writer = await _connect(server)
    frames = b"".join(_req(i, 1, struct.pack(">BHH", 4, 20, 2)) for i in range(5))
    writer.write(frames[:3])  # a frame split mid-header, then the rest in one chunk
    await writer.drain()
    await asyncio.sleep(0.02)
    writer.write(frames[3:])
    tids = [(await _reply(reader))[0] for _ in range(5)]
    assert tids == [0, 1, 2, 3, 4]
    writer.close()


async def test_image_change_invalidates_cached_answers(server: ModbusTcpServer) -> None:
    reader, writer = await _connect(server)
    req = _req(1, 1, struct.pack(">BHH", 3, 20, 2))
    writer.write(req)
    power_before = struct.unpack(">f", (await _reply(reader))[2][2:])[0]
    server.dispatcher.units[1].set_image(_image(current_a=20.0))
    writer.write(req)
    power_after = struct.unpack(">f", (await _reply(reader))[2][2:])[0]
    assert power_after == pytest.approx(2 * power_before)
    writer.close()


@pytest.mark.parametrize(
    ("pdu", "code"),
    [
        (struct.pack(">BHH", 3, 290, 20), 2),  # runs past block C into the gap
        (struct.pack(">BHH", 4, 1000, 1), 2),
        (struct.pack(">BHH", 3, 0, 0), 3),
        (struct.pack(">BHH", 4, 0, 126), 3),
        (struct.pack(">BHH", 2, 30, 5), 2),
        (struct.pack(">BHH", 6, 200, 21212), 1),  # writes are off
        (struct.pack(">BHHB", 16, 200, 1, 2) + b"\x52\xdc", 1),
        (bytes((0x07,)), 1),  # unsupported function
        (struct.pack(">BH", 3, 0), 3),  # truncated request
    ],
)
async def test_exceptions(server: ModbusTcpServer, pdu: bytes, code: int) -> None:
    reader, writer = await _connect(server)
    writer.write(_req(1, 1, pdu))
    _, _, reply = await _reply(reader)
    assert reply == bytes((pdu[0] | 0x80, code))
    writer.close()


async def test_unknown_unit_answers_gateway_target_failed(server: ModbusTcpServer) -> None:
    reader, writer = await _connect(server)
    writer.write(_req(3, 9, struct.pack(">BHH", 3, 0, 4)))
    assert await _reply(reader) == (3, 9, bytes((0x83, 0x0B)))
    server.dispatcher.unknown_unit = UnknownUnit.SILENT
    writer.write(
        _req(4, 9, struct.pack(">BHH", 3, 0, 4)) + _req(5, 1, struct.pack(">BHH", 3, 0, 4))
    )
    assert (await _reply(reader))[0] == 5  # the unknown unit's request got no answer
    writer.close()


async def test_bad_protocol_id_closes_the_connection(server: ModbusTcpServer) -> None:
    reader, writer = await _connect(server)
    writer.write(struct.pack(">HHHB", 1, 1, 6, 1) + struct.pack(">BHH", 3, 0, 1))
    assert await asyncio.wait_for(reader.read(), 2) == b""
    writer.close()


async def test_writes_reach_the_handler_and_refusals_are_exceptions() -> None:
    seen: list[tuple[int, list[int]]] = []

    def write(address: int, values: list[int]) -> None:
        if address != 200:
            raise ModbusException(2)
        seen.append((address, values))

    srv = ModbusTcpServer({1: MeterEndpoint(_image(), _ident(), write)}, "127.0.0.1", 0)
    await srv.start()
    reader, writer = await _connect(srv)
    writer.write(_req(1, 1, struct.pack(">BHH", 6, 200, 21212)))
    assert (await _reply(reader))[2] == struct.pack(">BHH", 6, 200, 21212)
    writer.write(_req(2, 1, struct.pack(">BHHB", 16, 200, 1, 2) + b"\x52\xdc"))
    assert (await _reply(reader))[2] == struct.pack(">BHH", 16, 200, 1)
    writer.write(_req(3, 1, struct.pack(">BHH", 6, 10, 1)))
    assert (await _reply(reader))[2] == b"\x86\x02"
    writer.write(_req(4, 1, struct.pack(">BHHB", 16, 200, 2, 2) + b"\x00\x01"))  # bad byte count
    assert (await _reply(reader))[2] == b"\x90\x03"
    assert seen == [(200, [21212]), (200, [21212])]
    writer.close()
    await srv.close()


def test_device_identification_stream_and_individual() -> None:
    objects = _ident()
    basic = encode_device_id(objects, bytes((0x2B, 0x0E, 1, 0)))
    assert basic[:7] == bytes((0x2B, 0x0E, 1, 0x82, 0, 0, 3))
    assert objects[0] in basic and objects[4] not in basic
    single = encode_device_id(objects, bytes((0x2B, 0x0E, 4, 4)))
    assert single[6:] == bytes((1, 4, len(objects[4]))) + objects[4]
    with pytest.raises(ModbusException) as exc:
        encode_device_id(objects, bytes((0x2B, 0x0E, 4, 0x42)))
    assert exc.value.code == 2
    with pytest.raises(ModbusException) as exc:
        encode_device_id(objects, bytes((0x2B, 0x0E, 9, 0)))
    assert exc.value.code == 3


async def test_hooks_trace_and_intercept(server: ModbusTcpServer) -> None:
    trace: list[tuple[str, int, bytes]] = []
    server.trace = lambda d, unit, frame, t: trace.append((d, unit, frame))

    def intercept(unit: int, pdu: bytes, conn: int) -> Intercept | None:
        return Intercept(exception_code=4) if pdu[2] == 8 else None

    server.dispatcher.interceptor = intercept
    reader, writer = await _connect(server)
    writer.write(
        _req(1, 1, struct.pack(">BHH", 3, 8, 4)) + _req(2, 1, struct.pack(">BHH", 3, 0, 4))
    )
    assert (await _reply(reader))[2] == b"\x83\x04"
    assert len((await _reply(reader))[2]) == 10
    assert [d for d, _, _ in trace] == ["rx", "tx", "rx", "tx"]

    def late_and_short(unit: int, pdu: bytes, conn: int) -> Intercept | None:
        return Intercept(truncate=True, delay_s=0.1) if pdu[2] == 0 else None

    server.dispatcher.interceptor = late_and_short
    writer.write(
        _req(3, 1, struct.pack(">BHH", 3, 0, 4)) + _req(4, 1, struct.pack(">BHH", 3, 8, 4))
    )
    # the later request is answered first (the first is late), then the first, cut short
    assert (await _reply(reader))[0] == 4
    assert len(await asyncio.wait_for(reader.read(100), 2)) == (7 + 10) // 2
    server.dispatcher.interceptor = lambda unit, pdu, conn: Intercept(drop_connection=True)
    writer.write(_req(3, 1, struct.pack(">BHH", 3, 0, 4)))
    assert await asyncio.wait_for(reader.read(), 2) == b""
    writer.close()


async def test_connection_limit_evicts_the_longest_idle_and_idle_timeout() -> None:
    ep = MeterEndpoint(_image(), _ident())
    srv = ModbusTcpServer({1: ep}, "127.0.0.1", 0, max_connections=2, idle_timeout_s=0.4)
    await srv.start()
    r1, w1 = await _connect(srv)
    await asyncio.sleep(0.05)
    r2, w2 = await _connect(srv)
    w2.write(_req(1, 1, struct.pack(">BHH", 3, 0, 1)))  # the second one is active
    assert (await _reply(r2))[0] == 1
    r3, w3 = await _connect(srv)  # at the limit: the idle first one makes way
    assert await asyncio.wait_for(r1.read(), 2) == b""
    assert srv.evicted == 1
    for tid, (r, w) in enumerate(((r2, w2), (r3, w3))):
        w.write(_req(tid, 1, struct.pack(">BHH", 3, 0, 1)))
        assert (await _reply(r))[0] == tid
    assert await asyncio.wait_for(r3.read(), 3) == b""  # idle: closed by the server
    assert srv.timed_out >= 1
    for w in (w1, w2, w3):
        w.close()
    await srv.close()


async def test_incomplete_frame_times_out_and_keepalive_is_on() -> None:
    ep = MeterEndpoint(_image(), _ident())
    srv = ModbusTcpServer({1: ep}, "127.0.0.1", 0, idle_timeout_s=None, frame_timeout_s=0.3)
    await srv.start()
    reader, writer = await _connect(srv)
    writer.write(_req(1, 1, struct.pack(">BHH", 3, 0, 1)))
    assert (await _reply(reader))[0] == 1
    assert [c.keepalive for c in srv.connections] == [True]
    writer.write(_req(2, 1, struct.pack(">BHH", 3, 0, 1))[:9])  # a frame that never ends
    assert await asyncio.wait_for(reader.read(), 3) == b""
    assert srv.connections == set() and srv.timed_out == 1
    writer.close()
    await srv.close()


async def test_close_never_swallows_the_callers_cancellation() -> None:
    srv = ModbusTcpServer({1: MeterEndpoint(_image(), _ident())}, "127.0.0.1", 0)
    await srv.start()
    closing = asyncio.create_task(srv.close())
    await asyncio.sleep(0)  # close() is now waiting for its sweeper to end
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    await srv.close()  # a later close still closes
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", srv.port)


def test_rtu_request_sizes() -> None:
    assert rtu_request_size(bytes((1, 3, 0, 0, 0, 1))) == 8
    assert rtu_request_size(bytes((1, 16, 0, 200, 0, 1, 2))) == 11
    assert rtu_request_size(bytes((1, 0x2B, 0x0E))) == 7
    assert rtu_request_size(bytes((1, 16, 0))) is None
    assert rtu_request_size(bytes((1, 0x11))) is None


async def test_rtu_server_on_a_pty(pty: tuple[int, str]) -> None:
    import os

    master, device = pty
    ep = MeterEndpoint(_image(), _ident())
    srv = ModbusRtuServer({5: ep}, SerialSettings(device, 115200, "E", 1))
    await srv.start()
    try:
        good = rtu_frame(struct.pack(">BBHH", 5, 3, 0, 4))
        os.write(master, b"\x01\x02\x03" + good[:-1] + b"\x00")  # noise, then a bad CRC
        assert await rtu_reply(master, 0.3) == b""  # nothing answers garbage
        os.write(master, good)
        reply = await rtu_reply(master)
        assert reply == rtu_frame(bytes((5, 3, 8)) + ep.image.read_registers(0, 4))
        os.write(master, rtu_frame(struct.pack(">BBHH", 6, 3, 0, 4)))  # another slave's request
        assert await rtu_reply(master, 0.3) == b""
        srv.dispatcher.interceptor = lambda unit, pdu, conn: Intercept(exception_code=6)
        os.write(master, good)
        assert await rtu_reply(master) == rtu_frame(bytes((5, 0x83, 6)))
    finally:
        await srv.close()
