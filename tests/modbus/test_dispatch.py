"""Unit dispatch and fault interception: one Dispatcher decides for TCP and RTU alike.

First the sans-IO decisions (no socket), then the same requests, with the same
interceptor, sent over a real TCP socket and a real pty to the two transports:
every answer PDU, every silence and every interceptor call must be the same.
"""

from __future__ import annotations

import asyncio
import os
import struct

from tests.helpers import rtu_frame, rtu_reply
from twin.core import MeterConfig, MeterCore, SampleBlock
from twin.modbus import (
    RTU_PORT,
    Dispatcher,
    Intercept,
    MeterEndpoint,
    SerialSettings,
    UnknownUnit,
)
from twin.modbus.rtu import ModbusRtuServer
from twin.modbus.tcp import ModbusTcpServer
from twin.registers import ExceptionCode, Identity, RegisterImage, device_identification

READ = struct.pack(">BHH", 3, 0, 4)
WRITE_COMMAND = struct.pack(">BHH", 6, 200, 21212)  # reset max demand


def _endpoints() -> dict[int, MeterEndpoint]:
    """Unit 1 answers, unit 2 is a dark meter gone silent on power loss."""
    core = MeterCore(MeterConfig())
    core.advance(SampleBlock.build(60, 1.0, voltage_v=120.0, current_a=10.0))
    image = RegisterImage.build(core.snapshot(), Identity.from_config(core.config))
    ident = device_identification(Identity.from_config(core.config))
    dark = MeterEndpoint(image, ident)
    dark.silent = True
    return {1: MeterEndpoint(image, ident), 2: dark}


def test_unit_dispatch_without_faults() -> None:
    units = _endpoints()
    tcp = Dispatcher(units, port=5020)
    line = Dispatcher(units, serial_line=True)
    answer = units[1].respond(READ)
    assert answer[:2] == bytes((3, 8))
    for d in (tcp, line):
        assert d.answer(1, READ) == answer
        assert d.answer(2, READ) is None  # dark and silent
    assert tcp.answer(9, READ) == bytes((0x83, ExceptionCode.GATEWAY_TARGET_FAILED))
    assert Dispatcher(units, unknown_unit=UnknownUnit.SILENT).answer(9, READ) is None
    assert line.answer(9, READ) is None  # another slave's request
    assert line.unknown_unit is UnknownUnit.SILENT and line.port == RTU_PORT


def test_serial_broadcast_writes_every_meter_and_nobody_answers() -> None:
    written: list[tuple[int, list[int]]] = []
    units = _endpoints()
    for ep in units.values():
        ep.write = lambda address, values: written.append((address, values))
    line = Dispatcher(units, serial_line=True)
    assert line.answer(0, WRITE_COMMAND) is None
    assert written == [(200, [21212]), (200, [21212])]
    assert line.answer(0, READ) is None and len(written) == 2  # a broadcast read: ignored
    # TCP has no broadcast: unit 0 is an unknown unit there
    tcp = Dispatcher(units)
    assert tcp.answer(0, WRITE_COMMAND) == bytes((0x86, ExceptionCode.GATEWAY_TARGET_FAILED))
    assert len(written) == 2


def test_interceptor_is_asked_only_for_requests_that_would_be_answered() -> None:
    calls: list[tuple[int, bytes, int]] = []

    def fail(unit: int, pdu: bytes, connection: int) -> Intercept | None:
        calls.append((unit, pdu, connection))
        return Intercept(exception_code=6, delay_s=0.25)

    units = _endpoints()
    tcp, line = Dispatcher(units), Dispatcher(units, serial_line=True)
    tcp.interceptor = line.interceptor = fail
    for d, connection in ((tcp, 7), (line, 0)):
        pdu, action = d.decide(1, READ, connection)
        assert pdu == bytes((0x83, 6)) and action is not None and action.delay_s == 0.25
        assert d.decide(2, READ, connection) == (None, None)  # a dark meter stays dark
    assert line.decide(0, WRITE_COMMAND, 0) == (None, None)  # a broadcast: nobody answers
    assert tcp.decide(0, WRITE_COMMAND, 7)[0] == bytes((0x86, 6))  # an unknown unit on TCP
    assert tcp.decide(9, READ, 7)[0] == bytes((0x83, 6))  # TCP answers unknown units
    assert line.decide(9, READ, 0) == (None, None)  # a line never answers them
    assert calls == [(1, READ, 7), (1, READ, 0), (0, WRITE_COMMAND, 7), (9, READ, 7)]


def test_a_drop_closes_a_tcp_connection_and_mutes_a_serial_line() -> None:
    units = _endpoints()
    tcp, line = Dispatcher(units), Dispatcher(units, serial_line=True)
    tcp.interceptor = line.interceptor = lambda unit, pdu, conn: Intercept(drop_connection=True)
    pdu, action = tcp.decide(1, READ, 3)
    assert pdu is None and action is not None and action.drop_connection
    assert line.decide(1, READ, 0) == (None, None)


def test_intercept_rewrites_the_framed_answer() -> None:
    frame = bytes(range(17))
    assert Intercept().wire(frame) == frame
    assert Intercept(truncate=True).wire(frame) == frame[:8]
    assert Intercept(replace_with=b"xyz").wire(frame) == b"xyz"


async def test_tcp_and_rtu_answer_the_same(pty: tuple[int, str]) -> None:
    """The same requests and faults over both transports: the same PDUs and silences."""
    master, device = pty
    units = _endpoints()
    tcp = ModbusTcpServer(units, "127.0.0.1", 0, unknown_unit=UnknownUnit.SILENT)
    rtu = ModbusRtuServer(units, SerialSettings(device, 115200))
    calls: dict[str, list[tuple[int, bytes]]] = {"tcp": [], "rtu": []}

    def interceptor(name: str):  # type: ignore[no-untyped-def]
        def intercept(unit: int, pdu: bytes, connection: int) -> Intercept | None:
            calls[name].append((unit, pdu))
            if pdu[2:3] == b"\x08":  # address 8: an exception fault
                return Intercept(exception_code=4)
            if pdu[2:3] == b"\x10":  # address 16: answer cut short
                return Intercept(truncate=True)
            return None

        return intercept

    await tcp.start()
    await rtu.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", tcp.port)

    async def over_tcp(unit: int, pdu: bytes) -> bytes | None:
        writer.write(struct.pack(">HHHB", 1, 0, len(pdu) + 1, unit) + pdu)
        try:
            data = await asyncio.wait_for(reader.read(300), 0.3)
        except TimeoutError:
            return None
        return data[7:]

    async def over_rtu(unit: int, pdu: bytes) -> bytes | None:
        os.write(master, rtu_frame(bytes((unit,)) + pdu))
        data = await rtu_reply(master, 0.3)
        return data[1:-2] if data else None

    requests = [
        (1, READ),  # answered
        (2, READ),  # dark meter: nothing
        (9, READ),  # not served here: nothing
        (1, struct.pack(">BHH", 3, 8, 4)),  # exception fault
        (2, struct.pack(">BHH", 3, 8, 4)),  # exception fault on the dark meter: nothing
        (1, bytes((0x11,))),  # unsupported function: 0x91 0x01
    ]
    try:
        answers = {}
        for name, ask in (("tcp", over_tcp), ("rtu", over_rtu)):
            server = tcp if name == "tcp" else rtu
            server.dispatcher.interceptor = interceptor(name)
            answers[name] = [await ask(unit, pdu) for unit, pdu in requests]
        assert answers["tcp"] == answers["rtu"]
        assert answers["tcp"] == [
            units[1].respond(READ),
            None,
            None,
            bytes((0x83, 4)),
            None,
            bytes((0x91, ExceptionCode.ILLEGAL_FUNCTION)),
        ]
        assert (
            calls["tcp"]
            == calls["rtu"]
            == [
                (1, READ),
                (1, struct.pack(">BHH", 3, 8, 4)),
                (1, bytes((0x11,))),
            ]
        )
        # truncation cuts each transport's own frame in half
        cut = struct.pack(">BHH", 3, 16, 4)
        writer.write(struct.pack(">HHHB", 2, 0, 6, 1) + cut)
        full_tcp = 7 + len(units[1].respond(cut))
        assert len(await asyncio.wait_for(reader.read(300), 1)) == full_tcp // 2
        os.write(master, rtu_frame(bytes((1,)) + cut))
        assert len(await rtu_reply(master, 1.0)) == (1 + len(units[1].respond(cut)) + 2) // 2
    finally:
        writer.close()
        await tcp.close()
        await rtu.close()
