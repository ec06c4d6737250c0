"""Modbus TCP transport: MBAP framing, sockets, limits and backpressure (no pymodbus).

Theory of operation
-------------------
The server is a lean ``asyncio.Protocol`` rather than pymodbus's server classes,
which cost ~3x the libmodbus C server's latency: it splits MBAP frames itself
(pipelined requests in one chunk, partial frames buffered) and writes all answers
of a chunk in one call. Who answers what is decided by the port's
:class:`~twin.modbus.endpoint.Dispatcher` (the same code the RTU line uses); this
module only frames its answers. Connection limit, idle timeout and the trace hook
sit here; with no trace and no interceptor set a frame never leaves
``data_received``. A client that does not read its answers gets backpressure (its
requests stop being read once its answers queue up), so it costs neither memory nor
other clients' time.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import logging
import time
from typing import cast

from twin.errors import ServeError
from twin.modbus.endpoint import Dispatcher, MeterEndpoint, TraceHook, UnknownUnit, unit_ids_text

log = logging.getLogger(__name__)

_connection_numbers = itertools.count(1)  # unique across every server of the process


class ModbusTcpServer:
    """One listening TCP port serving many unit ids."""

    def __init__(
        self,
        units: dict[int, MeterEndpoint],
        host: str = "127.0.0.1",
        port: int = 5020,
        *,
        unknown_unit: UnknownUnit = UnknownUnit.EXCEPTION,
        max_connections: int = 256,
        idle_timeout_s: float | None = None,
    ) -> None:
        self.dispatcher = Dispatcher(units, unknown_unit=unknown_unit, port=port)
        self.host, self.port = host, port
        self.max_connections = max_connections
        self.idle_timeout_s = idle_timeout_s
        self.trace: TraceHook | None = None
        self.connections: set[_TcpConnection] = set()
        self.refused = 0  # connections closed at once because max_connections were open
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                lambda: _TcpConnection(self), self.host, self.port, reuse_address=True
            )
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ServeError(
                    f"{self.host}:{self.port} is in use; choose another --port"
                ) from None
            raise ServeError(f"cannot listen on {self.host}:{self.port}: {exc.strerror}") from None
        if self.port == 0:  # an ephemeral port: report the one the OS chose
            self.port = self.dispatcher.port = int(self._server.sockets[0].getsockname()[1])
        log.info(
            "Modbus TCP serving on %s:%d, unit ids %s",
            self.host,
            self.port,
            unit_ids_text(self.dispatcher.units),
        )

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for conn in list(self.connections):
                conn.close()
            await self._server.wait_closed()
            self._server = None
            log.info("Modbus TCP on %s:%d closed", self.host, self.port)


class _TcpConnection(asyncio.Protocol):
    __slots__ = ("_buf", "_idle", "_last_rx", "_server", "_transport", "number")

    def __init__(self, server: ModbusTcpServer) -> None:
        self._server = server
        self._buf = b""
        self._transport: asyncio.Transport | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._last_rx = 0.0
        self.number = next(_connection_numbers)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: duck-typed, same API.
        self._transport = cast(asyncio.Transport, transport)
        server = self._server
        if len(server.connections) >= server.max_connections:
            # Refuse cleanly: accepted, then reset at once (no request is read), so the
            # client fails fast instead of hanging in the listen backlog.
            server.refused += 1
            self._transport.abort()
            return
        server.connections.add(self)
        if server.idle_timeout_s:
            self._last_rx = time.monotonic()
            self._idle = asyncio.get_running_loop().call_later(
                server.idle_timeout_s, self._check_idle
            )

    def _check_idle(self) -> None:
        timeout = self._server.idle_timeout_s or 0.0
        left = self._last_rx + timeout - time.monotonic()
        if left <= 0:
            self.close()
        else:
            self._idle = asyncio.get_running_loop().call_later(left, self._check_idle)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def pause_writing(self) -> None:
        # A client that sends but does not read: stop reading its requests until it
        # drains its answers, so its backlog stays in its own socket, not our memory.
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    @property
    def buffered_bytes(self) -> int:
        """Answers written but not yet taken by the client (what backpressure bounds)."""
        transport = self._transport
        return 0 if transport is None else transport.get_write_buffer_size()

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.connections.discard(self)
        self._server.dispatcher.connection_closed(self.number)  # faults may count per connection
        if self._idle is not None:
            self._idle.cancel()
        self._transport = None

    def data_received(self, data: bytes) -> None:
        server = self._server
        if server.idle_timeout_s:
            self._last_rx = time.monotonic()
        buf = self._buf + data if self._buf else data
        dispatcher = server.dispatcher
        slow = server.trace is not None or dispatcher.interceptor is not None
        out: list[bytes] = []
        pos, n = 0, len(buf)
        while n - pos >= 8:
            length = (buf[pos + 4] << 8) | buf[pos + 5]
            end = pos + 6 + length
            if length < 2 or length > 254 or buf[pos + 2] or buf[pos + 3]:
                self._write_out(out)
                self.close()  # not Modbus (bad length or protocol id): nothing to resync on
                return
            if end > n:
                break
            if slow:
                if not self._slow_frame(buf[pos:end], out):
                    self._write_out(out)
                    self.close()  # a drop fault: the answers before it still go out
                    return
            else:
                unit = buf[pos + 6]
                pdu = dispatcher.answer(unit, buf[pos + 7 : end])
                if pdu is not None:
                    out.append(buf[pos : pos + 2] + _mbap_tail(len(pdu), unit) + pdu)
            pos = end
        self._buf = buf[pos:]
        if out:
            self._write_out(out)

    def _write_out(self, out: list[bytes]) -> None:
        if out and self._transport is not None:
            self._transport.write(out[0] if len(out) == 1 else b"".join(out))

    def _slow_frame(self, frame: bytes, out: list[bytes]) -> bool:
        """One frame with a trace or an interceptor set; False: drop the connection."""
        server = self._server
        unit = frame[6]
        trace = server.trace
        if trace is not None:
            trace("rx", unit, frame, time.time())
        pdu, action = server.dispatcher.decide(unit, frame[7:], self.number)
        if pdu is None:
            return action is None or not action.drop_connection
        reply = frame[:2] + _mbap_tail(len(pdu), unit) + pdu
        if action is not None:
            reply = action.wire(reply)
            if action.delay_s > 0:
                if self._transport is not None:
                    asyncio.get_running_loop().call_later(
                        action.delay_s, self._late_write, unit, reply
                    )
                return True
        if trace is not None:
            trace("tx", unit, reply, time.time())
        out.append(reply)
        return True

    def _late_write(self, unit: int, reply: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if self._server.trace is not None:
            self._server.trace("tx", unit, reply, time.time())
        transport.write(reply)


_TAILS: dict[tuple[int, int], bytes] = {}


def _mbap_tail(pdu_len: int, unit: int) -> bytes:
    """MBAP protocol id, length and unit id (memoised: few distinct values)."""
    key = (pdu_len, unit)
    tail = _TAILS.get(key)
    if tail is None:
        tail = _TAILS[key] = bytes((0, 0, (pdu_len + 1) >> 8, (pdu_len + 1) & 0xFF, unit))
    return tail
