"""The sans-IO Modbus endpoint: one meter as seen on the wire, a request PDU in, the
answer out.

Theory of operation
-------------------
``MeterEndpoint.respond(pdu)`` turns a request PDU into a response PDU from the
meter's current :class:`~twin.registers.RegisterImage` (rebuilt by the runtime
when the meter changes, never per request). Read responses (FC01-04, exceptions
included) are memoised per endpoint, keyed by the request PDU bytes, and the memo is
dropped when the image changes: a poller asking the same 40 registers over and over
costs one dict lookup. Transports may memoise whole framed answers of a meter too
(:meth:`MeterEndpoint.remember`, through :meth:`twin.modbus.dispatch.Dispatcher.memoise`);
the endpoint forgets them when its image or its silence changes. Writes go to the
endpoint's write handler (block C decoded into core commands by the runtime);
FC43/14 (Read Device Identification) is encoded here too. Limits and exception codes
are the register map's. Who answers a request (which unit, faults, broadcasts) is
decided by :mod:`twin.modbus.dispatch`.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Final, Protocol

from twin.registers import MAX_WRITE_REGISTERS, ExceptionCode, ModbusException

ILLEGAL_FUNCTION: Final = ExceptionCode.ILLEGAL_FUNCTION
ILLEGAL_ADDRESS: Final = ExceptionCode.ILLEGAL_DATA_ADDRESS
ILLEGAL_VALUE: Final = ExceptionCode.ILLEGAL_DATA_VALUE
CACHE_MAX: Final = 4096  # distinct read requests memoised per image (bounds a scanning client)
FLEET_CACHE_BUDGET: Final = 65_536  # memoised answers across all meters of a process (~30 MB)
FRAMES_MAX: Final = 1024  # framed answers a port memoises (a poller asks a few distinct reads)
MAX_PDU_BYTES: Final = 253  # Modbus PDU size limit (function code + data)


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

    __slots__ = ("_image", "_memoised", "_silent", "cache", "cache_max", "device_id", "write")

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
        self._silent = False
        # (memo, key) of this meter's answers in transports' memos (Dispatcher.frames)
        self._memoised: list[tuple[dict[bytes, bytes], bytes]] = []

    @property
    def image(self) -> Image:
        return self._image

    def set_image(self, image: Image) -> None:
        self._image = image
        self.cache = {}
        self._forget()

    @property
    def silent(self) -> bool:
        """True while the meter is dark and configured to go silent on power loss: the
        servers then answer nothing for this unit (its comms have no supply)."""
        return self._silent

    @silent.setter
    def silent(self, silent: bool) -> None:
        if silent != self._silent:
            self._silent = silent
            self._forget()

    def remember(self, memo: dict[bytes, bytes], key: bytes, answer: bytes) -> None:
        """Put one of this meter's answers in a transport's memo until they change."""
        if len(self._memoised) >= FRAMES_MAX:
            self._forget()  # entries a cleared memo no longer holds pile up here otherwise
        if len(memo) < FRAMES_MAX:
            memo[key] = answer
            self._memoised.append((memo, key))

    def _forget(self) -> None:
        if self._memoised:
            for memo, key in self._memoised:
                memo.pop(key, None)
            self._memoised = []

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
        if 7 + len(body) + len(item) > MAX_PDU_BYTES:  # PDU limit: the rest follows on request
            more, next_id = 0xFF, i
            break
        body += item
        n += 1
    return bytes((0x2B, 0x0E, read_code, conformity, more, next_id, n)) + body


class UnknownUnit(StrEnum):
    """What a TCP port answers for a unit id it does not serve."""

    EXCEPTION = "exception"  # 0x0B gateway target device failed to respond
    SILENT = "silent"  # nothing: the client times out
