"""Raw Modbus/TCP requests, for what a well-behaved client library will not send.

pymodbus refuses to build a read of 0 or 126 registers and knows no undefined
function codes, yet the contract says what the meter answers to them; this sends one
MBAP-framed PDU over a fresh connection and returns the response PDU.
"""

from __future__ import annotations

import asyncio
import struct

TIMEOUT_S = 2.0


async def raw_pdu(host: str, port: int, unit: int, pdu: bytes) -> bytes:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), TIMEOUT_S)
    try:
        writer.write(struct.pack(">HHHB", 0x4848, 0, len(pdu) + 1, unit) + pdu)
        await writer.drain()
        header = await asyncio.wait_for(reader.readexactly(7), TIMEOUT_S)
        _tid, _proto, length, _unit = struct.unpack(">HHHB", header)
        return await asyncio.wait_for(reader.readexactly(length - 1), TIMEOUT_S)
    finally:
        writer.close()


def read_pdu(fc: int, address: int, count: int) -> bytes:
    return struct.pack(">BHH", fc, address, count)


def exception_code(fc: int, response: bytes) -> int | None:
    """The exception code of an exception response to ``fc``, None for a normal one."""
    if len(response) == 2 and response[0] == (fc | 0x80):
        return response[1]
    return None
