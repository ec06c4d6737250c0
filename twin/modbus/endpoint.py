"""The sans-IO Modbus endpoint: a request PDU in, the answer (or none) out.

Theory of operation
-------------------
Every protocol decision is made here, once, for TCP and RTU alike; the transports
(:mod:`twin.modbus.tcp`, :mod:`twin.modbus.rtu`) only split and frame bytes, own
sockets and serial lines, and apply backpressure and connection limits.

A port (or a serial line) is one :class:`Dispatcher`: its unit ids map to
:class:`MeterEndpoint` objects. The dispatcher decides who answers a request: the
unit's endpoint; nobody for a dark meter that goes silent on power loss, for a
broadcast (unit 0 on a serial line: writes act on every meter, nobody answers) or
for a unit the port does not serve when the port is told to stay silent (always on
a serial line: the line has other slaves); else exception 0x0B (gateway target
failed). On TCP, unit ids 0 and 255 (:data:`TCP_UNIT_ALIASES`) reach the port's meter
when the port serves exactly one: the Modbus TCP guide has a directly connected server
answer them and many masters send 255 by default. A serial line never aliases (unit 0
is its broadcast, 248-255 are reserved there).

While a fault is armed the dispatcher asks its :data:`Interceptor` first
(:meth:`Dispatcher.decide`): it may delay, silence, drop, replace or cut the answer,
or answer an exception instead; a serial line has no connection to drop, so a drop
there is one unanswered request. With no interceptor, the transports call the lean
:meth:`Dispatcher.answer`. Either way the dispatcher counts what it answers, by the
request's function code (``requests``, and ``exceptions`` for exception answers): two
list increments per request, read by ``/metrics``.

``MeterEndpoint.respond(pdu)`` turns a request PDU into a response PDU from the
meter's current :class:`~twin.registers.RegisterImage` (rebuilt by the runtime
when the meter changes, never per request). Read responses (FC01-04, exceptions
included) are memoised per endpoint, keyed by the request PDU bytes, and the memo is
dropped when the image changes: a poller asking the same 40 registers over and over
costs one dict lookup. Writes go to the endpoint's write handler (block C decoded
into core commands by the runtime); FC43/14 (Read Device Identification) is encoded
here too. Limits and exception codes are the register map's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Protocol

from twin.registers import MAX_WRITE_REGISTERS, ExceptionCode, ModbusException

ILLEGAL_FUNCTION: Final = ExceptionCode.ILLEGAL_FUNCTION
ILLEGAL_ADDRESS: Final = ExceptionCode.ILLEGAL_DATA_ADDRESS
ILLEGAL_VALUE: Final = ExceptionCode.ILLEGAL_DATA_VALUE
GATEWAY_TARGET_FAILED: Final = ExceptionCode.GATEWAY_TARGET_FAILED
CACHE_MAX: Final = 4096  # distinct read requests memoised per image (bounds a scanning client)
FLEET_CACHE_BUDGET: Final = 65_536  # memoised answers across all meters of a process (~30 MB)
MAX_PDU_BYTES: Final = 253  # Modbus PDU size limit (function code + data)
RTU_PORT: Final = 0  # the port a serial line reports to fault filters (``port=0``)
BROADCAST_UNIT: Final = 0  # on a serial line: every meter acts, nobody answers
WRITE_FUNCTIONS: Final = frozenset({5, 6, 15, 16, 22, 23})  # what a read-only role may not send
#: Unit ids a one-meter TCP port answers as its meter (``--unit-alias``; empty: 0x0B).
TCP_UNIT_ALIASES: Final = frozenset({0, 255})


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
        if 7 + len(body) + len(item) > MAX_PDU_BYTES:  # PDU limit: the rest follows on request
            more, next_id = 0xFF, i
            break
        body += item
        n += 1
    return bytes((0x2B, 0x0E, read_code, conformity, more, next_id, n)) + body


# ------------------------------------------------------------------ hooks and dispatch

TraceHook = Callable[[str, int, bytes, float], None]  # direction "rx"/"tx", unit, frame, time


@dataclass(frozen=True, slots=True)
class Intercept:
    """What an interceptor does to one request instead of the normal answer."""

    delay_s: float = 0.0
    silent: bool = False
    exception_code: int | None = None
    drop_connection: bool = False
    replace_with: bytes | None = None  # raw bytes sent instead of the frame (garbage)
    truncate: bool = False  # send the real answer cut short

    def wire(self, frame: bytes) -> bytes:
        """The bytes that go out instead of ``frame`` (the answer as the transport framed it)."""
        if self.replace_with is not None:
            return self.replace_with
        if self.truncate:
            return frame[: max(1, len(frame) // 2)]
        return frame


# (unit, request pdu, connection number) -> action. Connection numbers are unique across
# every server of the process (0 on a serial line), so "drop after N requests" counts per
# connection; a runtime serving several ports gives each port its own interceptor.
Interceptor = Callable[[int, bytes, int], Intercept | None]

_DROP: Final = Intercept(drop_connection=True)


class UnknownUnit(StrEnum):
    """What a TCP port answers for a unit id it does not serve."""

    EXCEPTION = "exception"  # 0x0B gateway target device failed to respond
    SILENT = "silent"  # nothing: the client times out


class Dispatcher:
    """The unit ids of one port or serial line, and who answers a request."""

    __slots__ = (
        "_lookup",
        "connection_closed_hook",
        "exceptions",
        "interceptor",
        "port",
        "requests",
        "serial_line",
        "unit_aliases",
        "units",
        "unknown_unit",
    )

    def __init__(
        self,
        units: dict[int, MeterEndpoint],
        *,
        unknown_unit: UnknownUnit = UnknownUnit.EXCEPTION,
        serial_line: bool = False,
        port: int = RTU_PORT,
        unit_aliases: frozenset[int] = TCP_UNIT_ALIASES,
    ) -> None:
        self.units = units
        self.serial_line = serial_line
        # Aliases only where one meter is unambiguous and no broadcast is meant; a real
        # unit id always wins over an alias (a fleet may serve unit 255 itself).
        self.unit_aliases = frozenset() if serial_line or len(units) != 1 else unit_aliases
        only = next(iter(units.values()), None)
        aliased = {a: only for a in self.unit_aliases if a not in units and only is not None}
        self._lookup: dict[int, MeterEndpoint] = {**aliased, **units}
        # A serial line has other slaves: what is not ours is never answered.
        self.unknown_unit = UnknownUnit.SILENT if serial_line else unknown_unit
        self.port = port  # what fault filters and traces call this port (RTU_PORT on a line)
        self.interceptor: Interceptor | None = None  # set only while a fault is armed
        # Told when a TCP connection closes (per-connection fault counts can go).
        self.connection_closed_hook: Callable[[int], None] | None = None
        # Answers sent, by the request's function code (index 0..255), and how many of
        # them were exceptions: public counters for /metrics.
        self.requests = [0] * 256
        self.exceptions = [0] * 256

    def answer(self, unit: int, pdu: bytes) -> bytes | None:
        """The response PDU with no interceptor armed; None: nobody answers."""
        ep = self._lookup.get(unit)
        if ep is not None:
            if ep.silent:
                return None
            resp = ep.respond(pdu)
        elif self.serial_line and unit == BROADCAST_UNIT:
            if pdu and pdu[0] in (6, 16):
                for each in self.units.values():
                    each.respond(pdu)
            return None
        elif self.unknown_unit is UnknownUnit.EXCEPTION:
            resp = exception_pdu(pdu, GATEWAY_TARGET_FAILED)
        else:
            return None
        self._count(pdu, resp)
        return resp

    def _count(self, pdu: bytes, resp: bytes) -> None:
        fc = pdu[0] if pdu else 0
        self.requests[fc] += 1
        if resp[0] & 0x80:
            self.exceptions[fc] += 1

    def decide(
        self, unit: int, pdu: bytes, connection: int, *, read_only: bool = False
    ) -> tuple[bytes | None, Intercept | None]:
        """The response PDU and what to do to it; the interceptor is asked only for a
        request this port would answer (not a broadcast, another slave's or a dark
        meter's). A drop comes back as ``(None, Intercept(drop_connection=True))``.
        ``read_only``: the connection's role may not write (Modbus/TCP Security), so a
        write the port would answer gets exception 0x01, as writes do when they are off."""
        if read_only and pdu and pdu[0] in WRITE_FUNCTIONS and self._answers(unit):
            return exception_pdu(pdu, ILLEGAL_FUNCTION), None
        interceptor = self.interceptor
        if interceptor is None or not self._answers(unit):
            return self.answer(unit, pdu), None
        action = interceptor(unit, pdu, connection)
        if action is None:
            return self.answer(unit, pdu), None
        if action.drop_connection:
            # a serial line has no connection to drop: the slave stays mute
            return None, None if self.serial_line else _DROP
        if action.silent:
            return None, None
        if action.exception_code is not None:
            resp = exception_pdu(pdu, action.exception_code)
            self._count(pdu, resp)
            return resp, action
        return self.answer(unit, pdu), action

    def _answers(self, unit: int) -> bool:
        """Whether a request to ``unit`` gets an answer here when no fault intervenes."""
        ep = self._lookup.get(unit)
        if ep is not None:
            return not ep.silent
        # On a serial line unknown units (and the broadcast unit 0) are always silent.
        return self.unknown_unit is UnknownUnit.EXCEPTION

    def connection_closed(self, connection: int) -> None:
        hook = self.connection_closed_hook
        if hook is not None:
            hook(connection)


def exception_pdu(request: bytes, code: int) -> bytes:
    """The exception response to ``request``: its function code with bit 7 set, then code."""
    return bytes((((request[0] if request else 0) | 0x80) & 0xFF, code))


def unit_ids_text(units: Iterable[int]) -> str:
    """Unit ids for a log line: ``1..100`` or ``1,2,3``."""
    ids = sorted(units)
    return f"{ids[0]}..{ids[-1]}" if len(ids) > 3 else ",".join(map(str, ids))
