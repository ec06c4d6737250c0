"""Modbus TCP transport (plain or TLS): MBAP framing, sockets, limits and backpressure.

Theory of operation
-------------------
The server is a lean ``asyncio.Protocol`` rather than pymodbus's server classes,
which cost ~3x the libmodbus C server's latency: it splits MBAP frames itself
(pipelined requests in one chunk, partial frames buffered) and writes the answers
of up to :data:`FRAMES_PER_ROUND` frames in one call. Who answers what is decided by
the port's :class:`~twin.modbus.endpoint.Dispatcher` (the same code the RTU line
uses); this module only frames its answers. With no trace, no interceptor and full
rights a frame never leaves :meth:`_TcpConnection._serve`.

Nobody holds the twin hostage (each limit a named constant below):

- Backpressure: between rounds the connection checks its queued output; past
  :data:`OUTPUT_HIGH_BYTES` (the transport's high-water mark) it stops parsing,
  keeps the unparsed requests (at most one read) and stops reading the socket until
  the client drains its answers. A client that never reads costs one read buffer and
  64 KB, never the others' time. Answers held back by a delay fault count too
  (:data:`MAX_LATE_ANSWERS`).
- Slots: an idle timeout (:data:`DEFAULT_IDLE_TIMEOUT_S`, counted from the last
  complete request, so a byte-a-second client is idle too), a timeout for an
  incomplete frame (:data:`FRAME_TIMEOUT_S`), TCP keepalive for vanished peers, and at
  the connection limit the longest-idle connection is closed to admit the new one.
  One sweeper task per server enforces the timeouts (a coarse clock, no timer per
  connection).
- TLS (Modbus/TCP Security, :mod:`twin.modbus.security`): the handshake requires a
  client certificate from the configured CA; the role in it decides whether the
  connection may write. A read-only connection's writes answer exception 0x01.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import logging
import socket
import time
from typing import Final, cast

from twin.errors import ServeError
from twin.modbus.endpoint import (
    TCP_UNIT_ALIASES,
    Dispatcher,
    MeterEndpoint,
    TraceHook,
    UnknownUnit,
    unit_ids_text,
)
from twin.modbus.security import READ_WRITE, TlsPolicy, certificate_role

log = logging.getLogger(__name__)

OUTPUT_HIGH_BYTES: Final = 64 * 1024  # queued answers past which a connection is not read
OUTPUT_LOW_BYTES: Final = 16 * 1024  # ... and below which it is read again
FRAMES_PER_ROUND: Final = 64  # frames answered between two looks at the queued output
MAX_LATE_ANSWERS: Final = 64  # answers held by a delay fault per connection before pausing
DEFAULT_IDLE_TIMEOUT_S: Final = 60.0  # no complete request for this long: closed
FRAME_TIMEOUT_S: Final = 5.0  # an incomplete frame older than this: closed
TLS_HANDSHAKE_TIMEOUT_S: Final = 10.0
SWEEP_S: Final = 0.25  # the sweeper's longest period (at most a quarter of a timeout)
KEEPALIVE_IDLE_S: Final = 30
KEEPALIVE_INTERVAL_S: Final = 10
KEEPALIVE_PROBES: Final = 3
MBAP_MAX_LENGTH: Final = 254  # unit id + a PDU of at most 253 bytes

_connection_numbers = itertools.count(1)  # unique across every server of the process


class ModbusTcpServer:
    """One listening TCP port serving many unit ids (plain TCP, or TLS with ``tls``)."""

    def __init__(
        self,
        units: dict[int, MeterEndpoint],
        host: str = "127.0.0.1",
        port: int = 5020,
        *,
        unknown_unit: UnknownUnit = UnknownUnit.EXCEPTION,
        max_connections: int = 256,
        idle_timeout_s: float | None = DEFAULT_IDLE_TIMEOUT_S,
        frame_timeout_s: float = FRAME_TIMEOUT_S,
        unit_aliases: frozenset[int] = TCP_UNIT_ALIASES,
        tls: TlsPolicy | None = None,
    ) -> None:
        self.dispatcher = Dispatcher(
            units, unknown_unit=unknown_unit, port=port, unit_aliases=unit_aliases
        )
        self.host, self.port = host, port
        self.max_connections = max_connections
        self.idle_timeout_s = idle_timeout_s
        self.frame_timeout_s = frame_timeout_s
        self.tls = tls
        self.trace: TraceHook | None = None
        self.connections: set[_TcpConnection] = set()
        self.evicted = 0  # connections closed to admit a new one at max_connections
        self.timed_out = 0  # connections closed by the idle or incomplete-frame timeout
        self.now = time.monotonic()  # the coarse clock the sweeper advances
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def scheme(self) -> str:
        return "Modbus/TCP Security (TLS)" if self.tls is not None else "Modbus TCP"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        context = self.tls.context if self.tls is not None else None
        try:
            self._server = await loop.create_server(
                lambda: _TcpConnection(self),
                self.host,
                self.port,
                reuse_address=True,
                ssl=context,
                ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT_S if context else None,
            )
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ServeError(
                    f"{self.host}:{self.port} is in use; choose another --port"
                ) from None
            raise ServeError(f"cannot listen on {self.host}:{self.port}: {exc.strerror}") from None
        if self.port == 0:  # an ephemeral port: report the one the OS chose
            self.port = self.dispatcher.port = int(self._server.sockets[0].getsockname()[1])
        self._sweeper = asyncio.create_task(self._sweep())
        log.info(
            "%s serving on %s:%d, unit ids %s",
            self.scheme,
            self.host,
            self.port,
            unit_ids_text(self.dispatcher.units),
        )

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        if self._server is not None:
            self._server.close()
            for conn in list(self.connections):
                conn.close()
            await self._server.wait_closed()
            self._server = None
            log.info("%s on %s:%d closed", self.scheme, self.host, self.port)

    async def _sweep(self) -> None:
        # The coarse clock lags by up to one period, so a timeout fires within one
        # period of its nominal value; a period of a quarter keeps that within 25 %.
        timeouts = [t for t in (self.idle_timeout_s, self.frame_timeout_s) if t]
        period = min([SWEEP_S, *(t / 4 for t in timeouts)])
        while True:
            await asyncio.sleep(period)
            self.sweep()

    def sweep(self) -> None:
        """Advance the coarse clock; close idle connections and stale incomplete frames."""
        now = self.now = time.monotonic()
        idle, frame = self.idle_timeout_s, self.frame_timeout_s
        for conn in list(self.connections):
            stale_frame = conn.partial_since and now - conn.partial_since > frame
            if stale_frame or (idle and now - conn.last_request > idle):
                self.timed_out += 1
                conn.close()

    def admit(self, conn: _TcpConnection) -> None:
        """Room for ``conn``: at the limit, the longest-idle connection makes way."""
        if len(self.connections) >= self.max_connections:
            oldest = min(self.connections, key=lambda c: c.last_request)
            self.connections.discard(oldest)
            self.evicted += 1
            oldest.abort()
        self.connections.add(conn)


def _keepalive(transport: asyncio.BaseTransport) -> None:
    """TCP keepalive, so a peer that vanished (no FIN, no RST) frees its slot."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE_IDLE_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPALIVE_INTERVAL_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPALIVE_PROBES)


class _TcpConnection(asyncio.Protocol):
    __slots__ = (
        "_buf",
        "_late",
        "_server",
        "_transport",
        "_writing_paused",
        "last_request",
        "number",
        "partial_since",
        "read_only",
        "role",
    )

    def __init__(self, server: ModbusTcpServer) -> None:
        self._server = server
        self._buf = b""
        self._transport: asyncio.Transport | None = None
        self._writing_paused = False
        self._late = 0  # answers a delay fault holds back
        self.last_request = server.now  # coarse time of the last complete request
        self.partial_since = 0.0  # coarse time an incomplete frame started (0: none)
        self.read_only = False
        self.role: str | None = None  # the Modbus/TCP Security role (TLS only)
        self.number = next(_connection_numbers)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: duck-typed, same API.
        self._transport = cast(asyncio.Transport, transport)
        server = self._server
        self.last_request = server.now = time.monotonic()
        if server.tls is not None:
            ssl_object = transport.get_extra_info("ssl_object")
            der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
            self.role = certificate_role(der) if der else None
            self.read_only = server.tls.rights(self.role) != READ_WRITE
        self._transport.set_write_buffer_limits(high=OUTPUT_HIGH_BYTES, low=OUTPUT_LOW_BYTES)
        _keepalive(transport)
        server.admit(self)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    @property
    def _held(self) -> bool:
        return self._writing_paused or self._late >= MAX_LATE_ANSWERS

    def pause_writing(self) -> None:
        # Called from inside transport.write once the queued answers pass the
        # high-water mark: stop reading and (at the end of this round) parsing.
        self._writing_paused = True
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._resume()

    def _resume(self) -> None:
        transport = self._transport
        if self._held or transport is None or transport.is_closing():
            return
        if self._buf:
            self._serve()  # the requests read before the pause
        if not self._held and not transport.is_closing():
            transport.resume_reading()

    @property
    def buffered_bytes(self) -> int:
        """Answers written but not yet taken by the client (what backpressure bounds)."""
        transport = self._transport
        return 0 if transport is None else transport.get_write_buffer_size()

    @property
    def keepalive(self) -> bool:
        """Whether the kernel probes this connection's peer (SO_KEEPALIVE)."""
        transport = self._transport
        sock = None if transport is None else transport.get_extra_info("socket")
        return bool(sock and sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))

    @property
    def pending_request_bytes(self) -> int:
        """Requests read but not yet parsed (at most one read while held)."""
        return len(self._buf)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.connections.discard(self)
        self._server.dispatcher.connection_closed(self.number)  # faults may count per connection
        self._transport = None
        self._buf = b""

    def data_received(self, data: bytes) -> None:
        self._buf = self._buf + data if self._buf else data
        if not self._held:
            self._serve()

    def _serve(self) -> None:
        """Answer the complete frames in the buffer, a round at a time, until held."""
        server = self._server
        dispatcher = server.dispatcher
        slow = server.trace is not None or dispatcher.interceptor is not None or self.read_only
        buf = self._buf
        out: list[bytes] = []
        pos, n = 0, len(buf)
        budget = FRAMES_PER_ROUND
        while n - pos >= 8:
            length = (buf[pos + 4] << 8) | buf[pos + 5]
            end = pos + 6 + length
            if length < 2 or length > MBAP_MAX_LENGTH or buf[pos + 2] or buf[pos + 3]:
                self._write_out(out)
                self.close()  # not Modbus (bad length or protocol id): nothing to resync on
                self._buf = b""
                return
            if end > n:
                break
            if slow:
                if not self._slow_frame(buf[pos:end], out):
                    self._write_out(out)
                    self.close()  # a drop fault: the answers before it still go out
                    self._buf = b""
                    return
            else:
                unit = buf[pos + 6]
                pdu = dispatcher.answer(unit, buf[pos + 7 : end])
                if pdu is not None:
                    out.append(buf[pos : pos + 2] + _mbap_tail(len(pdu), unit) + pdu)
            pos = end
            budget -= 1
            if not budget:
                self._write_out(out)
                out = []
                if self._held:
                    break
                budget = FRAMES_PER_ROUND
        if pos:
            self.last_request = server.now
        self._buf = buf[pos:] if pos else buf
        self._write_out(out)
        if self._held:
            self.partial_since = 0.0  # waiting for the client, not for the rest of a frame
            if self._transport is not None:
                self._transport.pause_reading()
        elif self._buf:
            self.partial_since = self.partial_since or server.now
        else:
            self.partial_since = 0.0

    def _write_out(self, out: list[bytes]) -> None:
        if out and self._transport is not None:
            self._transport.write(out[0] if len(out) == 1 else b"".join(out))

    def _slow_frame(self, frame: bytes, out: list[bytes]) -> bool:
        """One frame with a trace, an interceptor or restricted rights; False: drop."""
        server = self._server
        unit = frame[6]
        trace = server.trace
        if trace is not None:
            trace("rx", unit, frame, time.time())
        pdu, action = server.dispatcher.decide(
            unit, frame[7:], self.number, read_only=self.read_only
        )
        if pdu is None:
            return action is None or not action.drop_connection
        reply = frame[:2] + _mbap_tail(len(pdu), unit) + pdu
        if action is not None:
            reply = action.wire(reply)
            if action.delay_s > 0:
                if self._transport is not None:
                    self._late += 1
                    asyncio.get_running_loop().call_later(
                        action.delay_s, self._late_write, unit, reply
                    )
                return True
        if trace is not None:
            trace("tx", unit, reply, time.time())
        out.append(reply)
        return True

    def _late_write(self, unit: int, reply: bytes) -> None:
        was_held = self._held
        self._late -= 1
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if self._server.trace is not None:
            self._server.trace("tx", unit, reply, time.time())
        transport.write(reply)
        if was_held:
            self._resume()


_TAILS: dict[tuple[int, int], bytes] = {}


def _mbap_tail(pdu_len: int, unit: int) -> bytes:
    """MBAP protocol id, length and unit id (memoised: few distinct values)."""
    key = (pdu_len, unit)
    tail = _TAILS.get(key)
    if tail is None:
        tail = _TAILS[key] = bytes((0, 0, (pdu_len + 1) >> 8, (pdu_len + 1) & 0xFF, unit))
    return tail
