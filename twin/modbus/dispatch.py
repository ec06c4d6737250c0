"""Who answers a Modbus request on a port or a serial line, and what a fault does to it.

Theory of operation
-------------------
Every protocol decision is made here and in :mod:`twin.modbus.endpoint`, once, for TCP
and RTU alike; the transports (:mod:`twin.modbus.tcp`, :mod:`twin.modbus.rtu`) only
split and frame bytes, own sockets and serial lines, and apply backpressure and
connection limits.

A port (or a serial line) is one :class:`Dispatcher`: its unit ids map to
:class:`~twin.modbus.endpoint.MeterEndpoint` objects. The dispatcher decides who
answers a request: the unit's endpoint; nobody for a dark meter that goes silent on
power loss, for a broadcast (unit 0 on a serial line: writes act on every meter,
nobody answers) or for a unit the port does not serve when the port is told to stay
silent (always on a serial line: the line has other slaves); else exception 0x0B
(gateway target failed). On TCP, unit ids 0 and 255 (:data:`TCP_UNIT_ALIASES`) reach
the port's meter when the port serves exactly one: the Modbus TCP guide has a directly
connected server answer them and many masters send 255 by default. A serial line
never aliases (unit 0 is its broadcast, 248-255 are reserved there).

While a fault is armed the dispatcher asks its :data:`Interceptor` first
(:meth:`Dispatcher.decide`): it may delay, silence, drop, replace or cut the answer,
or answer an exception instead; a serial line has no connection to drop, so a drop
there is one unanswered request. With no interceptor, the transports call the lean
:meth:`Dispatcher.answer`. Either way the dispatcher counts what it answers, by the
request's function code (``requests``, and ``exceptions`` for exception answers): list
increments read by ``/metrics``.

A transport may memoise framed answers in :attr:`Dispatcher.frames` under its own key
(TCP: the frame after its transaction id) through :meth:`Dispatcher.memoise`: only
normal read answers of a meter, each forgotten when that meter's image or silence
changes, and all of them when an interceptor is set, so a hit is exactly what the
full path would answer and counts as one request of its function code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from twin.modbus.endpoint import ILLEGAL_FUNCTION, MeterEndpoint, UnknownUnit
from twin.registers import ExceptionCode

GATEWAY_TARGET_FAILED: Final = ExceptionCode.GATEWAY_TARGET_FAILED
RTU_PORT: Final = 0  # the port a serial line reports to fault filters (``port=0``)
BROADCAST_UNIT: Final = 0  # on a serial line: every meter acts, nobody answers
WRITE_FUNCTIONS: Final = frozenset({5, 6, 15, 16, 22, 23})  # what a read-only role may not send
#: Unit ids a one-meter TCP port answers as its meter (``--unit-alias``; empty: 0x0B).
TCP_UNIT_ALIASES: Final = frozenset({0, 255})

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


class Dispatcher:
    """The unit ids of one port or serial line, and who answers a request."""

    __slots__ = (
        "_interceptor",
        "_lookup",
        "connection_closed_hook",
        "exceptions",
        "frames",
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
        # Framed answers a transport memoised (see memoise); emptied when an interceptor
        # is set, so a transport that finds its frame here needs no other check.
        self.frames: dict[bytes, bytes] = {}
        self._interceptor: Interceptor | None = None  # set only while a fault is armed
        # Told when a TCP connection closes (per-connection fault counts can go).
        self.connection_closed_hook: Callable[[int], None] | None = None
        # Answers sent, by the request's function code (index 0..255), and how many of
        # them were exceptions: public counters for /metrics.
        self.requests = [0] * 256
        self.exceptions = [0] * 256

    @property
    def interceptor(self) -> Interceptor | None:
        return self._interceptor

    @interceptor.setter
    def interceptor(self, interceptor: Interceptor | None) -> None:
        self._interceptor = interceptor
        self.frames.clear()

    def memoise(self, unit: int, response: bytes, key: bytes, framed: bytes) -> None:
        """Memoise ``framed`` (the transport's frame of ``response``, the answer to a
        request to ``unit``) in :attr:`frames` under ``key`` if it is a normal read
        answer of a meter with no interceptor armed; the meter forgets it when its
        answers change. A transport that finds ``key`` there sends ``framed`` and
        counts the request (``requests[fc] += 1``): no exception, no other counter."""
        if 0 < response[0] <= 4 and self._interceptor is None and key not in self.frames:
            ep = self._lookup.get(unit)
            if ep is not None:
                ep.remember(self.frames, key, framed)

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
        interceptor = self._interceptor
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
