"""The wire-independent half of the Modbus servers: endpoints, PDUs and hook types.

Theory of operation
-------------------
A port serves a dict ``unit id -> MeterEndpoint``. An endpoint holds the meter's
current :class:`~twin.registers.map.RegisterImage` (rebuilt by the runtime when the
meter changes, never per request), its device-identification objects and, when
writes are enabled, a write handler that decodes block C writes into core commands.

``MeterEndpoint.respond(pdu)`` turns a request PDU into a response PDU. Read
responses (FC01–04, exceptions included) are memoised per endpoint, keyed by the
request PDU bytes, and the memo is dropped when the image changes: a poller asking
the same 40 registers over and over costs one dict lookup. FC43/14 (Read Device
Identification) is encoded here too.

The hook types the servers offer (:class:`Intercept`, :data:`Interceptor`,
:data:`TraceHook`) live here so fault injection (:mod:`twin.modbus.faults`) needs neither
a socket nor pymodbus. The TCP server is :mod:`twin.modbus.tcp`, the RTU server
:mod:`twin.modbus.rtu`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from twin.registers import MAX_WRITE_REGISTERS, ExceptionCode, ModbusException

ILLEGAL_FUNCTION = ExceptionCode.ILLEGAL_FUNCTION
ILLEGAL_ADDRESS = ExceptionCode.ILLEGAL_DATA_ADDRESS
ILLEGAL_VALUE = ExceptionCode.ILLEGAL_DATA_VALUE
GATEWAY_TARGET_FAILED = ExceptionCode.GATEWAY_TARGET_FAILED
CACHE_MAX = 4096  # distinct read requests memoised per image (bounds a scanning client)
FLEET_CACHE_BUDGET = 65_536  # memoised answers across all meters of a process (~30 MB)


class Image(Protocol):
    """What the server needs of a register image (``twin.registers.map.RegisterImage``)."""

    def read_registers(self, address: int, count: int) -> bytes: ...

    def read_bits(self, fc: int, address: int, count: int) -> bytes: ...


WriteHandler = Callable[[int, list[int]], None]  # raises ModbusException(code) to refuse


def _code(exc: Exception) -> int:
    code = getattr(exc, "code", None)
    return int(code) if isinstance(code, int) else ILLEGAL_VALUE


class MeterEndpoint:
    """One meter as seen on the wire."""

    __slots__ = ("_image", "cache", "cache_max", "device_id", "silent", "write")

    def __init__(
        self,
        image: Image,
        device_id: dict[int, bytes],
        write: WriteHandler | None = None,
        *,
        cache_max: int = CACHE_MAX,
    ) -> None:
        self._image = image
        # A fleet shares one memo budget: 1,000 frozen meters scanned at every
        # address must not hold 1,000 full memos.
        self.cache_max = cache_max
        self.device_id = device_id
        self.write = write  # None: writes are off, every write answers 0x01
        self.cache: dict[bytes, bytes] = {}
        # True while the meter is dark and configured to go silent on power loss:
        # the servers then answer nothing for this unit (its comms have no supply).
        self.silent = False

    @property
    def image(self) -> Image:
        return self._image

    def set_image(self, image: Image) -> None:
        self._image = image
        self.cache = {}

    def respond(self, pdu: bytes) -> bytes:
        resp = self.cache.get(pdu)
        if resp is None:
            resp = self._handle(pdu)
            if pdu and pdu[0] <= 4 and len(self.cache) < self.cache_max:
                self.cache[pdu] = resp
        return resp

    def _handle(self, pdu: bytes) -> bytes:
        fc = pdu[0]
        try:
            if fc in (3, 4) or fc in (1, 2):
                if len(pdu) != 5:
                    return bytes((fc | 0x80, ILLEGAL_VALUE))
                address = (pdu[1] << 8) | pdu[2]
                count = (pdu[3] << 8) | pdu[4]
                if fc >= 3:
                    data = self._image.read_registers(address, count)
                else:
                    data = self._image.read_bits(fc, address, count)
                return bytes((fc, len(data))) + data
            if fc == 6 or fc == 16:
                return self._handle_write(fc, pdu)
            if fc == 0x2B:
                return encode_device_id(self.device_id, pdu)
        except ModbusException as exc:
            return bytes((fc | 0x80, _code(exc)))
        return bytes(((fc | 0x80) & 0xFF, ILLEGAL_FUNCTION))

    def _handle_write(self, fc: int, pdu: bytes) -> bytes:
        if self.write is None:
            return bytes((fc | 0x80, ILLEGAL_FUNCTION))
        if fc == 6:
            if len(pdu) != 5:
                return bytes((fc | 0x80, ILLEGAL_VALUE))
            values = [(pdu[3] << 8) | pdu[4]]
            echo = pdu
        else:
            count = (pdu[3] << 8) | pdu[4] if len(pdu) >= 5 else 0
            if (
                not 1 <= count <= MAX_WRITE_REGISTERS
                or len(pdu) != 6 + 2 * count
                or pdu[5] != 2 * count
            ):
                return bytes((fc | 0x80, ILLEGAL_VALUE))
            values = [(pdu[6 + 2 * i] << 8) | pdu[7 + 2 * i] for i in range(count)]
            echo = pdu[:5]
        self.write((pdu[1] << 8) | pdu[2], values)
        return echo


def encode_device_id(objects: dict[int, bytes], pdu: bytes) -> bytes:
    """FC43/14 Read Device Identification (stream access 1–3, individual access 4)."""
    exc = ModbusException  # raised with the standard codes; caught by the caller
    if len(pdu) != 4 or pdu[1] != 0x0E:
        raise exc(ILLEGAL_FUNCTION if len(pdu) >= 2 and pdu[1] != 0x0E else ILLEGAL_VALUE)
    read_code, object_id = pdu[2], pdu[3]
    if read_code not in (1, 2, 3, 4):
        raise exc(ILLEGAL_VALUE)
    if read_code == 4:
        if object_id not in objects:
            raise exc(ILLEGAL_ADDRESS)
        ids = [object_id]
    else:
        top = {1: 0x02, 2: 0x7F, 3: 0xFF}[read_code]
        ids = sorted(i for i in objects if i <= top)
        # An unknown start object restarts the stream at the first object (spec 6.21).
        start = object_id if object_id in ids else (ids[0] if ids else 0)
        ids = [i for i in ids if i >= start]
    top_id = max(objects, default=0)
    conformity = 0x80 | (3 if top_id >= 0x80 else 2 if top_id >= 0x03 else 1)
    body, more, next_id, n = b"", 0, 0, 0
    for i in ids:
        value = objects[i][:245]
        item = bytes((i, len(value))) + value
        if 7 + len(body) + len(item) > 253:  # PDU limit: the rest follows on request
            more, next_id = 0xFF, i
            break
        body += item
        n += 1
    return bytes((0x2B, 0x0E, read_code, conformity, more, next_id, n)) + body


# ------------------------------------------------------------------ hooks

TraceHook = Callable[[str, int, bytes, float], None]  # direction "rx"/"tx", unit, frame, time


@dataclass(frozen=True, slots=True)
class Intercept:
    """What an interceptor does to one request instead of the normal answer."""

    delay_s: float = 0.0
    silent: bool = False
    exception_code: int | None = None
    drop_connection: bool = False
    replace_with: bytes | None = None  # raw bytes sent instead of the frame (garbage)
    truncate: bool = False  # send the real answer cut short (only the server knows it)


# (unit, request pdu, connection number) -> action. Connection numbers are unique across
# every server of the process (0 on RTU), so "drop after N requests" counts per
# connection; a runtime serving several ports gives each server its own interceptor.
Interceptor = Callable[[int, bytes, int], Intercept | None]


def unit_ids_text(units: Iterable[int]) -> str:
    """Unit ids for a log line: ``1..100`` or ``1,2,3``."""
    ids = sorted(units)
    return f"{ids[0]}..{ids[-1]}" if len(ids) > 3 else ",".join(map(str, ids))
